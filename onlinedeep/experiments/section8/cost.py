"""What a section-8 job costs: updates left per phase kind, seconds per update measured by a short
real run, and the wall time of jobs on parallel workers (``experiment run --dry-run``)."""
from __future__ import annotations

import heapq
from pathlib import Path

import numpy as np

from onlinedeep.config import RunConfig
from onlinedeep.run_folder import RunFolder


def phase_updates(config: RunConfig, lo: int, hi: int) -> dict[str, int]:
    """Updates at positions ``[lo, hi)`` of a run of ``config``, by phase kind: ``"pretrain<k>"``
    (layer k) and ``"supervised"`` (kinds without updates left out)."""
    from onlinedeep.phases import phases

    out: dict[str, int] = {}
    for phase in phases(config):
        n = max(0, min(phase.stop, hi) - max(phase.start, lo))
        if n:
            name = "supervised" if phase.kind != "pretrain" else f"pretrain{phase.layer}"
            out[name] = out.get(name, 0) + n
    return out


def pending_updates(config: RunConfig) -> tuple[int, dict[str, int]]:
    """Where a network's job would start (the newest snapshot's position, 0 without one) and the
    updates it has left, by phase kind (:func:`phase_updates`)."""
    held = RunFolder(Path(config.out) / config.name).snapshots()
    done = held[-1][0] if held else 0
    return done, phase_updates(config, done, config.total_updates)


class _ArrayStream:
    """Examples served from arrays, stream index i being row ``i mod n`` (the stream interface the
    producer uses: ``floats``, ``labels``, ``provenance``)."""

    def __init__(self, x, y, what: str):
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.y = np.asarray(y).astype(np.uint8)
        self.what = what

    def floats(self, indices) -> np.ndarray:
        return self.x[np.asarray(indices, dtype=np.int64) % len(self.x)]

    def labels(self, indices) -> np.ndarray:
        return self.y[np.asarray(indices, dtype=np.int64) % len(self.y)]

    def provenance(self) -> dict:
        return {"source": self.what}


def _sparse_examples(config: RunConfig, n: int = 1_000) -> tuple[np.ndarray, np.ndarray]:
    """Inputs like digits' (about 19% of pixels lit), where MNIST cannot be read."""
    rng = np.random.default_rng(0)
    x = rng.random((n, config.n_inputs)) * (rng.random((n, config.n_inputs)) < 0.19)
    return x.astype(np.float32), rng.integers(0, config.n_classes, n)


def measure_seconds_per_update(config: RunConfig, threads: int, *, budget_s: float = 1.0,
                               stream=None, examples=None) -> dict[str, float]:
    """Seconds per update of each phase kind of a network, measured here and now, end to end.

    For each phase kind, a short real run of the network: :meth:`Trainer.run
    <onlinedeep.training.loop.Trainer.run>` from the phase's first position, without a run folder
    or progress bar, with the configuration's kernel at ``threads`` threads and its
    ``chunk_size``, fed by the live stream in the producer thread (with the noise draws), the
    metrics kept as in a real run. A few updates in tiny chunks warm up (they compile or load the
    Numba kernels); then one whole chunk is timed, then as many more as fit in about ``budget_s /
    (number of phase kinds)`` seconds in one ``run`` call (each call's first chunk waits for its
    generation, as a resumed run's does: a slight over-estimate).
    Upper layers are pre-trained on top of the random layers below, as the real run's cost does
    not depend on the weights. Left out: snapshots (one every ``snapshot_every`` updates), the
    log, the progress bar and the post-steps (test error, Figure 12 blocks).

    Parameters
    ----------
    config : RunConfig
    threads : int
        Kernel threads of the measurement (``RunConfig.threads``; 0 = auto).
    budget_s : float
        Seconds of timed chunks per network, shared by its phase kinds.
    stream : optional
        The stream to read (default: the configuration's, or synthetic sparse inputs if MNIST
        cannot be read).
    examples : (x (n, n_inputs) float32, y (n,) int) arrays, optional
        Time on these examples, in a cycle, instead of a stream (another data set's inputs).

    Returns
    -------
    dict of str to float
        ``"pretrain<k>"`` for each pre-trained layer, ``"supervised"``: seconds per update.
    """
    import dataclasses

    from onlinedeep.phases import chunk_ranges, phases
    from onlinedeep.training.loop import Trainer

    cfg = dataclasses.replace(config, threads=threads)
    if stream is None and examples is not None:
        stream = _ArrayStream(*examples, "the examples given")
    if stream is None:
        try:
            from onlinedeep.training.data import shared_stream

            stream = shared_stream(cfg)
            stream.floats(np.arange(70_000, 70_001, dtype=np.int64))
        except Exception:  # no MNIST here: the cost depends on how many pixels are lit
            stream = _ArrayStream(*_sparse_examples(cfg), "synthetic sparse inputs")
    todo: dict[str, tuple[int, int]] = {}
    for phase in phases(cfg):
        kind = "supervised" if phase.kind != "pretrain" else f"pretrain{phase.layer}"
        todo.setdefault(kind, (phase.start, phase.stop))
    share = budget_s / max(1, len(todo))
    # Warm-up on a few updates in chunks of 4 (chunk_size = 4 divides any snapshot_every that
    # 4 divides; 1 otherwise): it compiles or loads every function a chunk calls, whatever its size.
    tiny = 4 if cfg.snapshot_every % 4 == 0 else 1
    warm_cfg = dataclasses.replace(cfg, chunk_size=tiny)
    out = {}
    for kind, (start, stop) in todo.items():
        warm = Trainer(warm_cfg, stream=stream)
        warm.position = start
        warm.run(stop=min(stop, (start // tiny + 2) * tiny), progress=False)
        ranges = chunk_ranges(cfg, start, stop)
        trainer = Trainer(cfg, stream=stream)
        trainer.position = start
        seconds = trainer.run(stop=ranges[0][1], progress=False).elapsed_s  # one whole chunk
        last = ranges[0][1]
        per_chunk = seconds / (ranges[0][1] - ranges[0][0]) * cfg.chunk_size
        more = int(min(len(ranges) - 1, (share - seconds) // max(per_chunk, 1e-9)))
        if more > 0:  # then as many as fit in the share, in one run (the producer ahead)
            last = ranges[more][1]
            seconds += trainer.run(stop=last, progress=False).elapsed_s
        out[kind] = seconds / (last - start)
    return out


def makespan(durations: list[tuple[str, float, tuple[str, ...]]], workers: int) -> float:
    """Wall time of jobs on ``workers`` parallel workers, each started (in the order given) as soon
    as a worker is free and its dependencies have finished.

    Parameters
    ----------
    durations : list of (key, seconds, depends_on)
    workers : int

    Returns
    -------
    float
        Seconds until the last job ends.
    """
    keys = {key for key, _, _ in durations}
    pending, running, ends, now = list(durations), [], {}, 0.0
    while pending or running:
        while len(running) < max(1, workers):
            ready = next((j for j in pending
                          if all(d in ends or d not in keys for d in j[2])), None)
            if ready is None:
                break
            pending.remove(ready)
            heapq.heappush(running, (now + ready[1], ready[0]))
        if not running:  # a dependency cycle: nothing can start
            break
        now, key = heapq.heappop(running)
        ends[key] = now
    return now
