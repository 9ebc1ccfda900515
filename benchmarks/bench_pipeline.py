"""Is the producer ever the bottleneck? Trainer throughput with the live generator vs pre-generated data.

Issue 5: "trainer throughput with the live generator within 5% of its throughput on pre-generated
data". Prints, in one run, updates/s through :meth:`onlinedeep.training.loop.Trainer.run` (numba kernel,
no run folder, no progress bar) for

* a 784-2000-10 supervised run (``pretrain="none"``), and
* a DAE pre-training phase of a 784-1000 layer (masking noise, corruption 0.25),

each fed three ways:

- ``live``: the InfiniteMNIST generator (first-order deformations) through the producer thread, as in
  a real run;
- ``pregenerated``: the same examples generated beforehand and served from memory by
  :class:`PregeneratedStream` (the interface the producer uses: ``floats``, ``labels``,
  ``provenance``), through the same trainer and producer;
- ``kernel``: the kernel alone on the pre-generated examples (and, for the DAE, noise draws computed
  beforehand), the same chunks, without the trainer: the ceiling.

``live / pregenerated`` is the issue's ratio (target >= 0.95); ``pregenerated / kernel`` is what the
trainer itself costs (noise draws, metrics, producer hand-off). Paths are measured interleaved, one
of each per round, and ratios are medians over rounds of the same round's rates, so load from other
processes hits all of them alike. Each trainer measurement is a whole ``Trainer.run`` of ``--updates``
updates from fresh weights (the producer's first chunk, ~1% of a 3 s run, included).

Measured (2-core development machine, another process on both cores, ``--threads 1 --updates 20000
--repeats 3``): live/pregenerated 0.990 (784-2000-10) and 1.100 (DAE layer; rounds 1.100, 1.298,
0.946); pregenerated/kernel for the DAE layer 0.899 while the trainer computed the noise draws on
the main thread, 1.015 since they are computed in the producer thread (docs/speed.md).

Usage::

    ONLINEDEEP_MNIST_DIR=../shared/data/mnist python benchmarks/bench_pipeline.py [--threads 1,2]
        [--updates 20000] [--repeats 3]
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
import typer

from infinite_mnist import InfiniteMNIST, Schedule
from onlinedeep import kernels, noise
from onlinedeep.config import RunConfig
from onlinedeep.model import init_params
from onlinedeep.training.loop import Trainer


class PregeneratedStream:
    """Examples generated beforehand, served from memory (the stream interface of the producer).

    Parameters
    ----------
    stream : InfiniteMNIST
        The live stream to copy from.
    indices : (n,) int64 array
        Stream indices to generate (any order; duplicates allowed).

    Raises
    ------
    KeyError (from ``floats``/``labels``)
        If asked for an index that was not generated.
    """

    def __init__(self, stream, indices: np.ndarray):
        self._index = np.unique(np.asarray(indices, dtype=np.int64))
        self._x = np.ascontiguousarray(stream.floats(self._index), dtype=np.float32)
        self._y = np.asarray(stream.labels(self._index), dtype=np.uint8)
        self._provenance = dict(stream.provenance())

    def _rows(self, indices) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        rows = np.searchsorted(self._index, indices)
        rows = np.minimum(rows, len(self._index) - 1)
        missing = self._index[rows] != indices
        if missing.any():
            raise KeyError(f"stream index {int(indices[np.argmax(missing)])} was not pre-generated")
        return rows

    def floats(self, indices) -> np.ndarray:
        """``(n, 784) float32`` in [0, 1] (a copy, as the generator returns)."""
        return self._x[self._rows(indices)]

    def labels(self, indices) -> np.ndarray:
        """``(n,) uint8``."""
        return self._y[self._rows(indices)]

    def provenance(self) -> dict:
        return {**self._provenance, "note": "pre-generated for bench_pipeline"}


def _config(case: str, updates: int, threads: int, chunk: int, dae_units: int = 1000) -> RunConfig:
    common = dict(kernel="numba", device="cpu", threads=threads, chunk_size=chunk,
                  window=10_000, log_every=10_000, snapshot_every=10 * updates, seed=0)
    if case == "supervised":
        return RunConfig(layers=1, n_hidden=2000, pretrain="none", unsup_updates=0,
                         sup_updates=updates, learning_rate=0.01, **common)
    return RunConfig(layers=1, n_hidden=dae_units, pretrain="dae", unsup_updates=updates,
                     sup_updates=chunk, unsup_learning_rate=0.005, noise="masking",
                     corruption_level=0.25, **common)


def _trainer_rate(cfg: RunConfig, stream, updates: int) -> float:
    trainer = Trainer(cfg, stream=stream)
    result = trainer.run(stop=updates, progress=False)
    assert result.position == updates
    return updates / result.elapsed_s


def _kernel_rate(cfg: RunConfig, data: dict, updates: int) -> float:
    kernel = kernels.get("numba", "cpu", threads=cfg.threads)
    params = init_params(784, cfg.n_hidden, cfg.layers, cfg.seed)
    t0 = time.perf_counter()
    for lo in range(0, updates, cfg.chunk_size):
        hi = lo + cfg.chunk_size
        if cfg.pretrain == "none":
            kernel.supervised(params, data["x"][lo:hi], data["y"][lo:hi],
                              learning_rate=cfg.learning_rate)
        else:
            kernel.dae(params, 0, data["x"][lo:hi], data["keep"][lo:hi], None,
                       learning_rate=cfg.unsup_learning_rate)
    return updates / (time.perf_counter() - t0)


def main(
    threads: str = typer.Option("1,2", help="kernel thread counts to measure, comma-separated"),
    updates: int = typer.Option(20_000, help="updates per measurement (a multiple of --chunk)"),
    chunk: int = typer.Option(1000, help="chunk_size"),
    repeats: int = typer.Option(3, help="rounds (medians reported)"),
    mnist_dir: str = typer.Option(None, help="folder of the MNIST IDX .gz files"),
    cases: str = typer.Option("supervised,dae", help="cases to run: supervised, dae"),
    dae_units: int = typer.Option(1000, help="units of the DAE layer (2000: Figure 13's pre-training)"),
) -> None:
    if updates % chunk:
        raise typer.BadParameter(f"--updates must be a multiple of --chunk={chunk}, found {updates}")
    thread_counts = [int(t) for t in threads.split(",")]
    live = InfiniteMNIST(mnist_dir=mnist_dir, mode="first-order", seed=0)
    schedule = Schedule.contiguous(updates + chunk)
    t0 = time.perf_counter()
    pre = PregeneratedStream(live, schedule.indices(0, updates + chunk))
    gen_s = time.perf_counter() - t0
    positions = np.arange(updates, dtype=np.int64)
    x = torch.from_numpy(pre.floats(schedule.indices(0, updates)))
    data = {
        "x": x,
        "y": torch.from_numpy(pre.labels(schedule.indices(0, updates)).astype(np.int64)),
        "keep": torch.from_numpy(noise.masking_keep(0, positions, 0, 784,
                                                    noise.corruption_count(0.25, 784))),
    }
    print(f"onlinedeep bench_pipeline: {updates} updates per measurement, chunk {chunk}, "
          f"{repeats} rounds (medians), generator first-order "
          f"({updates + chunk} examples pre-generated in {gen_s:.2f} s = "
          f"{(updates + chunk) / gen_s:.0f} examples/s, main thread), numba kernel")
    header = (f"{'case':28s} {'threads':>7s} {'live/s':>8s} {'pregen/s':>8s} {'kernel/s':>8s} "
              f"{'live/pregen':>11s} {'pregen/kernel':>13s}")
    print(header)
    print("-" * len(header))
    labels = {"supervised": "784-2000-10 supervised", "dae": f"784-{dae_units} DAE layer (masking)"}
    for case in cases.split(","):
        for t in thread_counts:
            cfg = _config(case, updates, t, chunk, dae_units)
            paths = {
                "live": lambda: _trainer_rate(cfg, live, updates),
                "pregen": lambda: _trainer_rate(cfg, pre, updates),
                "kernel": lambda: _kernel_rate(cfg, data, updates),
            }
            # warm-up: compilation and caches, a short run of each
            short = _config(case, 2 * chunk, t, chunk, dae_units)
            _trainer_rate(short, live, 2 * chunk)
            _trainer_rate(short, pre, 2 * chunk)
            _kernel_rate(short, data, 2 * chunk)
            rates = {name: [] for name in paths}
            for _ in range(repeats):
                for name, fn in paths.items():
                    rates[name].append(fn())
            med = {name: statistics.median(r) for name, r in rates.items()}
            lp = statistics.median(a / b for a, b in zip(rates["live"], rates["pregen"]))
            pk = statistics.median(a / b for a, b in zip(rates["pregen"], rates["kernel"]))
            print(f"{labels[case]:28s} {t:7d} {med['live']:8.0f} {med['pregen']:8.0f} "
                  f"{med['kernel']:8.0f} {lp:11.3f} {pk:13.3f}   (live/pregen per round: "
                  f"{', '.join(f'{a / b:.3f}' for a, b in zip(rates['live'], rates['pregen']))})",
                  flush=True)
    print("live/pregen: the issue-5 ratio (target >= 0.95); pregen/kernel: the trainer's own cost "
          "(noise draws, metrics, producer hand-off) against the bare kernel on the same chunks")


if __name__ == "__main__":
    typer.run(main)
