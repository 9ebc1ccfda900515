"""Thread counts on a shared machine: 1 thread, N threads and auto (adaptive), quiet and loaded.

Prints, in one run (issue 11):

* updates/s of ``Trainer.run`` (numba kernel, supervised, real MNIST through the live generator,
  chunks of 1,000) with ``threads=1``, ``threads=N`` (default 2) and ``threads=0`` (auto: the
  adaptive :class:`onlinedeep.threads.KernelThreads`, from a fresh trainer each time, so its
  start-up probing is included), each on a quiet machine and with one CPU-bound process
  (``python -c "while True: pass"``, nice 0) that this benchmark starts itself; modes and load
  states interleaved per round, and each rate divided by the same round's 1-thread rate in the
  same load state (medians over rounds); the share of auto's chunks that ran on N threads;
* model-updates/s of R models of the same network trained side by side in one process
  (:class:`onlinedeep.kernels.replicas.Replicas`, one model per worker thread) against R separate
  one-thread processes running at the same time (R = the cores) and one model on one thread.

The load averages (``/proc/loadavg``) before and after each part are printed with the figures.

Usage::

    ONLINEDEEP_MNIST_DIR=../shared/data/mnist python benchmarks/bench_threads.py \\
        [--network 1x2000|3x1000] [--seconds 3] [--repeats 3] [--skip-trainer] [--skip-replicas]
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import typer

from onlinedeep import threads as thread_policy
from onlinedeep.config import RunConfig
from onlinedeep.kernels.numba_cpu import NumbaKernel
from onlinedeep.kernels.replicas import Replicas
from onlinedeep.model import init_params
from onlinedeep.training import Trainer

CHUNK = 1000
NETWORKS = {"1x2000": (1, 2000), "3x1000": (3, 1000)}


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


@contextlib.contextmanager
def cpu_load(on: bool):
    """One CPU-bound process (nice 0) while the block runs, when ``on``."""
    if not on:
        yield
        return
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        proc.kill()
        proc.wait()


def trainer_rate(stream, network: str, threads: int, seconds: float) -> tuple[float, float | None]:
    """updates/s of a fresh trainer over about ``seconds`` (whole chunks), and for auto the share of
    its chunks on more than one thread."""
    layers, units = NETWORKS[network]
    cfg = RunConfig(layers=layers, n_hidden=units, pretrain="none", unsup_updates=0,
                    sup_updates=100_000_000, chunk_size=CHUNK, kernel="numba", device="cpu",
                    threads=threads, learning_rate=0.05, window=CHUNK, log_every=100 * CHUNK,
                    snapshot_every=100_000_000)
    trainer = Trainer(cfg, stream=stream)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        trainer.run(stop=trainer.position + CHUNK, progress=False)
    elapsed = time.perf_counter() - t0
    share = None
    if trainer.kernel_threads is not None:
        history = trainer.kernel_threads.history
        share = sum(n > 1 for n in history) / len(history)
    return trainer.position / elapsed, share


def bench_trainer(network: str, n_max: int, seconds: float, repeats: int, mnist_dir) -> None:
    from infinite_mnist import InfiniteMNIST

    stream = InfiniteMNIST(mnist_dir)
    modes = [1, n_max, 0]
    for mode in modes:  # compile and warm up every path
        trainer_rate(stream, network, mode, 0.5)
    rates = {(load, m): [] for load in (False, True) for m in modes}
    ratios = {(load, m): [] for load in (False, True) for m in modes}
    shares = {False: [], True: []}
    print(f"loadavg before: {loadavg()}", flush=True)
    for r in range(repeats):
        for load in (False, True):
            order = modes[r % 3:] + modes[:r % 3]
            with cpu_load(load):
                got = {}
                for mode in order:
                    got[mode], share = trainer_rate(stream, network, mode, seconds)
                    if mode == 0:
                        shares[load].append(share)
                        auto_share = share
            for mode in modes:
                rates[load, mode].append(got[mode])
                ratios[load, mode].append(got[mode] / got[1])
            print(f"  round {r} {'loaded' if load else 'quiet '}: "
                  + ", ".join(f"{_name(m, n_max)} {got[m]:,.0f}/s" for m in modes)
                  + f"; auto on {n_max} threads {auto_share:.0%} of chunks; loadavg {loadavg()}", flush=True)
    print(f"loadavg after: {loadavg()}")
    print(f"\nTrainer.run, 784-{network}-10 supervised, updates/s (median of {repeats}) and × the "
          "same round's 1-thread rate (median):")
    print(f"{'machine':<8s} {'threads':<22s} {'updates/s':>10s} {'× 1 thread':>11s}")
    for load in (False, True):
        for mode in modes:
            name = _name(mode, n_max)
            if mode == 0:
                name += f" ({statistics.median(shares[load]):.0%} on {n_max})"
            print(f"{'loaded' if load else 'quiet':<8s} {name:<22s} "
                  f"{statistics.median(rates[load, mode]):>10,.0f} "
                  f"{statistics.median(ratios[load, mode]):>11.2f}")


def _name(mode: int, n_max: int) -> str:
    return "auto" if mode == 0 else f"{mode} thread" + ("s" if mode > 1 else "")


# --------------------------------------------------------------------------- replicas vs processes
def _data(mnist_dir, n: int = 20_000) -> tuple[torch.Tensor, torch.Tensor]:
    from infinite_mnist import InfiniteMNIST

    stream = InfiniteMNIST(mnist_dir)
    idx = np.arange(70_000, 70_000 + n, dtype=np.int64)
    return torch.from_numpy(stream.floats(idx)), torch.from_numpy(stream.labels(idx).astype(np.int64))


def _model(seed: int) -> dict:
    return init_params(784, 2000, 1, seed)


def _chunks(x, y, r: int):
    """Model r's endless chunks (each model its own examples)."""
    n = x.shape[0] // CHUNK
    i = r * 7
    while True:
        k = i % n
        yield x[k * CHUNK:(k + 1) * CHUNK], y[k * CHUNK:(k + 1) * CHUNK]
        i += 1


def single_process_rate(x, y, seconds: float, start_at: float | None = None) -> tuple[int, float]:
    """(updates, seconds) of one model on one thread; waits until ``start_at`` (time.time())."""
    kernel, params, chunks = NumbaKernel(n_threads=1), _model(0), _chunks(x, y, 0)
    kernel.supervised(params, *next(chunks), learning_rate=0.05)  # warm up
    if start_at is not None:
        time.sleep(max(0.0, start_at - time.time()))
    t0 = time.perf_counter()
    done = 0
    while time.perf_counter() - t0 < seconds:
        kernel.supervised(params, *next(chunks), learning_rate=0.05)
        done += CHUNK
    return done, time.perf_counter() - t0


def replicas_rate(x, y, n_models: int, seconds: float) -> float:
    models = [_model(r) for r in range(n_models)]
    streams = [_chunks(x, y, r) for r in range(n_models)]
    with Replicas(models) as reps:
        def step():
            batch = [next(s) for s in streams]
            reps.supervised([b[0] for b in batch], [b[1] for b in batch], learning_rate=0.05)
        step()
        t0 = time.perf_counter()
        done = 0
        while time.perf_counter() - t0 < seconds:
            step()
            done += n_models * CHUNK
        return done / (time.perf_counter() - t0)


def processes_rate(n_procs: int, seconds: float, mnist_dir) -> float:
    """Model-updates/s of ``n_procs`` one-thread processes training at the same time."""
    start_at = time.time() + 8.0  # after every process has loaded its data and compiled
    cmd = [sys.executable, __file__, "--worker-start-at", repr(start_at), "--seconds", str(seconds)]
    if mnist_dir:
        cmd += ["--mnist-dir", str(mnist_dir)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(n_procs)]
    total = 0.0
    for p in procs:
        out, _ = p.communicate()
        done, elapsed = (float(v) for v in out.split()[-2:])
        total += done / elapsed
    if time.time() < start_at:
        raise RuntimeError("a worker finished before the common start")
    return total


def bench_replicas(seconds: float, repeats: int, mnist_dir) -> None:
    cores = thread_policy.available_cores()
    x, y = _data(mnist_dir)
    print(f"\nloadavg before: {loadavg()}", flush=True)
    rows = {"one model, 1 thread": [], f"Replicas, R = {cores} (one process)": [],
            f"{cores} one-thread processes at once": []}
    for r in range(repeats):
        done, elapsed = single_process_rate(x, y, seconds)
        got = [done / elapsed, replicas_rate(x, y, cores, seconds),
               processes_rate(cores, seconds, mnist_dir)]
        for key, value in zip(rows, got):
            rows[key].append(value)
        print("  round", r, ", ".join(f"{v:,.0f}" for v in got), f"loadavg {loadavg()}", flush=True)
    print(f"loadavg after: {loadavg()}")
    print(f"\n784-2000-10 supervised, model-updates/s (median of {repeats}), × one model on 1 thread:")
    base = rows["one model, 1 thread"]
    for key, values in rows.items():
        ratio = statistics.median(v / b for v, b in zip(values, base))
        print(f"  {key:<36s} {statistics.median(values):>10,.0f} {ratio:>6.2f}")


def main(
    network: str = typer.Option("1x2000", help="1x2000 (784-2000-10) or 3x1000 (784-1000x3-10)"),
    seconds: float = typer.Option(3.0, help="seconds per measurement"),
    repeats: int = typer.Option(3, help="rounds (medians are reported)"),
    threads: int = typer.Option(2, help="the N of 'N threads'"),
    mnist_dir: str = typer.Option(None, help="MNIST IDX folder [$ONLINEDEEP_MNIST_DIR]"),
    skip_trainer: bool = typer.Option(False, help="skip the thread-count table"),
    skip_replicas: bool = typer.Option(False, help="skip replicas against processes"),
    worker_start_at: float = typer.Option(None, hidden=True),
) -> None:
    mnist_dir = mnist_dir or os.environ.get("ONLINEDEEP_MNIST_DIR")
    if worker_start_at is not None:  # one of processes_rate's workers
        x, y = _data(mnist_dir)
        done, elapsed = single_process_rate(x, y, seconds, start_at=worker_start_at)
        print(done, elapsed)
        return
    if network not in NETWORKS:
        raise typer.BadParameter(f"expected one of {sorted(NETWORKS)}, found {network!r}",
                                 param_hint="--network")
    print(f"cores available: {thread_policy.available_cores()}, auto kernel threads at most "
          f"{thread_policy.decide('kernel')}")
    if not skip_trainer:
        bench_trainer(network, threads, seconds, repeats, mnist_dir)
    if not skip_replicas:
        bench_replicas(seconds, repeats, mnist_dir)


if __name__ == "__main__":
    typer.run(main)
