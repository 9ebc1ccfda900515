"""What bounds the DAE/RBM sweep: the memory the rows come from, or the core?

The numba kernel's decoder (DAE) or Gibbs (RBM) sweep visits every row of a layer's weight matrix
twice per example: ``_rank2x4_dot`` updates four rows and takes their dot products with the hidden
layer, then ``_axpy4`` reads the same four rows again to add them into the backward sum
(``onlinedeep.kernels.numba_sweeps._update_sweep_block``). The byte roofline of
``bench_train.py`` assumes that the rows' traffic from L3 is what costs. This benchmark times the
kernel's own row primitives over the rows of a 2000-unit layer, on the full 784-row matrix
(6.3 MB: from L3) and on its first 96 rows (0.77 MB: stays in this core's 1 MB L2), per pattern:

- ``sweep``: ``_rank2x4_dot`` then ``_axpy4`` on each group of four rows (the kernel's pattern);
- ``update+dot``: ``_rank2x4_dot`` alone (the second read dropped: wrong maths, a bound);
- ``update``: ``_rank2_row`` alone (each row read and written once: the roofline's primitive);
- ``read``: ``_dot`` alone (each row read once);
- ``probe``: ``bench_train``'s bandwidth probe, the in-place rank-1 update whose rate defines the
  byte roofline (``W += u vᵀ``).

It prints the time per row and, per pattern, ``L3 ÷ L2``: near 1 means the pattern costs the same
wherever its rows come from, i.e. the core (loads, stores, arithmetic per element), not the
memory, bounds it. Patterns and sizes are interleaved, one of each per round; times are the
thread's CPU time (``time.thread_time``), medians over rounds.

Usage::

    python benchmarks/bench_sweep_bound.py [--units 2000] [--rounds 5] [--seconds 0.3]
"""

from __future__ import annotations

import statistics
import time

import numba
import numpy as np
import typer
from bench_train import _rank1_sweep
from numba import njit

from onlinedeep.kernels.numba_rows import _axpy4, _dot, _rank2_row, _rank2x4_dot

PATTERNS = ("sweep", "update+dot", "update", "read", "probe")
_F32 = np.float32


@njit(nogil=True)
def _pass(W, s, d, u, e, h, terms, P, pattern):
    """One pass of ``pattern`` (index into PATTERNS) over the rows of W (a multiple of 4)."""
    lr = _F32(1e-7)   # tiny steps: the weights stay finite over any number of passes
    P[:] = 0
    for j in range(0, W.shape[0], 4):
        if pattern <= 1:
            a0, a1, a2, a3 = _rank2x4_dot(W[j], W[j + 1], W[j + 2], W[j + 3], lr, s[j], s[j + 1],
                                          s[j + 2], s[j + 3], d, u[j], u[j + 1], u[j + 2],
                                          u[j + 3], e, h)
            terms[j] = a0
            terms[j + 1] = a1
            terms[j + 2] = a2
            terms[j + 3] = a3
            if pattern == 0:
                _axpy4(P, terms[j], W[j], terms[j + 1], W[j + 1], terms[j + 2], W[j + 2],
                       terms[j + 3], W[j + 3])
        elif pattern == 2:
            for q in range(j, j + 4):
                _rank2_row(W[q], lr, s[q], d, u[q], e)
        else:
            for q in range(j, j + 4):
                terms[q] = _dot(W[q], h)


def _run(pattern, W, s, d, u, e, h, terms, P):
    if PATTERNS[pattern] == "probe":
        _rank1_sweep(W, u[:W.shape[0]] * _F32(1e-5), e, 1)
    else:
        _pass(W, s, d, u, e, h, terms, P, pattern)


def main(
    units: int = typer.Option(2000, help="Hidden units (row length)."),
    rounds: int = typer.Option(5, help="Interleaved rounds."),
    seconds: float = typer.Option(0.3, help="Time per pattern, size and round."),
    l2_rows: int = typer.Option(96, help="Rows of the small matrix (must stay in L2)."),
) -> None:
    numba.set_num_threads(1)
    rng = np.random.default_rng(0)
    sizes = {"L3": 784, "L2": l2_rows}
    W = {k: (rng.standard_normal((n, units)) * 0.01).astype(_F32) for k, n in sizes.items()}
    vec = {k: rng.random(units).astype(_F32) for k in ("d", "e", "h")}
    s = np.zeros(784, _F32)
    s[rng.random(784) < 0.15] = 1    # about the rows a corrupted digit lights
    u = rng.standard_normal(784).astype(_F32)
    terms = np.zeros(784, _F32)
    P = np.zeros(units, _F32)
    for k in sizes:
        for p in range(len(PATTERNS)):
            _run(p, W[k], s, vec["d"], u, vec["e"], vec["h"], terms, P)  # compile, warm up
    per_row = {(k, p): [] for k in sizes for p in PATTERNS}
    for _ in range(rounds):
        for p, name in enumerate(PATTERNS):
            for k, n in sizes.items():
                reps, spent = 0, 0.0
                t0 = time.thread_time()
                while spent < seconds:
                    _run(p, W[k], s, vec["d"], u, vec["e"], vec["h"], terms, P)
                    reps += 1
                    spent = time.thread_time() - t0
                per_row[(k, name)].append(spent / reps / n * 1e9)
    med = {key: statistics.median(v) for key, v in per_row.items()}
    print(f"{units}-unit rows; ns per row (median of {rounds} rounds); rows from L3 = 784 "
          f"({784 * units * 4 / 1e6:.1f} MB), from L2 = {l2_rows} ({l2_rows * units * 4 / 1e6:.2f} MB)")
    print(f"{'pattern':12s} {'L3':>8s} {'L2':>8s} {'L3 / L2':>8s} {'x sweep (L3)':>13s}")
    for name in PATTERNS:
        a, b = med[("L3", name)], med[("L2", name)]
        print(f"{name:12s} {a:8.1f} {b:8.1f} {a / b:8.2f} {med[('L3', 'sweep')] / a:13.2f}")


if __name__ == "__main__":
    typer.run(main)
