"""The online loop: greedy layer-wise pre-training, then supervised fine-tuning, batch size 1.

Erhan et al. (2010), sections 5.3 and 8.1: on the InfiniteMNIST stream, ``unsup_updates``
unsupervised updates pre-train the bottom ``pretrain_layers`` layers one after the other (layer k is
fed the deterministic sigmoid output of the fixed layers below), then ``sup_updates`` supervised
updates fine-tune the whole network. For every supervised example the network predicts, the 0/1
error and the NLL are scored, then it learns (prequential). Each example is one update.

:meth:`Trainer.run` reads top to bottom: take the next chunk from the producer; predict and score,
then update (the kernel does both, example by example); record the metrics; maybe write a
snapshot. Chunks are aligned to ``chunk_size`` and the phase boundaries (:mod:`onlinedeep.phases`)
and every random draw is a function of ``(seed, position)``, so a run resumed or branched from a
snapshot (:mod:`onlinedeep.training.resume`) ends with the weights of an uninterrupted one.

Data flow: stream + schedule → producer thread (:mod:`onlinedeep.training.producer`, with the
draws of :mod:`onlinedeep.training.draws`) → kernel (:mod:`onlinedeep.kernels`) → metrics
(:mod:`onlinedeep.metrics`) → snapshots in the run folder (:mod:`onlinedeep.snapshot`,
:mod:`onlinedeep.run_folder`).
"""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Iterable

import numpy as np
import torch

from onlinedeep import kernels, model
from onlinedeep import threads as thread_policy
from onlinedeep.config import ConfigError, RunConfig
from onlinedeep.metrics import RunMetrics
from onlinedeep.phases import Phase, chunk_ranges, is_chunk_boundary, phase_at
from onlinedeep.training import compile_time, data, draws
from onlinedeep.training.interrupt import ChunkWorker, StopSignals, TrainingInterrupted
from onlinedeep.training.producer import Chunk, Producer
from onlinedeep.training.state import RunResult, RunState, resolve_device

__all__ = ["Trainer", "RunResult", "NonFiniteLossError", "resolve_device"]


class NonFiniteLossError(RuntimeError):
    """A loss (NLL or reconstruction cost) became NaN or infinite; ``position`` is the stream
    position of the update whose loss was not finite."""

    def __init__(self, message: str, position: int):
        super().__init__(message)
        self.position = position

def _check_positions(cfg: RunConfig, position: int, stop: int | None, snapshot_at: Iterable[int],
                     has_folder: bool) -> tuple[int, set[int]]:
    """``stop`` (default: the end) and the pinned positions ahead, checked."""
    stop = cfg.total_updates if stop is None else int(stop)
    if not (position <= stop <= cfg.total_updates) or not is_chunk_boundary(cfg, stop):
        raise ConfigError(
            f"stop: expected a chunk boundary in [{position}, {cfg.total_updates}] "
            f"(a multiple of chunk_size={cfg.chunk_size} or a phase boundary), found {stop}"
        )
    pins = set()
    for p in map(int, snapshot_at):
        if p > stop or not is_chunk_boundary(cfg, p):
            raise ConfigError(
                f"snapshot_at: expected chunk boundaries <= stop={stop} (multiples of "
                f"chunk_size={cfg.chunk_size} or phase boundaries), found {p}"
            )
        if p >= position:
            pins.add(p)
    if pins and not has_folder:
        raise ConfigError("snapshot_at: needs a run folder (run_dir) to write snapshots into")
    return stop, pins


def _non_finite(cfg: RunConfig, phase: Phase, what: str, value, position: int) -> tuple[str, str]:
    """What failed, and what to try, when a loss became non-finite at ``position``."""
    if phase.kind == "supervised":
        rates = f"learning rate {cfg.learning_rate}, l1 {cfg.l1}, l2 {cfg.l2}"
        hint = "learning rate" + "".join(f" or {n}" for n in ("l1", "l2") if getattr(cfg, n) > 0)
    else:
        rates, hint = f"unsupervised learning rate {cfg.unsup_learning_rate}", "unsupervised learning rate"
    return (f"the {what} became non-finite ({value}) at update {position} (stream position "
            f"{position}, {phase.label}, {rates})"), f"; try a smaller {hint}"


def _progress_bar(config: RunConfig, position: int):
    from tqdm.auto import tqdm

    return tqdm(total=config.total_updates, initial=position, unit="upd", unit_scale=True,
                dynamic_ncols=True, smoothing=0.05, mininterval=0.5, file=sys.stderr)


def _update_bar(bar, phase: Phase, n: int, metrics: RunMetrics) -> None:
    bar.update(n)
    bar.set_description(phase.label, refresh=False)
    if phase.kind == "supervised":
        bar.set_postfix_str(f"online_error={metrics.online_error:.4f}", refresh=False)
    else:
        bar.set_postfix_str(f"reconstruction={metrics.reconstruction.mean():.2f}", refresh=False)


class Trainer(RunState):
    """Trains one network on the stream, one example per update.

    Parameters
    ----------
    config : RunConfig
    schedule : infinite_mnist.Schedule, optional
        The training sequence (default: contiguous from ``stream_start``); covers the run.
    stream : infinite_mnist.InfiniteMNIST, optional
        Anything with ``floats(indices) -> (n, n_inputs) float32``, ``labels(indices) -> (n,)
        uint8`` and ``provenance() -> dict``; default built from the configuration on first use.
    run_dir : path-like, optional
        Run folder (:mod:`onlinedeep.run_folder`); without one nothing is written unless
        :meth:`save_snapshot` is called.
    snapshot : onlinedeep.snapshot.Snapshot, optional
        Continue from this snapshot's state (use :func:`onlinedeep.training.resume.resume` or
        ``branch``, which check that it fits the configuration and schedule).

    Raises
    ------
    ConfigError
        On an invalid configuration, a kernel that does not run on the device, or a schedule
        shorter than the run.
    RunDirError
        If ``run_dir`` already holds a run (resume it instead) or is not a folder.

    Attributes
    ----------
    config, schedule, device, kernel, folder (RunFolder or None), metrics (RunMetrics)
    params : dict of str to torch.Tensor
        The network, updated in place (``onlinedeep.model`` layout).
    position : int
        Examples seen so far (updates done).
    train_error : dict or None
        Figure 12 blocks, stored in the snapshots (``onlinedeep.experiments.figure12``).
    elapsed_s : float
        Seconds of training (the loop's wall time), summed over every session of the run.
    compile_time : onlinedeep.training.compile_time.CompileTime
        ``compile_time.seconds``: the part of this object's runs' ``elapsed_s`` spent compiling
        Numba functions (non-zero only where the Numba cache lacked them).
    kernel_threads : onlinedeep.threads.KernelThreads or None
        With auto threads (``threads=0``) and a kernel that runs its own, the controller that sets
        ``kernel.n_threads`` before each chunk from the measured speed and the machine's load
        (None: the count is fixed).
    """

    # ------------------------------------------------------------------ the loop
    def run(self, stop: int | None = None, snapshot_at: Iterable[int] = (), progress: bool = True,
            on_start: Callable[[], None] | None = None) -> RunResult:
        """Train from the current position up to ``stop``.

        Parameters
        ----------
        stop : int, optional
            Stream position to stop at, a chunk boundary (default: ``total_updates``).
        snapshot_at : iterable of int
            Extra chunk boundaries (at most ``stop``) at which to write a pinned snapshot (never
            pruned); positions already passed are ignored. Needs a run folder. With a run folder
            the end of pre-training (position ``unsup_updates``) is always pinned.
        progress : bool
            Show a tqdm bar (phase, updates/s, ETA, online error).
        on_start : callable, optional
            Called with no argument once every check has passed and the run folder is locked,
            right before the first chunk (e.g. to announce the run: a message printed earlier
            could be followed by a refusal). Not called when there is nothing to do.

        A resumed trainer already at ``stop`` whose run folder holds that snapshot (pinned at the
        end or at a pinned position) returns at once and writes nothing: resuming a finished run
        changes no file.

        Raises
        ------
        ConfigError
            If a position is not a chunk boundary inside the run, or the stream differs from the
            one the snapshot was trained on.
        RunDirError
            If another process trains in the run folder.
        NonFiniteLossError
            When a loss becomes NaN/Inf (no snapshot is written from the bad parameters).
        TrainingInterrupted
            On SIGINT/SIGTERM, after a snapshot at the next chunk boundary.
        onlinedeep.training.producer.ProducerError
            If generating the stream fails (the original exception is chained).
        """
        if self._failed:
            raise RuntimeError(f"this trainer's run failed and cannot continue: {self._failed}")
        cfg = self.config
        stop, pins = _check_positions(cfg, self.position, stop, snapshot_at,
                                      self.folder is not None)
        if self.folder is not None and self.position < cfg.unsup_updates <= stop:
            pins.add(cfg.unsup_updates)  # the pre-trained network, kept (Figures 3-4, Table 1)
        if self._expected_data is not None:
            data.check_same_data(self._expected_data, self.provenance()["data"])
            self._expected_data = None
        done = self._saved_at(stop, pinned=stop == cfg.total_updates or stop in pins)
        if done is not None:  # e.g. resuming a finished run: nothing to do, nothing rewritten
            return self.result(snapshot=done)
        session = contextlib.nullcontext()
        if self.folder is not None:
            # Everything that can fail on the user's input (MNIST files, deformation settings) is
            # checked before the first file is written: the stream is built here.
            self.provenance()
            session = self.folder.session(start=self._start_folder if self._fresh else None)
        with session:
            if self.folder is not None and not self._fresh:
                self.folder.write_run_files(self.config, self.schedule.to_dict(), self.provenance())
                self.folder.log(f"resume at position {self.position} (run until {stop})")
                if self.position in pins:
                    self.save_to_run_folder(pinned=True)
            self._fresh = False
            torch_threads = thread_policy.decide("torch", cfg.threads)
            if torch_threads is not None:
                torch.set_num_threads(torch_threads)
            if on_start is not None:
                on_start()
            return self._loop(stop, pins, progress)

    def _loop(self, stop: int, pins: set[int], progress: bool) -> RunResult:
        cfg, folder = self.config, self.folder
        t0 = t_call = time.perf_counter()
        ranges = chunk_ranges(cfg, self.position, stop)
        bar = _progress_bar(cfg, self.position) if progress and ranges else None
        n_records = self.metrics.n_records
        loop_threads = thread_policy.decide("loop-torch") if self.kernel.owns_threads else None
        fetch = draws.fetcher(self.stream, self.schedule, cfg)
        try:
            # On the CPU each chunk runs in a worker thread, so a second signal stops at once
            # (CUDA kernel calls return at once anyway).
            with ChunkWorker(direct=self.device.type != "cpu") as run_chunk, \
                    compile_time.counting(self.compile_time), \
                    StopSignals(self._interrupted_at_once, announce=True) as signals, \
                    thread_policy.torch_threads(loop_threads), \
                    Producer(fetch, ranges, maxsize=cfg.queue_size) as producer:
                for chunk in producer:                               # the next chunk
                    phase = phase_at(cfg, chunk.start)
                    try:                                             # predict, score, update
                        run_chunk(self._train_chunk_timed, chunk, phase)
                    except TrainingInterrupted:  # a second signal: the chunk may still be running
                        self._failed = "stopped at once in the middle of a chunk"
                        raise
                    self.position = chunk.stop
                    if self.position == phase.stop:                  # record
                        self.metrics.record(self.position, phase.layer)
                    n_records = self._log_records(n_records)
                    if bar is not None:
                        _update_bar(bar, phase, len(chunk), self.metrics)
                    if folder is not None and (self.position in pins or (  # maybe snapshot
                            self.position % cfg.snapshot_every == 0 and self.position < stop)):
                        self.elapsed_s += time.perf_counter() - t0
                        t0 = time.perf_counter()
                        self.save_to_run_folder(pinned=self.position in pins)
                    if signals.received is not None and self.position < stop:
                        raise self._interrupted(signals.received)
        except NonFiniteLossError:
            self._log(f"stopped: {self._failed}")
            raise
        finally:
            self.elapsed_s += time.perf_counter() - t0
            if bar is not None:
                bar.close()

        done = self.position == cfg.total_updates
        if done:  # off the log_every grid only at the end: a resumed run keeps the same records
            self._record_now()
        self._log_records(n_records)
        snap = None
        if folder is not None:
            snap = self.save_to_run_folder(pinned=done or self.position in pins)
            if done:
                self._log(f"done: position {self.position}, online_error "
                          f"{self.metrics.online_error:.6g}")
        return self.result(snapshot=snap, elapsed_s=time.perf_counter() - t_call)

    def _train_chunk_timed(self, chunk: Chunk, phase: Phase) -> None:
        """:meth:`_train_chunk` at the thread count ``kernel_threads`` chooses, which it then
        learns the chunk's speed from (a fixed count without a controller)."""
        control = self.kernel_threads
        if control is None:
            self._train_chunk(chunk, phase)
            return
        self.kernel.n_threads = control.choose((phase.kind, phase.layer))
        t0 = time.perf_counter()
        self._train_chunk(chunk, phase)
        control.record(len(chunk), time.perf_counter() - t0)

    def _train_chunk(self, chunk: Chunk, phase: Phase) -> None:
        """One chunk of updates, one example each; the kernel predicts and scores each supervised
        example before learning from it."""
        cfg = self.config
        x = torch.from_numpy(chunk.x).to(self.device)
        if phase.kind == "pretrain":
            k = phase.layer
            h = model.hidden_forward(self.params, x, k)
            drawn = getattr(chunk, "draws", None) or draws.chunk_draws(cfg, chunk.start, chunk.stop)
            cost = kernels.pretrain_chunk(self.kernel, self.params, k, h, drawn,
                                          pretrain=cfg.pretrain,
                                          learning_rate=cfg.unsup_learning_rate, cd_k=cfg.cd_k,
                                          device=self.device)
            self._check_loss(cost, chunk, phase, "reconstruction cost")
            self.metrics.add_pretrain(chunk.start, k, cost)
        else:
            y = torch.from_numpy(chunk.labels.astype(np.int64)).to(self.device)
            errors, nll = self.kernel.supervised(self.params, x, y, learning_rate=cfg.learning_rate,
                                                 l1=cfg.l1, l2=cfg.l2)
            nll = nll.cpu().numpy()
            self._check_loss(nll, chunk, phase, "NLL")
            self.metrics.add_supervised(chunk.start, errors.cpu().numpy(), nll)

    def _check_loss(self, values: np.ndarray, chunk: Chunk, phase: Phase, what: str) -> None:
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(np.argmax(bad))
            self._failed, hint = _non_finite(self.config, phase, what, values[i], chunk.start + i)
            keep = (f"; the last good snapshot is {self._last_snapshot}" if self._last_snapshot
                    else "; no snapshot was written from these parameters")
            raise NonFiniteLossError(self._failed + keep + hint, chunk.start + i)
