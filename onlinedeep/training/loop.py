"""The training loop: greedy layer-wise pre-training then supervised fine-tuning, batch size 1.

Paper 5.3 and 8.1 (Erhan et al. 2010): on the InfiniteMNIST stream, ``unsup_updates`` unsupervised
updates pre-train the bottom ``pretrain_layers`` layers one after the other (layer k is fed the
deterministic sigmoid output of the fixed layers below), then ``sup_updates`` supervised updates
fine-tune the whole network; for every supervised example the network predicts, the 0/1 error and
the NLL are recorded, then it learns (prequential). Each example is one update.

The phase of an update is a function of its stream position only (``RunConfig.phase_at``), every
random draw a function of ``(seed, position)`` (``onlinedeep.noise``), and the chunks given to the
kernel are aligned to multiples of ``chunk_size`` and to the phase boundaries. So a run resumed from a
snapshot, or a branch started from another run's snapshot with a schedule sharing its prefix, feeds
the kernel exactly the same chunks as one uninterrupted run and ends with bit-identical weights.

Data flow: ``infinite_mnist`` stream + ``Schedule`` → :class:`onlinedeep.training.producer.Producer` (thread,
bounded queue) → kernel (``onlinedeep.kernels``) → :class:`onlinedeep.metrics.RunMetrics` →
:mod:`onlinedeep.snapshot`.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import platform
import shutil
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

import numba
import numpy as np
import torch

from infinite_mnist.atomic import make_folder
from onlinedeep import kernels, model, noise
from onlinedeep import snapshot as snapshots
from onlinedeep.config import BRANCH_MUTABLE, ConfigError, Phase, RunConfig, RESUME_MUTABLE
from onlinedeep.metrics import RunMetrics, Series
from onlinedeep.training.producer import Chunk, Producer, stream_fetcher

__all__ = [
    "Trainer",
    "RunResult",
    "NonFiniteLossError",
    "TrainingInterrupted",
    "RunDirError",
    "resume",
    "make_stream",
    "default_schedule",
    "resolve_device",
    "software_versions",
]

SNAPSHOT_DIR = "snapshots"
# Data provenance keys that may differ between machines without changing a single example.
_PROVENANCE_FREE = ("path", "source", "note")


class NonFiniteLossError(RuntimeError):
    """A loss (NLL or reconstruction cost) became NaN or infinite.

    Attributes
    ----------
    position : int
        Stream position of the update whose loss was not finite (the update number, counting from 0,
        unsupervised updates included).
    """

    def __init__(self, message: str, position: int):
        super().__init__(message)
        self.position = position


class TrainingInterrupted(KeyboardInterrupt):
    """The run was stopped by SIGINT (Ctrl-C) or SIGTERM: at the next chunk boundary after writing a
    snapshot, or, on a second signal, at once (the message says so; ``log.txt`` records it).

    Attributes
    ----------
    position : int
        Examples trained when it stopped (a chunk boundary; on a second signal, the last one
        completed).
    snapshot : Path or None
        The snapshot written on the way out, or on a second signal the last one written (None
        without a run folder).
    signum : int
    """

    def __init__(self, message: str, position: int, snapshot: Path | None, signum: int):
        super().__init__(message)
        self.position = position
        self.snapshot = snapshot
        self.signum = signum


class RunDirError(RuntimeError):
    """A run folder that cannot be used as asked (already holds a run, or holds no snapshot)."""


@dataclass
class RunResult:
    """What :meth:`Trainer.run` returns.

    Attributes
    ----------
    params : dict of str to torch.Tensor
        The trained network (the trainer's own tensors, not copies).
    position : int
        Examples seen (updates done, unsupervised included).
    online_error : float
        0/1 error over the last ``window`` supervised examples (NaN if none yet).
    online_nll : float
        Mean NLL over the same window (nats).
    phase : str
        ``Phase.label`` at ``position``, or ``"done"``.
    series : Series
        Metrics records so far.
    snapshot : Path or None
        Last snapshot written by this call.
    train_error : dict or None
        Figure 12 blocks (``block_start``, ``block_stop``, ``error``) if computed.
    elapsed_s : float
        Seconds spent training in this call.
    """

    params: dict[str, torch.Tensor]
    position: int
    online_error: float
    online_nll: float
    phase: str
    series: Series
    snapshot: Path | None
    train_error: dict | None
    elapsed_s: float


# ---------------------------------------------------------------------------- helpers
def resolve_device(device: str) -> torch.device:
    """``auto`` → ``cuda`` where available, else ``cpu``.

    Raises
    ------
    ConfigError
        If ``cuda`` is asked for and none is available.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' requested but torch finds no CUDA device (use cpu or auto)")
    return torch.device(device)


def default_schedule(config: RunConfig):
    """The contiguous training sequence of a configuration: training ids ``stream_start ...``."""
    from infinite_mnist import Schedule

    return Schedule.contiguous(config.total_updates, start=config.stream_start, split=config.split)


def make_stream(config: RunConfig):
    """The InfiniteMNIST stream a configuration describes (``deformation``, ``stream_seed``,
    ``mnist_dir``); ``deformation="infimnist"`` reads infimnist's data directory ``mnist_dir``."""
    from infinite_mnist import InfiniteMNIST

    if config.deformation == "infimnist":
        if not config.mnist_dir:
            raise ConfigError("deformation 'infimnist' needs mnist_dir = infimnist's data directory")
        return InfiniteMNIST.from_infimnist_dir(config.mnist_dir)
    return InfiniteMNIST(mnist_dir=config.mnist_dir, mode=config.deformation, seed=config.stream_seed)


def software_versions() -> dict[str, str]:
    """Versions of Python, the platform and the packages a run depends on."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("onlinedeep", "torch", "numpy", "numba", "h5py"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def _schedule_prefix(schedule, position: int) -> tuple[str, list[tuple[int, int]]]:
    """Training-id ranges of positions ``[0, position)``, coalesced: equal iff same examples."""
    out: list[list[int]] = []
    left = position
    for start, length in schedule.segments:
        if left <= 0:
            break
        take = min(length, left)
        if out and out[-1][0] + out[-1][1] == start:
            out[-1][1] += take
        else:
            out.append([start, take])
        left -= take
    return schedule.split, [tuple(s) for s in out]


def _set_threads(n: int) -> None:
    """PyTorch's intra-op threads; the numba kernel carries its own count (``kernels.get``)."""
    torch.set_num_threads(n)


@contextlib.contextmanager
def _loop_torch_threads(kernel):
    """PyTorch threads inside the training loop, restored afterwards.

    With the numba kernel, whose weights do not depend on its thread count, the PyTorch operations
    that feed it (the forward through the fixed layers below in pre-training) run on one thread:
    MKL's sgemm gives different bits on 1 and 2 threads for some row counts (5, 37 and 333 of
    1..1000 measured), which would make ``threads`` change the weights of a resumed run; and a
    second OpenMP pool would compete with the kernel's threads for the cores.
    """
    if getattr(kernel, "name", None) != "numba":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _write_json_atomic(path: Path, data: Any) -> None:
    with snapshots.atomic_file(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")


@dataclass
class _DrawnChunk(Chunk):
    """A chunk with its random draws (``Trainer._chunk_draws``), computed in the producer thread."""

    draws: dict | None = None


# ---------------------------------------------------------------------------- the trainer
class Trainer:
    """Trains one network on the stream, one example per update.

    Parameters
    ----------
    config : RunConfig
    schedule : infinite_mnist.Schedule, optional
        The training sequence (default: ``Schedule.contiguous(total_updates, stream_start, split)``);
        its ``total`` must cover ``config.total_updates``.
    stream : infinite_mnist.InfiniteMNIST, optional
        Anything with ``floats(indices) -> (n, 784) float32``, ``labels(indices) -> (n,) uint8`` and
        ``provenance() -> dict``; default built from the configuration on first use.
    run_dir : path-like, optional
        Run folder (``config.json``, ``schedule.json``, ``provenance.json``, ``log.txt``,
        ``snapshots/``). Without one, nothing is written unless :meth:`save_snapshot` is called.

    Raises
    ------
    ConfigError
        On an invalid configuration, a kernel that does not run on the device, or a schedule
        shorter than the run.
    RunDirError
        If ``run_dir`` already holds a run (resume it with :meth:`resume`) or is not a folder.

    Attributes
    ----------
    config, schedule, device, kernel
    params : dict of str to torch.Tensor
        The network, updated in place (``onlinedeep.model`` layout).
    position : int
        Examples seen so far (updates done).
    metrics : RunMetrics
    """

    def __init__(self, config: RunConfig, *, schedule=None, stream=None, run_dir=None,
                 _snapshot: snapshots.Snapshot | None = None, _resuming: bool = False):
        config.validate()
        self.config = config
        self.schedule = schedule if schedule is not None else default_schedule(config)
        if self.schedule.total < config.total_updates:
            raise ConfigError(
                f"schedule: covers {self.schedule.total} positions, the run needs "
                f"{config.total_updates} (unsup_updates + sup_updates)"
            )
        if self.schedule.split != config.split:
            raise ConfigError(
                f"schedule: split is {self.schedule.split!r}, the configuration says {config.split!r}"
            )
        self.device = resolve_device(config.device)
        try:
            self.kernel = kernels.get(config.kernel, self.device, threads=config.threads)
        except ValueError as exc:  # an unknown name, or one that does not run on this device
            raise ConfigError(f"kernel: {exc}") from None
        self._stream = stream
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if self.run_dir is not None and self.run_dir.exists() and not self.run_dir.is_dir():
            raise RunDirError(f"{self.run_dir}: exists and is not a folder; choose another run "
                              f"folder (--name / --out)")
        self._elapsed_before = 0.0
        self._train_error: dict | None = None
        self._failed: str | None = None
        self._stop_signal: int | None = None
        self._last_snapshot: Path | None = None
        self._log_file = None
        self._origin: str | None = None
        self._provenance: dict | None = None
        if _snapshot is None:
            self.params = model.init_params(784, config.n_hidden, config.layers, config.seed,
                                            self.device)
            self.position = 0
            self.metrics = RunMetrics(config.window, config.log_every)
            self._origin = "initial weights"
        else:
            self.params = {k: torch.from_numpy(np.ascontiguousarray(v)).to(self.device)
                           for k, v in _snapshot.params.items()}
            # keep the model's key order (W0, b0, c0, ..., W_out, b_out)
            order = list(snapshots.param_shapes(config))
            self.params = {k: self.params[k] for k in order}
            self.position = _snapshot.position
            self.metrics = RunMetrics.from_state(_snapshot.metrics, log_every=config.log_every)
            self._elapsed_before = float(_snapshot.counters.get("elapsed_s", 0.0))
            self._train_error = _snapshot.train_error
            self._origin = f"snapshot {_snapshot.path} (position {_snapshot.position})"
            self._snapshot_provenance = _snapshot.provenance
        if self.run_dir is not None and not _resuming:
            held = snapshots.list_snapshots(self.run_dir / SNAPSHOT_DIR)
            if held:
                raise RunDirError(
                    f"{self.run_dir}: already holds a run (snapshots up to position {held[-1][0]}); "
                    f"resume it (onlinedeep train --resume {self.run_dir}) or choose another folder"
                )
        self._fresh_run_dir = self.run_dir is not None and not _resuming

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_snapshot(cls, path, *, schedule=None, run_dir=None, stream=None,
                      **overrides: Any) -> "Trainer":
        """Continue from a snapshot, possibly into another run folder with another schedule.

        Branching (paper 8.2, ordering variance): the new ``schedule`` may differ from the
        snapshot's, but must present the same examples at every position before the snapshot's.

        Parameters
        ----------
        path : path-like
            Snapshot file.
        schedule : Schedule, optional
            Default: the snapshot's (extended to the configuration's length if it was the default
            contiguous one and ``sup_updates`` grew).
        run_dir : path-like, optional
            Where the continued run writes (a fresh folder, or None for nothing).
        stream : optional
            As in :class:`Trainer`.
        **overrides
            New values of fields in ``config.BRANCH_MUTABLE`` (``device``, ``kernel``, ``threads``,
            ``mnist_dir``, ``log_every``, ``snapshot_every``, ``keep_snapshots``, ``sup_updates``,
            ``train_error_blocks``, ``name``, ``out``).

        Raises
        ------
        SnapshotError
            If the snapshot is unreadable, damaged, holds NaN/Inf, or an override is not allowed.
        ConfigError
            If the schedule's prefix differs from the snapshot's or is too short.
        """
        snap = snapshots.load(path)
        return cls._from_loaded(snap, schedule=schedule, run_dir=run_dir, stream=stream,
                                overrides=overrides, resuming=False)

    @classmethod
    def _from_loaded(cls, snap: snapshots.Snapshot, *, schedule, run_dir, stream, overrides,
                     resuming: bool) -> "Trainer":
        from infinite_mnist import Schedule

        allowed = RESUME_MUTABLE if resuming else BRANCH_MUTABLE
        bad = sorted(set(overrides) - allowed)
        if bad:
            where = (f"when resuming (the run continues in its own folder {run_dir})" if resuming
                     else "when continuing a run")
            raise snapshots.SnapshotError(
                f"{snap.path}: cannot change {bad} {where}; only {sorted(allowed)} may change"
            )
        given = {k: v for k, v in overrides.items() if v is not None}
        config = RunConfig.from_dict({**snap.config.to_dict(), **given},
                                     where=f"{snap.path}: configuration with overrides {given}")
        if config.total_updates < snap.position:
            raise ConfigError(
                f"sup_updates: the run would end at {config.total_updates}, before the snapshot's "
                f"position {snap.position} ({snap.path})"
            )
        try:
            snap_schedule = Schedule.from_dict(snap.schedule)
        except ValueError as exc:
            raise snapshots.SnapshotError(f"{snap.path}: attribute 'schedule': {exc}") from None
        if schedule is None:
            schedule = snap_schedule
            if schedule.total < config.total_updates:
                extended = default_schedule(config)
                if _schedule_prefix(extended, snap_schedule.total) != _schedule_prefix(
                        snap_schedule, snap_schedule.total):
                    raise ConfigError(
                        f"sup_updates: the snapshot's schedule ({snap.path}) covers "
                        f"{snap_schedule.total} positions and is not the default contiguous one, so "
                        f"it cannot be extended to {config.total_updates}; pass a longer schedule"
                    )
                schedule = extended
        if _schedule_prefix(schedule, snap.position) != _schedule_prefix(snap_schedule, snap.position):
            raise ConfigError(
                f"schedule: differs from the snapshot's ({snap.path}) before its position "
                f"{snap.position}; a branch must share the trained prefix"
            )
        trainer = cls(config, schedule=schedule, stream=stream, run_dir=run_dir, _snapshot=snap,
                      _resuming=resuming)
        return trainer

    @classmethod
    def resume(cls, run_dir, *, stream=None, **overrides: Any) -> "Trainer":
        """Continue the run in ``run_dir`` from its latest snapshot (same folder, same schedule).

        Parameters
        ----------
        run_dir : path-like
        stream : optional
        **overrides
            New values of fields in ``config.RESUME_MUTABLE`` (as :meth:`from_snapshot`, but not
            ``name`` or ``out``: the run continues in ``run_dir``).

        Raises
        ------
        RunDirError
            If the folder holds no snapshot.
        SnapshotError
            If no snapshot of the folder can be read (the message lists each file tried and why it
            failed), or an override is not allowed.

        Warns
        -----
        snapshot.SnapshotFallbackWarning
            When the newest snapshot(s) cannot be read and the run resumes from an older one; the
            same line goes to ``log.txt``. The damaged files are left in place (the resumed run
            overwrites them when it reaches their positions).
        """
        run_dir = Path(run_dir)
        held = snapshots.list_snapshots(run_dir / SNAPSHOT_DIR)
        if not held:
            raise RunDirError(
                f"{run_dir}: no snapshot to resume from (expected {run_dir / SNAPSHOT_DIR}/"
                f"snapshot-<position>.h5)"
            )
        failed: list[str] = []
        snap = None
        for _, _, path in reversed(held):  # newest first
            try:
                snap = snapshots.load(path)
                break
            except snapshots.SnapshotError as exc:
                failed.append(str(exc))
        if snap is None:
            raise snapshots.SnapshotError(
                f"{run_dir}: none of its {len(held)} snapshot(s) can be read; tried, newest first: "
                + " | ".join(failed)
            )
        trainer = cls._from_loaded(snap, schedule=None, run_dir=run_dir, stream=stream,
                                   overrides=overrides, resuming=True)
        if failed:
            message = (f"resuming from the older snapshot {Path(snap.path).name} (position "
                       f"{snap.position}): {len(failed)} newer snapshot(s) cannot be read: "
                       + " | ".join(failed))
            trainer._log(f"warning: {message}")
            warnings.warn(message, snapshots.SnapshotFallbackWarning, stacklevel=2)
        return trainer

    @staticmethod
    def has_snapshot(run_dir) -> bool:
        """Whether ``run_dir`` holds a snapshot to resume from."""
        return bool(snapshots.list_snapshots(Path(run_dir) / SNAPSHOT_DIR))

    # ------------------------------------------------------------------ state
    @property
    def stream(self):
        """The InfiniteMNIST stream (built from the configuration on first use)."""
        if self._stream is None:
            self._stream = make_stream(self.config)
        return self._stream

    @property
    def total_updates(self) -> int:
        """Stream positions of the whole run (``config.total_updates``)."""
        return self.config.total_updates

    @property
    def elapsed_s(self) -> float:
        """Seconds spent training so far, over every session of the run (resumes included)."""
        return self._elapsed_before

    @property
    def phase(self) -> Phase | None:
        """Phase of the next update, or None when the run is complete."""
        if self.position >= self.config.total_updates:
            return None
        return self.config.phase_at(self.position)

    def provenance(self) -> dict:
        """``{"data": stream provenance, "software": versions, "started_from": ...}``."""
        if self._provenance is None:  # computing it may hash the MNIST files: once per trainer
            data = self.stream.provenance() if hasattr(self.stream, "provenance") else {}
            self._provenance = {"data": dict(data), "software": software_versions()}
        return {**self._provenance, "started_from": self._origin}

    def _check_data_provenance(self) -> None:
        old = getattr(self, "_snapshot_provenance", None)
        if not old or "data" not in old:
            return
        new = self.provenance()["data"]
        diff = sorted(
            k for k in set(old["data"]) | set(new)
            if not any(k.endswith(s) for s in _PROVENANCE_FREE)
            and old["data"].get(k) != new.get(k)
        )
        if diff:
            detail = ", ".join(f"{k}: snapshot {old['data'].get(k)!r} vs now {new.get(k)!r}"
                               for k in diff)
            raise ConfigError(
                f"data: the stream differs from the one the snapshot was trained on ({detail}); "
                f"point --mnist-dir at the same MNIST files"
            )

    def _counters(self) -> dict:
        unsup = self.config.unsup_updates
        return {
            "unsup_done": min(self.position, unsup),
            "sup_done": max(0, self.position - unsup),
            "elapsed_s": float(self._elapsed_before),
        }

    def save_snapshot(self, path) -> Path:
        """Write the current state to ``path`` (atomically).

        Returns
        -------
        Path

        Raises
        ------
        RuntimeError
            If the run failed with a non-finite loss (its parameters are not worth keeping).
        SnapshotError
            If a parameter holds NaN/Inf (nothing is written).
        """
        if self._failed:
            raise RuntimeError(f"not writing a snapshot of a failed run: {self._failed}")
        phase = self.phase
        return snapshots.save(
            path,
            config=self.config,
            schedule=self.schedule.to_dict(),
            position=self.position,
            phase=phase.kind if phase else "done",
            layer=phase.layer if phase else -1,
            params=self.params,
            metrics=self.metrics.state(),
            counters=self._counters(),
            provenance=self.provenance(),
            train_error=self._train_error,
        )

    # ------------------------------------------------------------------ run folder
    def _snapshot_dir(self) -> Path:
        assert self.run_dir is not None
        return self.run_dir / SNAPSHOT_DIR

    def _write_run_files(self) -> None:
        d = self.run_dir
        make_folder(d, "the run folder")
        _write_json_atomic(d / "config.json", self.config.to_dict())
        _write_json_atomic(d / "schedule.json", self.schedule.to_dict())
        _write_json_atomic(d / "provenance.json", self.provenance())
        for stale in self._snapshot_dir().glob("*.tmp*") if self._snapshot_dir().is_dir() else ():
            # left by a writer killed mid-write; the snapshot it was replacing is intact
            with contextlib.suppress(OSError):
                stale.unlink()

    def _start_run_dir(self) -> None:
        """Write a fresh run folder up to its first (pinned) snapshot, or nothing.

        A folder without a snapshot is not a run (``--resume`` refuses it), so if the start fails
        the files it wrote are removed again, and the folder too if this call created it.
        """
        d = self.run_dir
        created = []
        for folder in reversed([d, *d.parents]):
            if not folder.exists():
                created.append(folder)
        before = set(d.iterdir()) if d.is_dir() else set()
        try:
            self._write_run_files()
            self._log(f"start at position {self.position} from {self._origin}; "
                      f"config {self.config.to_json()}")
            self._snapshot_in_run_dir(pinned=True)  # the starting point, kept
        except BaseException:
            if d in created:
                shutil.rmtree(d, ignore_errors=True)
            elif d.is_dir():
                for path in set(d.iterdir()) - before:
                    with contextlib.suppress(OSError):
                        shutil.rmtree(path) if path.is_dir() else path.unlink()
            raise
        self._fresh_run_dir = False

    def _log(self, text: str) -> None:
        if self.run_dir is None:
            return
        with open(self.run_dir / "log.txt", "a") as f:
            stamp = _dt.datetime.now().isoformat(timespec="seconds")
            f.write(f"{stamp} {text}\n")

    def _snapshot_in_run_dir(self, *, pinned: bool) -> Path:
        folder = self._snapshot_dir()
        pos = self.position
        existing = {(p, pin): path for p, pin, path in snapshots.list_snapshots(folder)}
        if (pos, True) in existing:
            path = existing[(pos, True)]
            self.save_snapshot(path)  # refresh (e.g. with the train error added)
        else:
            path = self.save_snapshot(folder / snapshots.snapshot_name(pos, pinned=pinned))
            if pinned and (pos, False) in existing:
                existing[(pos, False)].unlink(missing_ok=True)
        self._last_snapshot = path
        if self.config.keep_snapshots > 0:
            periodic = [(p, path_) for p, pin, path_ in snapshots.list_snapshots(folder) if not pin]
            for _, old in periodic[:-self.config.keep_snapshots]:
                old.unlink(missing_ok=True)
        self._log(f"snapshot {path.name}")
        return path

    # ------------------------------------------------------------------ one chunk
    def _chunk_draws(self, start: int, stop: int) -> dict[str, np.ndarray | None] | None:
        """The random draws of the updates at positions ``[start, stop)`` (one phase), or None.

        A pure function of the configuration and the positions (``onlinedeep.noise``), so the
        producer thread computes it ahead, while the kernel runs (issue 5: computed on the main
        thread between chunks, the draws cost 10% of a 784-1000 DAE layer's rate on the loaded
        development machine; ``benchmarks/bench_pipeline.py``).

        Returns
        -------
        dict or None
            None for a supervised chunk. DAE: ``keep (n, fan_in) bool``, ``values (n, fan_in)
            float32`` or None (masking). RBM: ``u_hidden (n, cd_k, n_hidden) float32``,
            ``u_visible (n, cd_k, fan_in) float32`` or None.
        """
        cfg = self.config
        phase = cfg.phase_at(start)
        if phase.kind != "pretrain":
            return None
        k, n = phase.layer, stop - start
        fan_in = 784 if k == 0 else cfg.n_hidden
        pos = np.arange(start, stop, dtype=np.int64)
        if cfg.pretrain == "dae":
            n_corrupt = noise.corruption_count(cfg.corruption_level, fan_in)
            if cfg.noise == "masking":
                return {"keep": noise.masking_keep(cfg.seed, pos, k, fan_in, n_corrupt),
                        "values": None}
            keep, values = noise.salt_pepper(cfg.seed, pos, k, fan_in, n_corrupt)
            return {"keep": keep, "values": values}
        nh = cfg.n_hidden
        u_h = noise.uniforms(cfg.seed, pos, noise.PURPOSE_RBM_HIDDEN, k, cfg.cd_k * nh)
        u_v = None
        if cfg.sample_reconstruction:
            u_v = noise.uniforms(cfg.seed, pos, noise.PURPOSE_RBM_VISIBLE, k,
                                 cfg.cd_k * fan_in).reshape(n, cfg.cd_k, fan_in)
        return {"u_hidden": u_h.reshape(n, cfg.cd_k, nh), "u_visible": u_v}

    def _fetcher(self):
        """The producer's fetch function: the stream's examples plus the chunk's random draws."""
        fetch = stream_fetcher(self.stream, self.schedule)

        def fetch_with_draws(start: int, stop: int) -> _DrawnChunk:
            # Runs in the producer thread; Numba's thread count is per calling thread. One thread
            # generates far faster than training consumes (~1M examples/s), and a parallel
            # generator would take cores from the kernel's threads, which wait for each other at
            # every layer (bench_pipeline.py, 2 kernel threads: live/pre-generated 0.86 before).
            numba.set_num_threads(1)
            chunk = fetch(start, stop)
            return _DrawnChunk(chunk.start, chunk.stop, chunk.indices, chunk.x, chunk.labels,
                               draws=self._chunk_draws(start, stop))

        return fetch_with_draws

    def _train_chunk(self, chunk: Chunk, phase: Phase) -> None:
        cfg = self.config
        x = torch.from_numpy(chunk.x).to(self.device)
        if phase.kind == "pretrain":
            k = phase.layer
            h = model.hidden_forward(self.params, x, k)
            draws = getattr(chunk, "draws", None) or self._chunk_draws(chunk.start, chunk.stop)

            def dev(a):
                return None if a is None else torch.from_numpy(a).to(self.device)

            if cfg.pretrain == "dae":
                cost = self.kernel.dae(self.params, k, h, dev(draws["keep"]), dev(draws["values"]),
                                       learning_rate=cfg.unsup_learning_rate)
            else:
                cost = self.kernel.rbm(self.params, k, h, dev(draws["u_hidden"]),
                                       dev(draws["u_visible"]),
                                       learning_rate=cfg.unsup_learning_rate, cd_k=cfg.cd_k)
            cost = cost.cpu().numpy()
            self._check_loss(cost, chunk, phase, "reconstruction cost")
            self.metrics.add_pretrain(chunk.start, k, cost)
        else:
            y = torch.from_numpy(chunk.labels.astype(np.int64)).to(self.device)
            errors, nll = self.kernel.supervised(self.params, x, y, learning_rate=cfg.learning_rate,
                                                 l1=cfg.l1, l2=cfg.l2)
            errors = errors.cpu().numpy()
            nll = nll.cpu().numpy()
            self._check_loss(nll, chunk, phase, "NLL")
            self.metrics.add_supervised(chunk.start, errors, nll)

    def _check_loss(self, values: np.ndarray, chunk: Chunk, phase: Phase, what: str) -> None:
        bad = ~np.isfinite(values)
        if not bad.any():
            return
        i = int(np.argmax(bad))
        position = chunk.start + i
        keep = (f"; the last good snapshot is {self._last_snapshot}" if self._last_snapshot
                else "; no snapshot was written from these parameters")
        cfg = self.config
        if phase.kind == "supervised":
            rates = f"learning rate {cfg.learning_rate}, l1 {cfg.l1}, l2 {cfg.l2}"
        else:
            rates = f"unsupervised learning rate {cfg.unsup_learning_rate}"
        self._failed = (
            f"the {what} became non-finite ({values[i]}) at update {position} (stream position "
            f"{position}, {phase.label}, {rates})"
        )
        cfg = self.config
        if phase.kind == "supervised":
            hint = "learning rate" + ("".join(f" or {name}" for name in ("l1", "l2")
                                              if getattr(cfg, name) > 0))
        else:
            hint = "unsupervised learning rate"
        raise NonFiniteLossError(self._failed + keep + f"; try a smaller {hint}", position)

    # ------------------------------------------------------------------ signals
    @contextlib.contextmanager
    def _signals(self):
        """SIGINT/SIGTERM set a flag checked between chunks (main thread only); a second one
        interrupts at once."""
        self._stop_signal = None
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {}

        def handler(signum, frame):
            if self._stop_signal is not None:
                for s, h in previous.items():
                    signal.signal(s, h)
                message = (
                    f"{signal.Signals(signum).name} received again: stopped at once, without a "
                    f"final snapshot; the updates after the last snapshot "
                    f"({self._last_snapshot or 'none written'}) are lost"
                )
                self._log(f"interrupted again by signal {signum} after position {self.position}: "
                          f"{message}")
                raise TrainingInterrupted(message, self.position, self._last_snapshot, signum)
            self._stop_signal = signum

        for s in (signal.SIGINT, signal.SIGTERM):
            previous[s] = signal.signal(s, handler)
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    # ------------------------------------------------------------------ the loop
    def run(self, stop: int | None = None, snapshot_at: Iterable[int] = (), progress: bool = True
            ) -> RunResult:
        """Train from the current position up to ``stop``.

        Parameters
        ----------
        stop : int, optional
            Stream position to stop at (default: the end of the run, ``total_updates``); a chunk
            boundary (multiple of ``chunk_size`` or a phase boundary).
        snapshot_at : iterable of int
            Extra positions (chunk boundaries, at most ``stop``) at which to write a pinned snapshot
            ``snapshots/snapshot-<position>.pinned.h5`` (never pruned); positions already passed are
            ignored. Needs a run folder.
        progress : bool
            Show a tqdm bar (phase, updates/s, ETA, online error).

        Returns
        -------
        RunResult

        Raises
        ------
        ConfigError
            If ``stop`` or a ``snapshot_at`` position is not a chunk boundary or outside the run.
        NonFiniteLossError
            When a loss becomes NaN/Inf (the message names the update); no snapshot is written
            from the bad parameters, earlier ones stay.
        TrainingInterrupted
            On SIGINT/SIGTERM, after a snapshot at the next chunk boundary.
        onlinedeep.training.producer.ProducerError
            If generating the stream fails (the original exception is chained).
        """
        if self._failed:
            raise RuntimeError(f"this trainer's run failed and cannot continue: {self._failed}")
        cfg = self.config
        stop = cfg.total_updates if stop is None else int(stop)
        if not (self.position <= stop <= cfg.total_updates) or not cfg.is_chunk_boundary(stop):
            raise ConfigError(
                f"stop: expected a chunk boundary in [{self.position}, {cfg.total_updates}] "
                f"(a multiple of chunk_size={cfg.chunk_size} or a phase boundary), found {stop}"
            )
        pins = set()
        for p in snapshot_at:
            p = int(p)
            if p > stop or not cfg.is_chunk_boundary(p):
                raise ConfigError(
                    f"snapshot_at: expected chunk boundaries <= stop={stop} (multiples of "
                    f"chunk_size={cfg.chunk_size} or phase boundaries), found {p}"
                )
            if p >= self.position:
                pins.add(p)
        if pins and self.run_dir is None:
            raise ConfigError("snapshot_at: needs a run folder (run_dir) to write snapshots into")
        if getattr(self, "_snapshot_provenance", None) is not None:
            self._check_data_provenance()
            self._snapshot_provenance = None

        if self.run_dir is not None:
            # Everything that can fail on the user's input (MNIST files, deformation settings) is
            # checked before the first file is written: the stream is built here.
            self.provenance()
            if self._fresh_run_dir:
                self._start_run_dir()
            else:
                self._write_run_files()
                self._log(f"resume at position {self.position} (run until {stop})")
                if self.position in pins:
                    self._snapshot_in_run_dir(pinned=True)

        if cfg.threads:
            _set_threads(cfg.threads)
        t0 = t_call = time.perf_counter()
        ranges = cfg.chunk_ranges(self.position, stop)
        bar = None
        if progress and ranges:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.total_updates, initial=self.position, unit="upd", unit_scale=True,
                       dynamic_ncols=True, smoothing=0.05, mininterval=0.5, file=sys.stderr)
        n_records = len(self.metrics.series())
        try:
            with self._signals(), _loop_torch_threads(self.kernel), Producer(
                    self._fetcher(), ranges, maxsize=cfg.queue_size) as producer:
                for chunk in producer:
                    phase = cfg.phase_at(chunk.start)
                    self._train_chunk(chunk, phase)
                    self.position = chunk.stop
                    if self.position == phase.stop:
                        self.metrics.record(self.position, phase.layer)
                    if bar is not None:
                        bar.update(len(chunk))
                        self._update_bar(bar, phase)
                    n_records = self._log_records(n_records)
                    if self.run_dir is not None:
                        if self.position in pins:
                            self._elapsed_before += time.perf_counter() - t0
                            t0 = time.perf_counter()
                            self._snapshot_in_run_dir(pinned=True)
                        elif (self.position % cfg.snapshot_every == 0 and self.position < stop):
                            self._elapsed_before += time.perf_counter() - t0
                            t0 = time.perf_counter()
                            self._snapshot_in_run_dir(pinned=False)
                    if self._stop_signal is not None and self.position < stop:
                        raise self._interrupted()
        except NonFiniteLossError:
            self._log(f"stopped: {self._failed}")
            raise
        finally:
            self._elapsed_before += time.perf_counter() - t0
            if bar is not None:
                bar.close()

        # the end of this call
        self._record_now()
        self._log_records(n_records)
        done = self.position == cfg.total_updates
        if done and cfg.train_error_blocks and self._train_error is None:
            self._train_error = self.training_sequence_error(cfg.train_error_blocks,
                                                             progress=progress)
        snap = None
        if self.run_dir is not None:
            snap = self._snapshot_in_run_dir(pinned=done or self.position in pins)
            if done:
                self._log(f"done: position {self.position}, online_error {self.metrics.online_error:.6g}")
        return self.result(snapshot=snap, elapsed_s=time.perf_counter() - t_call)

    def _interrupted(self) -> TrainingInterrupted:
        signum = self._stop_signal
        snap = None
        if self.run_dir is not None:
            self._record_now()
            snap = self._snapshot_in_run_dir(pinned=False)
            self._log(f"interrupted by signal {signum} at position {self.position}")
        name = signal.Signals(signum).name if signum else "signal"
        where = f"; snapshot {snap}" if snap else ""
        return TrainingInterrupted(
            f"{name} received: stopped at position {self.position}{where}", self.position, snap,
            signum or signal.SIGINT,
        )

    def _record_now(self) -> None:
        """A metrics record at the current position, labelled with the last update's phase."""
        if self.position > 0:
            self.metrics.record(self.position, self.config.phase_at(self.position - 1).layer)

    def _update_bar(self, bar, phase: Phase) -> None:
        bar.set_description(phase.label, refresh=False)
        if phase.kind == "supervised":
            bar.set_postfix_str(f"online_error={self.metrics.online_error:.4f}", refresh=False)
        else:
            bar.set_postfix_str(f"reconstruction={self.metrics.reconstruction.mean():.2f}",
                                refresh=False)

    def _log_records(self, n_before: int) -> int:
        series = self.metrics.series()
        if self.run_dir is not None:
            for i in range(n_before, len(series)):
                if series.layer[i] >= 0:
                    self._log(f"position {series.position[i]} pretrain L{series.layer[i]} "
                              f"reconstruction {series.reconstruction[i]:.6g}")
                else:
                    self._log(f"position {series.position[i]} supervised online_error "
                              f"{series.online_error[i]:.6g} nll {series.nll[i]:.6g}")
        return len(series)

    def result(self, *, snapshot: Path | None = None, elapsed_s: float = 0.0) -> RunResult:
        """The current state as a :class:`RunResult`."""
        phase = self.phase
        return RunResult(
            params=self.params,
            position=self.position,
            online_error=self.metrics.online_error,
            online_nll=self.metrics.online_nll,
            phase=phase.label if phase else "done",
            series=self.metrics.series(),
            snapshot=snapshot,
            train_error=self._train_error,
            elapsed_s=elapsed_s,
        )

    # ------------------------------------------------------------------ Figure 12
    def training_sequence_error(self, n_blocks: int, *, block_chunk: int = 10_000,
                                progress: bool = False) -> dict:
        """Error of the current network on the supervised training sequence, in presentation order.

        Paper 8.1, Figure 12: the examples trained on (positions ``[unsup_updates, position)``) are
        re-read in the order they were presented and classified by the final network; the error is
        reported per block of consecutive examples.

        Parameters
        ----------
        n_blocks : int
            Number of blocks (≥ 1, at most the number of supervised examples seen).
        block_chunk : int
            Examples generated and classified at a time (memory bound).

        Returns
        -------
        dict
            ``block_start``, ``block_stop`` ``(n_blocks,) int64`` stream positions and ``error``
            ``(n_blocks,) float64`` 0/1 error rate of each block.

        Raises
        ------
        ValueError
            If there are fewer supervised examples than blocks.
        """
        first = self.config.unsup_updates
        n_sup = self.position - first
        if n_blocks < 1 or n_sup < n_blocks:
            raise ValueError(
                f"n_blocks: expected 1..{max(n_sup, 0)} (supervised examples seen), found {n_blocks}"
            )
        cuts = first + (np.arange(n_blocks + 1, dtype=np.int64) * n_sup) // n_blocks
        wrong = np.zeros(n_blocks, dtype=np.int64)
        ranges = [(int(a), int(min(a + block_chunk, self.position)))
                  for a in range(first, self.position, block_chunk)]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_sup, desc="training-sequence error", unit="ex", unit_scale=True,
                       file=sys.stderr)
        try:
            with Producer(stream_fetcher(self.stream, self.schedule), ranges,
                          maxsize=self.config.queue_size) as producer:
                for chunk in producer:
                    pred = model.predict(self.params, torch.from_numpy(chunk.x)).cpu().numpy()
                    bad = (pred != chunk.labels.astype(np.int64)).astype(np.int64)
                    block = np.searchsorted(cuts, chunk.positions, side="right") - 1
                    np.add.at(wrong, block, bad)
                    if bar is not None:
                        bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
        sizes = np.diff(cuts)
        return {"block_start": cuts[:-1], "block_stop": cuts[1:],
                "error": wrong / sizes.astype(np.float64)}


def resume(run_dir, *, stream=None, **overrides: Any) -> Trainer:
    """``Trainer.resume(run_dir, stream=stream, **overrides)`` (see there)."""
    return Trainer.resume(run_dir, stream=stream, **overrides)
