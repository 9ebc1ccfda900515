"""Does the address of the weights matter? The numba kernel on the same weights placed 0, 16, 32
and 48 bytes past a 64-byte boundary.

numpy places a large buffer 16 or 48 bytes past a 64-byte boundary (glibc's ``mmap``'ed chunks
carry a 16-byte header); torch's CPU allocator aligns to 64. Weights read from a snapshot used to
stay in numpy's buffers, so every resumed run and every branch of the ordering-variance
experiment trained on misaligned weights. This benchmark trains the same network (784-2000-10 by
default; ``--from-snapshot`` takes a snapshot's weights instead of fresh ones) on the same MNIST
digits from copies of its weights at each offset, interleaved, one round after the other, and
prints the median rate of each offset and its ratio to offset 0; and checks that the four copies
end bit-identical (the address changes the speed, never the arithmetic).

Usage::

    ONLINEDEEP_MNIST_DIR=../shared/data/mnist python benchmarks/bench_alignment.py [--units 2000]
        [--rounds 6] [--updates 2000] [--from-snapshot FILE]
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import typer

from infinite_mnist.mnist import load_mnist
from onlinedeep import snapshot
from onlinedeep.kernels.numba_cpu import NumbaKernel
from onlinedeep.model import init_params

OFFSETS = (0, 16, 32, 48)


def placed(a: np.ndarray, offset: int) -> np.ndarray:
    """A copy of ``a`` whose data starts ``offset`` bytes past a 64-byte boundary."""
    buf = np.empty(a.nbytes + 128, dtype=np.uint8)
    start = (-buf.ctypes.data) % 64 + offset
    out = buf[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def main(
    units: int = typer.Option(2000, help="Hidden units of the 1-layer network."),
    rounds: int = typer.Option(6, help="Interleaved rounds."),
    updates: int = typer.Option(2000, help="Updates per offset and round."),
    from_snapshot: Optional[Path] = typer.Option(None, help="Train a snapshot's weights (a "
                                                 "784-UNITS-10 network) instead of fresh ones."),
) -> None:
    torch.set_num_threads(1)
    data = load_mnist()
    n = 100 + rounds * updates
    x = data.train_images.reshape(-1, 784)[:n].astype(np.float32) / 255
    y = data.train_labels[:n].astype(np.int64)
    if from_snapshot is not None:
        snap = snapshot.load(from_snapshot)
        base = {k: np.ascontiguousarray(v) for k, v in snap.params.items() if not k.startswith("c")}
    else:
        base = {k: v.numpy().copy() for k, v in init_params(784, units, 1, seed=0).items()}
    kernel = NumbaKernel(n_threads=1)
    copies = {off: {k: torch.from_numpy(placed(v, off)) for k, v in base.items()}
              for off in OFFSETS}
    for off, params in copies.items():
        assert params["W0"].data_ptr() % 64 == off
        kernel.supervised(params, x[:100], y[:100], learning_rate=0.05)  # compile, warm up
    rates = {off: [] for off in OFFSETS}
    lo = 100
    for _ in range(rounds):
        for off, params in copies.items():
            t0 = time.thread_time()
            kernel.supervised(params, x[lo:lo + updates], y[lo:lo + updates], learning_rate=0.05)
            rates[off].append(updates / (time.thread_time() - t0))
        lo += updates
    shape = "x".join(str(s) for s in base["W0"].shape)
    print(f"W0 {shape}, {rounds} rounds of {updates} updates, 1 thread (updates/s, median)")
    ref = statistics.median(rates[0])
    for off in OFFSETS:
        med = statistics.median(rates[off])
        print(f"offset {off:2d} bytes: {med:9,.0f}  x offset 0: {med / ref:.2f}")
    same = all(torch.equal(copies[0][k], copies[off][k]) for off in OFFSETS for k in base)
    print(f"weights bit-identical at every offset: {same}")


if __name__ == "__main__":
    typer.run(main)
