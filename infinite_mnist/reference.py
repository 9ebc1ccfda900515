"""Pure-NumPy versions of the generation kernels, vectorised over a batch.

They compute exactly the same float32 arithmetic as :mod:`infinite_mnist.kernels`, in the same
order, so they serve as the independent reference in the tests and as the NumPy baseline in
``benchmarks/bench_generator.py``. Only deformed indices are accepted (``i >= n_test + n_train``).
"""
from __future__ import annotations

import numpy as np

from infinite_mnist import kernels

__all__ = ["first_order_numpy", "elastic_numpy", "shift_numpy"]

_F = np.float32


def _prepare(indices, train, n_test, fields, key, translate):
    indices = np.asarray(indices, dtype=np.int64)
    n_train = train.shape[0]
    if indices.size and indices.min() < n_test + n_train:
        raise ValueError("the NumPy reference handles deformed indices only")
    a = (indices - n_test) % n_train
    k1, k2, shift = kernels.deformation_choice(indices, key, fields.shape[0])
    if not translate:
        shift = np.full_like(shift, 4)
    x = train.reshape(n_train, 784)[a].astype(_F).reshape(-1, 28, 28)
    return x, fields[k1].reshape(-1, 28, 28), fields[k2].reshape(-1, 28, 28), shift


def shift_numpy(images: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Shift each (28, 28) image by (dr, dc) = (shift // 3 - 1, shift % 3 - 1), zeros shifted in."""
    out = np.zeros_like(images)
    for s in range(9):
        sel = shift == s
        if not sel.any():
            continue
        dr, dc = s // 3 - 1, s % 3 - 1
        src = images[sel][:, max(0, -dr):28 - max(0, dr), max(0, -dc):28 - max(0, dc)]
        out[np.flatnonzero(sel)[:, None, None], np.arange(max(0, dr), 28 + min(0, dr))[None, :, None],
            np.arange(max(0, dc), 28 + min(0, dc))[None, None, :]] = src
    return out


def first_order_numpy(indices, train, n_test, fields, alpha, translate, key) -> np.ndarray:
    """NumPy twin of :func:`kernels.first_order_batch`; returns (n, 28, 28) uint8."""
    x, f1, f2, shift = _prepare(indices, train, n_test, fields, key, translate)
    n = x.shape[0]
    p = np.zeros((n, 30, 30), _F)
    p[:, 1:29, 1:29] = x
    left, centre, right = p[:, :, 0:28], p[:, :, 1:29], p[:, :, 2:30]
    hd = right - left  # (n, 30, 28): rows -1 and 28 are zero
    hs = left + _F(2.0) * centre + right
    dx = (hd[:, 0:28] + _F(2.0) * hd[:, 1:29] + hd[:, 2:30]) * _F(0.125)
    dy = (hs[:, 2:30] - hs[:, 0:28]) * _F(0.125)
    v = x + _F(alpha) * (f1 * dx - f2 * dy)
    v = np.minimum(np.maximum(v, _F(0.0)), _F(255.0)).astype(np.uint8)
    return shift_numpy(v, shift)


def elastic_numpy(indices, train, n_test, fields, alpha, translate, key) -> np.ndarray:
    """NumPy twin of :func:`kernels.elastic_batch`; returns (n, 28, 28) uint8."""
    x, f1, f2, shift = _prepare(indices, train, n_test, fields, key, translate)
    n = x.shape[0]
    a = _F(alpha)
    rows = np.arange(28, dtype=_F)[None, :, None]
    cols = np.arange(28, dtype=_F)[None, None, :]
    sy = rows - a * f2
    sx = cols + a * f1
    fy, fx = np.floor(sy), np.floor(sx)
    wy, wx = sy - fy, sx - fx
    r0, c0 = fy.astype(np.int64), fx.astype(np.int64)
    padded = np.zeros((n, 28 + 2 * 64, 28 + 2 * 64), _F)  # zeros outside the image
    padded[:, 64:92, 64:92] = x
    e = np.arange(n)[:, None, None]

    def pix(r, c):
        return padded[e, np.clip(r, -64, 91) + 64, np.clip(c, -64, 91) + 64]

    one = _F(1.0)
    v = ((one - wy) * ((one - wx) * pix(r0, c0) + wx * pix(r0, c0 + 1))
         + wy * ((one - wx) * pix(r0 + 1, c0) + wx * pix(r0 + 1, c0 + 1)))
    v = np.minimum(np.maximum(v, _F(0.0)), _F(255.0)).astype(np.uint8)
    return shift_numpy(v, shift)
