"""The vectorisable exp, sigmoid and soft-plus of the numba kernel against float64 NumPy."""

from __future__ import annotations

import numpy as np
from numba import njit

from onlinedeep.kernels.numba_math import exp32, sigmoid32, softplus32


@njit(error_model="numpy")
def _apply(which, z, out):
    for c in range(z.shape[0]):
        if which == 0:
            out[c] = exp32(z[c])
        elif which == 1:
            out[c] = sigmoid32(z[c])
        else:
            out[c] = softplus32(z[c])


def _run(which, z):
    out = np.empty_like(z)
    _apply(which, z, out)
    return out.astype(np.float64)


Z = np.concatenate([np.linspace(-87.0, 88.0, 400_001), np.linspace(-1e-3, 1e-3, 2001)]).astype(np.float32)
Z64 = Z.astype(np.float64)


def test_exp_relative_error():
    want = np.exp(Z64)
    assert np.max(np.abs(_run(0, Z) - want) / want) < 3e-7


def test_sigmoid_relative_error_and_limits():
    want = 1.0 / (1.0 + np.exp(-Z64))
    assert np.max(np.abs(_run(1, Z) - want) / want) < 5e-7
    ends = _run(1, np.array([-1e4, -np.inf, 1e4, np.inf], dtype=np.float32))
    assert 0 < ends[0] < 1e-37 and 0 < ends[1] < 1e-37 and ends[2] == 1.0 and ends[3] == 1.0


def test_softplus_absolute_error():
    want = np.logaddexp(0.0, Z64)
    assert np.max(np.abs(_run(2, Z) - want) / np.maximum(1.0, want)) < 3e-7


def test_a_loop_of_sigmoids_is_vectorised():
    """The point of the module: the loop compiles to SIMD code (no per-element libm call)."""
    z = np.zeros(64, dtype=np.float32)
    _apply(1, z, z.copy())
    llvm = _apply.inspect_llvm(_apply.signatures[0])
    assert "x float>" in llvm
