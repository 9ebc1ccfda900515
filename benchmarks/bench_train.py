"""Batch-size-1 training throughput: naive autograd loop vs the reference and numba kernels.

Prints, in one run (issue 5):

* updates/s for 784-2000-10 and 784-1000-1000-1000-10 (supervised), one 784-1000 and one 784-2000
  DAE layer (masking noise, corruption 0.25; the 784-2000 one is the pre-training of the paper's
  Figure 13) and one 784-1000 RBM layer (CD-1), for
  - ``naive``: autograd + ``torch.optim.SGD``, one example per step (the baseline; for the RBM, whose
    CD update is not the gradient of a loss, the baseline is the reference kernel),
  - ``reference``: :mod:`onlinedeep.kernels.reference` (hand-written PyTorch, no autograd),
  - ``numba 1t`` / ``numba Nt``: :mod:`onlinedeep.kernels.numba_cpu` with 1 and N threads;
  and the ratio of each to the baseline, all measured in the same run (medians over repeats);
* a roofline: the weight bytes each update must move (:func:`weight_traffic`: first layer, the
  rows of the non-zero pixels of this example (read + written) and of the next one (read), in one
  sweep; other hidden layers read twice and written once, the softmax layer likewise; a DAE or RBM
  layer read and written once, plus one more read of the rows the next example's encoder reads)
  divided by the
  bandwidth of an in-place rank-1 update over an array of the same size, measured in the same run;
  and the fraction of that ceiling the numba kernel achieves. Next to it, the reads alone divided by
  the bandwidth of a read-only pass (row dot products) over the same array: on one core a pass that
  only reads a row takes about as long as one that reads and writes it (writes go back in the
  background), so read-heavy paths (a forward pass, the decoder sweep) cannot reach the byte
  roofline, and this second ceiling says how close they are to the reads they must do;
* end to end: the command ``onlinedeep train --layers 1 --n-hidden 2000 --pretrain none --threads 1
  --sup-updates N`` (live InfiniteMNIST stream, metrics, snapshot, plot: everything a user runs),
  timed as a subprocess for a small and a large N; its rate is N_large / wall time, and the
  marginal rate (N_large - N_small) / (difference of the wall times) leaves out the start-up
  (imports, compiled-code cache, first chunk) and the post-steps (test error, plot). Interleaved
  with it, one of each per round: the naive 1-thread loop, ``Trainer.run`` of the same
  configuration in this process (the training loop without start-up), and the numba kernel alone
  on 1 thread on raw MNIST digits and on the command's own stream examples (the deformed digits
  light more pixels, so each update touches more first-layer rows); ratios to naive and to the
  kernel on the stream examples, per round; and the CPU seconds per update of the kernel and of
  the command (marginal, all its threads), which the load of other processes hardly moves;
* model-updates/s of :class:`onlinedeep.kernels.replicas.Replicas` for R = 1, 2, 4, 10 replicas of
  784-2000-10, next to R sequential runs of the single-model kernel.

Inputs are real MNIST training digits (``$ONLINEDEEP_MNIST_DIR`` or ``--mnist-dir``, IDX gz files).

Usage::

    ONLINEDEEP_MNIST_DIR=../shared/data/mnist python benchmarks/bench_train.py [--seconds 2]
        [--repeats 3] [--threads 2] [--skip-replicas] [--skip-cli] [--skip-table] [--cli-updates 20000,200000]
"""

from __future__ import annotations

import gzip
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
import torch
import typer
from numba import njit, prange

from onlinedeep.kernels.numba_cpu import NumbaKernel
from onlinedeep.kernels.replicas import Replicas
from onlinedeep.model import clone_params, init_params

try:
    from onlinedeep.kernels.reference import ReferenceKernel
except ImportError:  # pragma: no cover - the reference lands with issue 3
    ReferenceKernel = None

N_DIGITS = 20_000
CHUNK = 1_000


def load_digits(mnist_dir: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first N_DIGITS MNIST training digits: (n, 784) float32 in [0, 1], (n,) int64."""
    root = mnist_dir or os.environ.get("ONLINEDEEP_MNIST_DIR")
    if not root:
        raise typer.BadParameter("set ONLINEDEEP_MNIST_DIR or pass --mnist-dir (folder of MNIST "
                                 "IDX .gz files)")
    root = Path(root)
    images_path, labels_path = root / "train-images-idx3-ubyte.gz", root / "train-labels-idx1-ubyte.gz"
    with gzip.open(images_path, "rb") as f:
        raw = f.read(16 + 784 * N_DIGITS)
    with gzip.open(labels_path, "rb") as f:
        labels = f.read(8 + N_DIGITS)
    if len(raw) != 16 + 784 * N_DIGITS or len(labels) != 8 + N_DIGITS:
        raise ValueError(f"{images_path} / {labels_path}: expected at least {N_DIGITS} digits")
    x = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(N_DIGITS, 784)
    y = np.frombuffer(labels, dtype=np.uint8, offset=8)
    return (torch.from_numpy(x.astype(np.float32) / np.float32(255.0)),
            torch.from_numpy(y.astype(np.int64)))


def rate(run_chunk, seconds: float, repeats: int, warm_up: bool = True) -> float:
    """Median over ``repeats`` of updates/s; ``run_chunk(i)`` runs chunk i and returns its length."""
    if warm_up:
        run_chunk(0)  # compilation, caches
    rates = []
    chunk = 1
    for _ in range(repeats):
        done, t0 = 0, time.perf_counter()
        while True:
            done += run_chunk(chunk)
            chunk += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                break
        rates.append(done / elapsed)
    return statistics.median(rates)


# --------------------------------------------------------------------------- naive baselines

def naive_supervised(params, x, y, lr):
    """autograd + torch.optim.SGD, batch 1: the loop a user would write first."""
    depth = sum(1 for k in params if k.startswith("W") and k[1:].isdigit())
    layers = []
    for k in range(depth):
        lin = torch.nn.Linear(*params[f"W{k}"].shape)
        with torch.no_grad():
            lin.weight.copy_(params[f"W{k}"].t())
            lin.bias.zero_()
        layers += [lin, torch.nn.Sigmoid()]
    out = torch.nn.Linear(*params["W_out"].shape)
    with torch.no_grad():
        out.weight.copy_(params["W_out"].t())
        out.bias.zero_()
    model = torch.nn.Sequential(*layers, out)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run(i):
        lo = (i * 200) % (len(x) - 200)
        for j in range(lo, lo + 200):
            opt.zero_grad()
            loss = loss_fn(model(x[j:j + 1]), y[j:j + 1])
            loss.backward()
            opt.step()
        return 200
    return run


def naive_dae(params, x, keep, lr):
    W = params["W0"].clone().requires_grad_(True)
    b = params["b0"].clone().requires_grad_(True)
    c = params["c0"].clone().requires_grad_(True)
    opt = torch.optim.SGD([W, b, c], lr=lr)

    def run(i):
        lo = (i * 200) % (len(x) - 200)
        for j in range(lo, lo + 200):
            opt.zero_grad()
            xt = x[j] * keep[j]
            h = torch.sigmoid(xt @ W + b)
            z = h @ W.t() + c
            loss = torch.nn.functional.binary_cross_entropy_with_logits(z, x[j], reduction="sum")
            loss.backward()
            opt.step()
        return 200
    return run


# --------------------------------------------------------------------------- roofline

@njit(nogil=True, parallel=True)
def _rank1_sweep(W, u, v, T):
    """W += u vᵀ in place, rows split between T threads (the bandwidth probe)."""
    n = W.shape[0]
    for t in prange(T):
        for j in range(n * t // T, n * (t + 1) // T):
            row = W[j]
            s = u[j]
            for c in range(row.shape[0]):
                row[c] += s * v[c]


def bandwidth(n_floats: int, threads: int, seconds: float) -> float:
    """Bytes/s (read + write) of an in-place rank-1 update over ``n_floats`` float32 weights."""
    cols = 1000
    W = np.zeros((max(1, n_floats // cols), cols), dtype=np.float32)
    u = np.full(W.shape[0], 1e-7, dtype=np.float32)
    v = np.ones(cols, dtype=np.float32)
    numba.set_num_threads(threads)
    _rank1_sweep(W, u, v, threads)
    best = []
    for _ in range(3):
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 3:
            _rank1_sweep(W, u, v, threads)
            reps += 1
        best.append(reps * 2 * W.nbytes / (time.perf_counter() - t0))
    return statistics.median(best)


@njit(nogil=True, parallel=True, fastmath={"reassoc"})
def _read_sweep(W, v, T):
    """Σ_j W_j·v, rows split between T threads: a read-only pass (the read-bandwidth probe)."""
    n = W.shape[0]
    acc = np.zeros(T, dtype=np.float32)
    for t in prange(T):
        s = np.float32(0.0)
        for j in range(n * t // T, n * (t + 1) // T):
            row = W[j]
            for c in range(row.shape[0]):
                s += row[c] * v[c]
        acc[t] = s
    return acc


def read_bandwidth(n_floats: int, threads: int, seconds: float) -> float:
    """Bytes/s of a read-only pass (dot products of every row) over ``n_floats`` float32 weights."""
    cols = 1000
    W = np.full((max(1, n_floats // cols), cols), 1e-3, dtype=np.float32)
    v = np.ones(cols, dtype=np.float32)
    numba.set_num_threads(threads)
    _read_sweep(W, v, threads)
    best = []
    for _ in range(3):
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 3:
            _read_sweep(W, v, threads)
            reps += 1
        best.append(reps * W.nbytes / (time.perf_counter() - t0))
    return statistics.median(best)


def weight_traffic(sizes: list[int], rows_read: float, rows_written: float,
                   kind: str, encoder_rows: float = 0.0) -> tuple[float, float]:
    """(bytes read, bytes written) per update that no exact batch-1 implementation avoids (float32
    weights only).

    supervised: first layer, the rows of the next example's non-zero pixels are read (its forward)
    and those of this example's non-zero pixels read and written (its update), one sweep for both:
    ``rows_read`` = mean |nz(x_t) ∪ nz(x_t+1)|, ``rows_written`` = mean |nz(x_t)|; every other weight
    matrix is read twice (forward; backward with the update) and written once — the next forward
    through layer k needs layer k-1's update, which needs layer k's backward, so only the first
    layer's sweep can be merged with the next forward. dae/rbm (one layer): every row read and
    written once (the update, merged with the next example's encoder on the rows it reads and
    with its decoder or first Gibbs sweep on the others), and the ``encoder_rows`` rows the next
    example's encoder reads (mean |nz(x̃_t+1)|) read once more, by its decoder/Gibbs sweep: that
    sweep needs the encoder's whole output, so it cannot share their update's pass.
    """
    if kind in ("dae", "rbm"):
        return 4 * (sizes[0] + encoder_rows) * sizes[1], 4 * sizes[0] * sizes[1]
    read = 4 * rows_read * sizes[1]
    written = 4 * rows_written * sizes[1]
    for a, b in zip(sizes[1:-1], sizes[2:]):
        read += 2 * 4 * a * b
        written += 4 * a * b
    return read, written


def cli_seconds(updates: int, mnist_dir: str) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of ``onlinedeep train`` (784-2000-10, no
    pre-training, 1 thread, ``updates`` supervised updates) run as a subprocess, into a temporary
    folder removed afterwards.

    Raises
    ------
    RuntimeError
        If the command fails (its last output lines are in the message).
    """
    exe = shutil.which("onlinedeep") or str(Path(sys.executable).with_name("onlinedeep"))
    out = tempfile.mkdtemp(prefix="bench-train-cli-")
    cmd = [exe, "train", "--layers", "1", "--n-hidden", "2000", "--pretrain", "none", "--threads", "1",
           "--sup-updates", str(updates), "--out", out, "--no-progress"]
    env = {**os.environ, "ONLINEDEEP_MNIST_DIR": mnist_dir}
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-5:])
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {done.returncode}):\n{tail}")
    return elapsed, cpu


def cli_config(updates: int, mnist_dir: str | None = None):
    """The configuration ``onlinedeep train --layers 1 --n-hidden 2000 --pretrain none --threads 1
    --sup-updates updates`` runs (the paper preset)."""
    from onlinedeep.config import RunConfig

    return RunConfig.preset("paper", layers=1, n_hidden=2000, pretrain="none", threads=1,
                            sup_updates=updates, mnist_dir=mnist_dir)


def stream_digits(mnist_dir: str) -> tuple[object, torch.Tensor, torch.Tensor]:
    """The command's stream and its first N_DIGITS training examples (deformed digits, denser
    than the raw ones: more first-layer rows per update), ``(n, 784) float32``, ``(n,) int64``."""
    from onlinedeep.training import data

    config = cli_config(N_DIGITS, mnist_dir)
    stream = data.make_stream(config)
    idx = data.default_schedule(config).indices(0, N_DIGITS)
    return (stream, torch.from_numpy(np.asarray(stream.floats(idx))),
            torch.from_numpy(np.asarray(stream.labels(idx)).astype(np.int64)))


def trainer_rate(updates: int, stream) -> float:
    """Updates/s of the command's run in this process: ``Trainer.run`` without a run folder or
    progress bar (live stream, producer, kernel, metrics; no start-up, snapshot or post-steps)."""
    from onlinedeep.training.loop import Trainer

    result = Trainer(cli_config(updates), stream=stream).run(progress=False)
    return updates / result.elapsed_s


def cpu_rate(run_chunk, seconds: float) -> tuple[float, float]:
    """(updates per wall second, updates per CPU second of this thread) of ``run_chunk`` calls for
    ``seconds``."""
    done, chunk, t0, c0 = 0, 1, time.perf_counter(), time.thread_time()
    while time.perf_counter() - t0 < seconds:
        done += run_chunk(chunk)
        chunk += 1
    return done / (time.perf_counter() - t0), done / (time.thread_time() - c0)


def main(
    seconds: float = typer.Option(2.0, help="seconds per measurement"),
    repeats: int = typer.Option(3, help="repeats per measurement (median reported)"),
    threads: int = typer.Option(numba.config.NUMBA_NUM_THREADS,
                                 help="threads of the multi-threaded runs (torch and numba)"),
    mnist_dir: str = typer.Option(None, help="folder of the MNIST IDX .gz files"),
    skip_replicas: bool = typer.Option(False, help="skip the replicas table"),
    skip_cli: bool = typer.Option(False, help="skip the end-to-end `onlinedeep train` rate"),
    skip_table: bool = typer.Option(False, help="skip the per-network table"),
    cli_updates: str = typer.Option("20000,200000", help="small,large N of the end-to-end runs"),
) -> None:
    torch.set_num_threads(threads)
    x, y = load_digits(mnist_dir)
    nz = x != 0
    nz_rows = float(nz.sum(dim=1).float().mean())
    union_rows = float((nz[:-1] | nz[1:]).sum(dim=1).float().mean())  # |nz(x_t) ∪ nz(x_t+1)|
    rng = np.random.default_rng(0)
    keep = torch.from_numpy(rng.random((N_DIGITS, 784)) >= 0.25)
    corrupted_rows = float((nz & keep).sum(dim=1).float().mean())  # |nz(x̃_t)|, the DAE encoder's
    uh = torch.from_numpy(rng.random((N_DIGITS, 1, 1000), dtype=np.float32))
    print(f"onlinedeep bench_train: {N_DIGITS} MNIST digits ({nz_rows:.0f} of 784 pixels non-zero "
          f"on average, {union_rows:.0f} in two consecutive ones), {seconds:g} s x {repeats} repeats "
          f"per cell (median), load average {os.getloadavg()[0]:.2f}, torch threads "
          f"{threads}, numba threading layer: {_layer_name(threads)}, cpu: {os.cpu_count()} cores")

    cases = [
        ("784-2000-10", "supervised", [784, 2000, 10], 1),
        ("784-1000-1000-1000-10", "supervised", [784, 1000, 1000, 1000, 10], 3),
        ("784-1000 DAE layer", "dae", [784, 1000], 1),
        ("784-2000 DAE layer", "dae", [784, 2000], 1),
        ("784-1000 RBM layer CD-1", "rbm", [784, 1000], 1),
    ]
    thread_counts = [1] if threads == 1 else [1, threads]
    if skip_table:
        cases = []
    print(f"load average at the start of the table: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    header = (f"{'network':26s} {'path':12s} {'updates/s':>10s} {'x baseline':>10s} "
              f"{'roofline/s':>10s} {'fraction':>8s}")
    print(header)
    print("-" * len(header))
    for label, kind, sizes, depth in cases:
        lr = 0.01
        params = init_params(784, sizes[1], depth, seed=0)
        n_floats = sum(v.numel() for k, v in params.items() if k.startswith("W"))

        def kernel_run(kernel, chunk=CHUNK):
            p = clone_params(params)

            def run(i):
                lo = (i * chunk) % (N_DIGITS - chunk)
                sl = slice(lo, lo + chunk)
                if kind == "supervised":
                    kernel.supervised(p, x[sl], y[sl], learning_rate=lr)
                elif kind == "dae":
                    kernel.dae(p, 0, x[sl], keep[sl], None, learning_rate=lr)
                else:
                    kernel.rbm(p, 0, x[sl], uh[sl], None, learning_rate=lr, cd_k=1)
                return chunk
            return run

        # Interleaved repeats: every path is measured once per round, and its ratio to the baseline
        # of the same round is kept, so load from other processes hits all paths alike.
        paths = {}
        if kind in ("supervised", "dae"):
            make = naive_supervised if kind == "supervised" else naive_dae
            data = (x, y) if kind == "supervised" else (x, keep)
            for t in sorted({1, threads}):
                paths[f"naive {t}t"] = (make(clone_params(params), *data, lr), t)
        if ReferenceKernel is not None:
            paths["reference 1t"] = (kernel_run(ReferenceKernel(), 200), 1)
        for t in thread_counts:
            paths[f"numba {t}t"] = (kernel_run(NumbaKernel(n_threads=t)), t)
        rounds = {name: [] for name in paths}
        for name, (run, t) in paths.items():
            torch.set_num_threads(t)
            run(0)  # compilation, caches
        for _ in range(repeats):
            for name, (run, t) in paths.items():
                torch.set_num_threads(t)
                rounds[name].append(rate(run, seconds, 1, warm_up=False))
        torch.set_num_threads(threads)
        naive_names = [name for name in paths if name.startswith("naive")] or ["reference 1t"]
        # baseline of a round: the faster of the naive loop with 1 or N torch threads
        base = [max(rounds[name][i] for name in naive_names) for i in range(repeats)]
        encoder_rows = {"dae": corrupted_rows, "rbm": nz_rows}.get(kind, 0.0)
        read, written = weight_traffic(sizes, union_rows, nz_rows, kind, encoder_rows)
        per_update = read + written
        for name in paths:
            r = statistics.median(rounds[name])
            ratio = statistics.median(rounds[name][i] / base[i] for i in range(repeats))
            line = f"{label:26s} {name:12s} {r:10.0f} {ratio:10.2f}"
            if name.startswith("numba"):
                t = int(name.split()[1][:-1])
                bw = bandwidth(n_floats, t, seconds)
                read_bw = read_bandwidth(n_floats, t, seconds)
                ceiling = bw / per_update
                read_ceiling = read_bw / read
                line += (f" {ceiling:10.0f} {r / ceiling:8.2f}   ({per_update / 1e6:.2f} MB/update,"
                         f" rank-1 bandwidth {bw / 1e9:.0f} GB/s; reads alone: "
                         f"{read / 1e6:.2f} MB at {read_bw / 1e9:.0f} GB/s -> {read_ceiling:.0f}/s, "
                         f"fraction {r / read_ceiling:.2f})")
            print(line, flush=True)
    print("x baseline: median over rounds of updates/s ÷ the same round's baseline = the faster of "
          "naive 1t / naive Nt (autograd + torch.optim.SGD; for the RBM, whose CD-1 update has no "
          "autograd form, the reference kernel)")

    if not skip_cli:
        small, large = (int(v) for v in cli_updates.split(","))
        root = str(Path(mnist_dir or os.environ.get("ONLINEDEEP_MNIST_DIR")).resolve())
        print()
        print(f"End to end: onlinedeep train --layers 1 --n-hidden 2000 --pretrain none --threads 1 "
              f"--sup-updates N (N = {small}, {large}) as a subprocess; Trainer.run of the same "
              f"configuration in this process ({small} updates); the numba kernel alone on 1 "
              f"thread (chunks of {CHUNK}) on raw MNIST digits and on the command's own stream "
              f"examples; naive 784-2000-10 on 1 thread; interleaved, one of each per round "
              f"(load average {os.getloadavg()[0]:.2f}):")
        torch.set_num_threads(1)
        stream, xs, ys = stream_digits(root)
        nz_stream = float((xs != 0).sum(dim=1).float().mean())
        params = init_params(784, 2000, 1, seed=0)
        naive = naive_supervised(clone_params(params), x, y, 0.01)

        def kernel_on(xk, yk):
            kernel, p = NumbaKernel(n_threads=1), clone_params(params)

            def run(i):
                lo = (i * CHUNK) % (N_DIGITS - CHUNK)
                kernel.supervised(p, xk[lo:lo + CHUNK], yk[lo:lo + CHUNK], learning_rate=0.01)
                return CHUNK
            return run
        kernel_raw, kernel_stream = kernel_on(x, y), kernel_on(xs, ys)
        naive(0)
        kernel_raw(0)
        kernel_stream(0)
        trainer_rate(2 * CHUNK, stream)
        cli_seconds(small, root)  # compiled-code cache, file cache
        rows = {name: [] for name in ("naive 1t", "kernel, raw MNIST", "kernel, stream examples",
                                      "Trainer.run (in process)", f"CLI, N={large} / wall time",
                                      "CLI, marginal (start-up left out)")}
        cpu = {"kernel": [], "cli": []}
        for _ in range(repeats):
            rows["naive 1t"].append(rate(naive, seconds, 1, warm_up=False))
            rows["kernel, raw MNIST"].append(rate(kernel_raw, seconds, 1, warm_up=False))
            wall, per_cpu = cpu_rate(kernel_stream, seconds)
            rows["kernel, stream examples"].append(wall)
            cpu["kernel"].append(per_cpu)
            rows["Trainer.run (in process)"].append(trainer_rate(small, stream))
            (t_small, c_small), (t_large, c_large) = cli_seconds(small, root), cli_seconds(large, root)
            rows[f"CLI, N={large} / wall time"].append(large / t_large)
            rows["CLI, marginal (start-up left out)"].append((large - small) / (t_large - t_small))
            cpu["cli"].append((large - small) / (c_large - c_small))
            print("  round: " + ", ".join(f"{name} {r[-1]:.0f}/s" for name, r in rows.items())
                  + f"; CLI N={small} {t_small:.2f} s, N={large} {t_large:.2f} s; load average "
                  f"{os.getloadavg()[0]:.2f}", flush=True)
        torch.set_num_threads(threads)
        base, ref = rows["naive 1t"], rows["kernel, stream examples"]
        print(f"{'':34s} {'updates/s':>10s} {'x naive':>8s} {'x kernel (stream)':>18s}")
        for name, r in rows.items():
            to_naive = statistics.median(r[i] / base[i] for i in range(repeats))
            to_kernel = statistics.median(r[i] / ref[i] for i in range(repeats))
            print(f"{name:34s} {statistics.median(r):10.0f} {to_naive:8.1f} {to_kernel:18.2f}")
        print(f"CPU time (load-independent): the kernel on the stream examples "
              f"{1e6 / statistics.median(cpu['kernel']):.1f} us/update; the CLI's marginal CPU "
              f"(user + system of the process, all its threads: producer included) "
              f"{1e6 / statistics.median(cpu['cli']):.1f} us/update")
        print(f"non-zero pixels per example: raw MNIST {nz_rows:.0f}, stream examples {nz_stream:.0f} "
              f"(the first layer's update touches one row per non-zero pixel)")

    if skip_replicas:
        return
    print()
    print("Replicas of 784-2000-10 (supervised), model-updates/s (each model one example per update):")
    print(f"{'R':>3s} {'Replicas':>10s} {'R x numba 1t':>13s} {f'R x numba {threads}t':>13s}")
    params = init_params(784, 2000, 1, seed=0)
    for R in (1, 2, 4, 10):
        models = [clone_params(params) for _ in range(R)]
        offsets = [(r * 1_777) % (N_DIGITS - CHUNK) for r in range(R)]
        with Replicas(models) as reps:
            def run(i):
                los = [(off + i * CHUNK) % (N_DIGITS - CHUNK) for off in offsets]
                reps.supervised([x[lo:lo + CHUNK] for lo in los], [y[lo:lo + CHUNK] for lo in los],
                                learning_rate=0.01)
                return R * CHUNK
            r_rep = rate(run, seconds, repeats)
        seq = []
        for t in sorted(set([1, threads])):
            kernel = NumbaKernel(n_threads=t)

            def run_seq(i):
                for r, p in enumerate(models):
                    lo = (offsets[r] + i * CHUNK) % (N_DIGITS - CHUNK)
                    kernel.supervised(p, x[lo:lo + CHUNK], y[lo:lo + CHUNK], learning_rate=0.01)
                return R * CHUNK
            seq.append(rate(run_seq, seconds, repeats))
        seq_txt = " ".join(f"{s:13.0f}" for s in seq)
        print(f"{R:3d} {r_rep:10.0f} {seq_txt}", flush=True)


def _layer_name(threads: int) -> str:
    if threads == 1:
        return "none (1 thread)"
    numba.set_num_threads(threads)
    _rank1_sweep(np.zeros((2, 8), np.float32), np.zeros(2, np.float32), np.zeros(8, np.float32), 2)
    return numba.threading_layer()


if __name__ == "__main__":
    typer.run(main)
