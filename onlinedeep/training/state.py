"""A run's state around the online loop: how a :class:`~onlinedeep.training.loop.Trainer` starts
(configuration, schedule, device, kernel, fresh weights or a snapshot's), its stream and provenance,
its snapshots and log lines in the run folder, what a run returns, and the snapshot taken when a
signal stops it. :mod:`onlinedeep.training.loop` runs the loop on it.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from onlinedeep import kernels, model
from onlinedeep import snapshot as snapshots
from onlinedeep import threads as thread_policy
from onlinedeep.config import ConfigError, RunConfig
from onlinedeep.metrics import RunMetrics, Series
from onlinedeep.phases import Phase, phase_at
from onlinedeep.run_folder import RunFolder, StartOverWarning
from onlinedeep.training import data
from onlinedeep.training.compile_time import CompileTime
from onlinedeep.training.interrupt import TrainingInterrupted

__all__ = ["RunState", "RunResult", "resolve_device"]


@dataclass
class RunResult:
    """What :meth:`Trainer.run` returns.

    Attributes
    ----------
    params : dict of str to torch.Tensor
        The trained network (the trainer's own tensors, not copies).
    position : int
        Examples seen (updates done, unsupervised included).
    online_error, online_nll : float
        0/1 error and mean NLL (nats) over the last ``window`` supervised examples (NaN if none).
    phase : str
        ``Phase.label`` at ``position``, or ``"done"``.
    series : Series
        Metrics records so far.
    snapshot : Path or None
        Last snapshot written by this call.
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
    elapsed_s: float


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


def _record_lines(series: Series, start: int) -> list[str]:
    """``log.txt`` lines of the metrics records ``start ...``."""
    out = []
    for i in range(start, len(series)):
        if series.layer[i] >= 0:
            out.append(f"position {series.position[i]} pretrain L{series.layer[i]} "
                       f"reconstruction {series.reconstruction[i]:.6g}")
        else:
            out.append(f"position {series.position[i]} supervised online_error "
                       f"{series.online_error[i]:.6g} nll {series.nll[i]:.6g}")
    return out


class RunState:
    """The state of a :class:`~onlinedeep.training.loop.Trainer` (its docstring lists the
    parameters, errors and attributes) and everything it does outside the loop; not used alone."""

    def __init__(self, config: RunConfig, *, schedule=None, stream=None, run_dir=None,
                 snapshot: snapshots.Snapshot | None = None, _resuming: bool = False):
        config.validate()
        self.config = config
        self.schedule = schedule if schedule is not None else data.default_schedule(config)
        if self.schedule.total < config.total_updates:
            raise ConfigError(f"schedule: covers {self.schedule.total} positions, the run needs "
                              f"{config.total_updates} (unsup_updates + sup_updates)")
        if self.schedule.split != config.split:
            raise ConfigError(f"schedule: split is {self.schedule.split!r}, the configuration says "
                              f"{config.split!r}")
        self.device = resolve_device(config.device)
        try:
            self.kernel = kernels.get(config.kernel, self.device, threads=config.threads)
        except ValueError as exc:  # an unknown name, or one that does not run on this device
            raise ConfigError(f"kernel: {exc}") from None
        # auto threads: the count may change between chunks with the load (never the weights)
        self.kernel_threads = thread_policy.kernel_controller(config.threads, self.kernel)
        self._stream = stream
        self.folder = RunFolder(run_dir) if run_dir is not None else None
        self._failed: str | None = None
        self._last_snapshot: Path | None = None
        self._last_snapshot_at = -1  # its position
        self._provenance: dict | None = None
        self._expected_data: dict | None = None  # a snapshot's data provenance, checked at run()
        # Numba compilation inside this object's runs (part of elapsed_s; a first run on an
        # empty cache only)
        self.compile_time = CompileTime()
        if snapshot is None:
            self.params = model.init_params(config.n_inputs, config.n_hidden, config.layers,
                                            config.seed, self.device, n_outputs=config.n_classes)
            self.position, self.elapsed_s, self.train_error = 0, 0.0, None
            self.metrics = RunMetrics(config.window, config.log_every)
            self._origin = "initial weights"
        else:
            # in the model's key order (W0, b0, c0, ..., W_out, b_out)
            self.params = {k: model.as_weights(snapshot.params[k], self.device)
                           for k in snapshots.param_shapes(config)}
            self.position = snapshot.position
            self.metrics = RunMetrics.from_state(snapshot.metrics, log_every=config.log_every)
            self.elapsed_s = float(snapshot.counters.get("elapsed_s", 0.0))
            self.train_error = snapshot.train_error
            self._origin = f"snapshot {snapshot.path} (position {snapshot.position})"
            self._expected_data = snapshot.provenance.get("data")
        if self.folder is not None and not _resuming:
            self.folder.check_fresh()
        self._fresh = self.folder is not None and not _resuming

    # ------------------------------------------------------------------ state
    @property
    def stream(self):
        """The InfiniteMNIST stream (built from the configuration on first use)."""
        if self._stream is None:
            self._stream = data.make_stream(self._data_config())
        return self._stream

    def _data_config(self) -> RunConfig:
        """The configuration the stream is built from. A resumed run whose MNIST folder was named
        by ``$ONLINEDEEP_MNIST_DIR`` (not part of its configuration) reads that folder again when
        the variable is unset now, rather than look for the files elsewhere (then refused by the
        data check, or trained on other digits)."""
        import os

        from infinite_mnist.mnist import ENV_MNIST_DIR

        seen = self._expected_data or {}
        earlier = seen.get("mnist.path")
        if (self.config.mnist_dir is None and not os.environ.get(ENV_MNIST_DIR)
                and seen.get("mnist.source") == "environment" and earlier
                and Path(earlier).is_dir()):
            return RunConfig.from_dict({**self.config.to_dict(), "mnist_dir": earlier})
        return self.config

    @property
    def phase(self) -> Phase | None:
        """Phase of the next update, or None when the run is complete."""
        if self.position >= self.config.total_updates:
            return None
        return phase_at(self.config, self.position)

    def provenance(self) -> dict:
        """``{"data": stream provenance, "software": versions, "started_from": ...}``."""
        if self._provenance is None:  # computing it may hash the MNIST files: once per trainer
            found = self.stream.provenance() if hasattr(self.stream, "provenance") else {}
            self._provenance = {"data": dict(found), "software": data.software_versions()}
        return {**self._provenance, "started_from": self._origin}

    def result(self, *, snapshot: Path | None = None, elapsed_s: float = 0.0) -> RunResult:
        """The current state as a :class:`RunResult`."""
        phase = self.phase
        return RunResult(params=self.params, position=self.position,
                         online_error=self.metrics.online_error, online_nll=self.metrics.online_nll,
                         phase=phase.label if phase else "done", series=self.metrics.series(),
                         snapshot=snapshot, elapsed_s=elapsed_s)

    # ------------------------------------------------------------------ snapshots and run folder
    def save_snapshot(self, path) -> Path:
        """Write the current state to ``path`` (atomically).

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
        unsup = self.config.unsup_updates
        counters = {"unsup_done": min(self.position, unsup),
                    "sup_done": max(0, self.position - unsup), "elapsed_s": float(self.elapsed_s)}
        return snapshots.save(
            path, config=self.config, schedule=self.schedule.to_dict(), position=self.position,
            phase=phase.kind if phase else "done", layer=phase.layer if phase else -1,
            params=self.params, metrics=self.metrics.state(), counters=counters,
            provenance=self.provenance(), train_error=self.train_error,
        )

    def save_to_run_folder(self, *, pinned: bool) -> Path:
        """Write the snapshot of the current position into the run folder (a pinned one already
        there is rewritten) and prune old periodic ones."""
        path = self.folder.save_snapshot(self.position, self.save_snapshot, pinned=pinned,
                                         keep=self.config.keep_snapshots)
        self._last_snapshot, self._last_snapshot_at = path, self.position
        return path

    def _saved_at(self, stop: int, *, pinned: bool) -> Path | None:
        """The snapshot of the current position if it is ``stop`` and this trainer continues a
        run folder that already holds it (pinned if asked for), else None."""
        if self.folder is None or self._fresh or self.position != stop:
            return None
        for position, is_pinned, path in self.folder.snapshots():
            if position == stop and (is_pinned or not pinned):
                return path
        return None

    def _start_folder(self) -> None:
        """A fresh run folder: its files, then its first snapshot (pinned: the starting point).

        A folder an earlier start left without a snapshot is reused; if that start had other
        options, a :class:`StartOverWarning` says which, since its ``log.txt`` continues."""
        changed = self.folder.earlier_options(self.config)
        if changed:
            message = (f"{self.folder.path}: starting over with other options than the earlier "
                       f"start recorded in its config.json, which left no snapshot ("
                       + "; ".join(changed) + "); config.json is replaced, log.txt continues")
            warnings.warn(message, StartOverWarning, stacklevel=2)
            self._log(f"warning: {message}")
        self.folder.write_run_files(self.config, self.schedule.to_dict(), self.provenance())
        self._log(f"start at position {self.position} from {self._origin}; "
                  f"config {self.config.to_json()}")
        self.save_to_run_folder(pinned=True)

    def _log(self, text: str) -> None:
        if self.folder is not None:
            self.folder.log(text)

    def _record_now(self) -> None:
        """A metrics record at the current position, labelled with the last update's phase."""
        if self.position > 0:
            self.metrics.record(self.position, phase_at(self.config, self.position - 1).layer)

    def _log_records(self, n_before: int) -> int:
        """Log the metrics records ``n_before ...``; returns the number of records."""
        n = self.metrics.n_records
        if self.folder is not None and n > n_before:  # the series is built only for new records
            for line in _record_lines(self.metrics.series(), n_before):
                self.folder.log(line)
        return n

    # ------------------------------------------------------------------ signals
    def _interrupted(self, signum: int) -> TrainingInterrupted:
        """The first signal, at a chunk boundary: a snapshot (written and logged once: the loop's
        own at this position, if it has just written one), then the exception."""
        snap = None
        if self.folder is not None:  # no off-grid record: the resumed run would keep it
            snap = self._last_snapshot
            if self._last_snapshot_at != self.position:  # else the loop has just written it
                snap = self.save_to_run_folder(pinned=False)
            self._log(f"interrupted by signal {signum} at position {self.position}")
        return TrainingInterrupted.at_boundary(signum, self.position, snap)

    def _interrupted_at_once(self, signum: int) -> TrainingInterrupted:
        """A second signal: stop now, without a snapshot."""
        exc = TrainingInterrupted.at_once(signum, self.position, self._last_snapshot)
        self._log(f"interrupted again by signal {signum} after position {self.position}: {exc}")
        return exc
