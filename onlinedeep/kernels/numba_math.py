"""Vectorisable float32 ``exp``, sigmoid and soft-plus for the Numba kernel.

Numba has no vectorised ``exp`` on this platform (no SVML): a loop of ``np.exp`` calls the scalar
libm function for every element. These are written with arithmetic LLVM can vectorise
(polynomials, a floor, and the float32 bit pattern of ``2**n`` built from an integer), so that
``for c in range(n): out[c] = sigmoid(z[c])`` compiles to AVX-512/AVX2 code.

Accuracy (float32, tested in ``tests/test_numba_math.py`` against float64 NumPy):

* :func:`exp32` — Cody-Waite range reduction ``x = n·ln 2 + r``, ``|r| <= ln2/2``, then the
  degree-7 Taylor polynomial of ``e**r`` (truncation < 1.5e-8 relative) and ``2**n`` from its
  exponent bits: relative error below 3e-7 for ``x`` in [-87, 88]; ``x`` is clamped to that range
  (so ``exp32(-1000)`` is ``1.6e-38``, not 0 — harmless where it is used: ``1 + e``).
* :func:`sigmoid32` — ``1/(1+e)`` or ``e/(1+e)`` with ``e = exp32(-|z|)``: relative error below 5e-7.
* :func:`softplus32` — ``log(1 + e**z)`` as ``max(z, 0) + log1p(e)``, ``e = exp32(-|z|) <= 1``, with
  ``log1p(e) = 2·atanh(s)``, ``s = e/(2+e) <= 1/3``, summed to ``s**19``: absolute error below 3e-7
  for ``|z| <= 88``.

Source of the method: the range reduction and ``2**n`` construction of Cephes' ``expf``
(S. L. Moshier, *Methods and Programs for Mathematical Functions*, 1989), with Taylor coefficients
instead of a minimax fit.

Not cached on disk on their own: they are compiled into the drivers of
:mod:`onlinedeep.kernels.numba_chunks`, whose cache entries carry a digest of all the kernel
sources. (Numba's cache checks only a function's own file, so a cached caller here would keep
the machine code of an older version of a callee in another file.)"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["exp32", "sigmoid32", "softplus32"]

_F32 = np.float32
_LOG2E = _F32(1.4426950408889634)
_LN2_HI = _F32(0.693359375)          # ln 2 = _LN2_HI + _LN2_LO; _LN2_HI has 9 significant bits,
_LN2_LO = _F32(-2.12194440e-4)       # so n·_LN2_HI is exact for |n| <= 2**15
_X_MIN = _F32(-87.0)
_X_MAX = _F32(88.0)


@intrinsic
def _bits_as_f32(typingctx, bits):
    """Reinterpret an int32's bits as a float32 (an LLVM bitcast: free, and vectorisable)."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


@njit(nogil=True, error_model="numpy")
def exp32(x):
    """e**x for a float32 x, clamped to [-87, 88]; relative error < 3e-7 (module docstring)."""
    x = min(max(x, _X_MIN), _X_MAX)
    n = np.floor(x * _LOG2E + _F32(0.5))
    r = (x - n * _LN2_HI) - n * _LN2_LO
    p = _F32(1.0 / 5040.0)
    p = p * r + _F32(1.0 / 720.0)
    p = p * r + _F32(1.0 / 120.0)
    p = p * r + _F32(1.0 / 24.0)
    p = p * r + _F32(1.0 / 6.0)
    p = p * r + _F32(0.5)
    p = p * r + _F32(1.0)
    p = p * r + _F32(1.0)
    scale = _bits_as_f32((np.int32(n) + np.int32(127)) << np.int32(23))
    return p * scale


@njit(nogil=True, error_model="numpy")
def sigmoid32(z):
    """1/(1 + e**-z) for a float32 z; relative error < 5e-7, exact limits 0 < σ <= 1."""
    e = exp32(-abs(z))
    q = _F32(1.0) / (_F32(1.0) + e)
    return q if z >= 0 else e * q


@njit(nogil=True, error_model="numpy")
def softplus32(z):
    """log(1 + e**z) for a float32 z, stable for large |z|; absolute error < 3e-7."""
    e = exp32(-abs(z))
    s = e / (_F32(2.0) + e)
    s2 = s * s
    # 2·atanh(s) = 2s·Σ s**(2k)/(2k+1); s <= 1/3, so the terms fall by >= 9× each
    p = _F32(1.0 / 19.0)
    p = p * s2 + _F32(1.0 / 17.0)
    p = p * s2 + _F32(1.0 / 15.0)
    p = p * s2 + _F32(1.0 / 13.0)
    p = p * s2 + _F32(1.0 / 11.0)
    p = p * s2 + _F32(1.0 / 9.0)
    p = p * s2 + _F32(1.0 / 7.0)
    p = p * s2 + _F32(1.0 / 5.0)
    p = p * s2 + _F32(1.0 / 3.0)
    p = p * s2 + _F32(1.0)
    return max(z, _F32(0.0)) + _F32(2.0) * s * p
