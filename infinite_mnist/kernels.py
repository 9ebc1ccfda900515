"""Numba kernels that generate stream examples, parallel over examples and free of the GIL.

Every kernel writes example ``e`` from ``indices[e]`` alone: no shared mutable state, no cache, the
same arithmetic for every example (no fast-math, so no reassociation and no fused multiply-add),
hence the same bytes whatever the batch split, thread count or process.

Arrays: base digits are passed flat, ``(n, 784) uint8``; ``out`` is ``(n, 784) uint8`` and is filled
completely (no need to zero it first).

Stream layout (Bottou & Loosli's infimnist, generalised to any base-set size): index ``i < n_test``
is test digit ``i``; ``n_test <= i < n_test + n_train`` is training digit ``i - n_test``; larger
indices are deformations of training digit ``(i - n_test) mod n_train``.
"""
from __future__ import annotations

import os

import numba
import numpy as np
from numba import njit, prange

__all__ = [
    "first_order_batch",
    "elastic_batch",
    "infimnist_batch",
    "labels_batch",
    "first_order_serial",
    "elastic_serial",
    "infimnist_serial",
    "labels_serial",
    "thread_pool_usable",
    "deformation_choice",
    "index_key",
    "check_seed",
]

# Each ``*_batch`` kernel (parallel over blocks of examples, on Numba's thread pool) has a ``*_serial``
# twin that runs the same block function on the calling thread: the same bytes, no thread pool.


def _note_fork_in_child():
    global _POOL_INHERITED
    try:
        numba.threading_layer()  # raises ValueError while no parallel region has run
    except ValueError:
        return
    _POOL_INHERITED = True


_POOL_INHERITED = False
# A process forked after its parent started Numba's thread pool cannot use it: with the GNU OpenMP
# layer (the default where TBB is not installed) the first parallel region in the child prints
# "fork() called from a process already using GNU OpenMP" and kills it. That is what a PyTorch
# DataLoader's workers (fork on Linux) met when the parent had generated a batch first.
os.register_at_fork(after_in_child=_note_fork_in_child)


def thread_pool_usable() -> bool:
    """False in a process forked after its parent had started Numba's thread pool.

    The ``*_batch`` kernels are then unusable (GNU OpenMP is not fork-safe); callers use the
    ``*_serial`` twins instead, which give the same bytes.
    """
    return not _POOL_INHERITED


BLOCK = 64  # examples per parallel work item; any value gives the same bytes
PAD = 32  # zero cells before and after the flat 784-pixel image (>= 29: one row and one column)

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, nogil=True, inline="always")
def _mix64(z):
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True)
def _index_key(seed):
    return _mix64(seed * _GOLDEN + np.uint64(0x632BE59BD9B4E019))


def index_key(seed) -> np.uint64:
    """The per-stream hash key derived from a seed.

    Parameters
    ----------
    seed : int
        In [0, 2**64 - 1].

    Returns
    -------
    numpy.uint64
        A NumPy scalar, never a Python int: the batch kernels are compiled for the type of their
        ``key`` argument at their first call, and a Python int is typed int64 when it fits (so a
        later key >= 2**63 would overflow that specialisation).

    Raises
    ------
    ValueError
        If ``seed`` is not an integer in [0, 2**64 - 1].
    """
    return np.uint64(_index_key(check_seed(seed)))


def check_seed(seed) -> np.uint64:
    """``seed`` as a ``numpy.uint64``, after checking it is an integer in [0, 2**64 - 1].

    Raises
    ------
    ValueError
        If it is not an integer (bools and floats included) or is outside that range.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed: expected an integer in [0, 2**64 - 1], found {seed!r}")
    value = int(seed)
    if not 0 <= value < 2**64:
        raise ValueError(f"seed: expected an integer in [0, 2**64 - 1], found {value}")
    return np.uint64(value)


@njit(cache=True, nogil=True, inline="always")
def _choice(i, key, n_fields):
    h = _mix64(np.uint64(i) ^ key)
    nf = np.uint64(n_fields)
    k1 = h % nf
    # A second, different field: k2 != k1 so the x and y displacements are independent.
    k2 = (k1 + np.uint64(1) + (h >> np.uint64(24)) % (nf - np.uint64(1))) % nf
    shift = (h >> np.uint64(48)) % np.uint64(9)
    return np.int64(k1), np.int64(k2), np.int64(shift)


@njit(cache=True, nogil=True)
def deformation_choice(indices, key, n_fields):
    """(k1, k2, shift) of each index: the x field, the y field, the translation case 0-8.

    Returns three (n,) int64 arrays. ``shift`` = 3·(dr+1) + (dc+1) for a shift of ``dr`` rows down
    and ``dc`` columns right (4 = none).
    """
    n = indices.shape[0]
    k1 = np.empty(n, np.int64)
    k2 = np.empty(n, np.int64)
    sh = np.empty(n, np.int64)
    for e in range(n):
        k1[e], k2[e], sh[e] = _choice(indices[e], key, n_fields)
    return k1, k2, sh


@njit(cache=True, nogil=True, inline="always")
def _copy_base(i, train, test, o):
    """Copy an undeformed digit; return the training digit to deform, or -1 if done."""
    n_test = test.shape[0]
    n_train = train.shape[0]
    if i < n_test:
        o[:] = test[i]
        return -1
    a = i - n_test
    if a < n_train:
        o[:] = train[a]
        return -1
    return a % n_train


@njit(cache=True, nogil=True, inline="always")
def _shift_into(tmp, o, shift):
    """o = tmp shifted by (dr, dc) = (shift // 3 - 1, shift % 3 - 1), zeros shifted in.

    ``tmp`` already has the column that leaves the image zeroed, so a flat shift by 28·dr + dc is
    exact (nothing wraps from one row to the next).
    """
    s = 28 * (shift // 3 - 1) + (shift % 3 - 1)
    if s >= 0:
        o[:s] = 0
        o[s:] = tmp[:784 - s]
    else:
        o[:784 + s] = tmp[-s:]
        o[784 + s:] = 0


def _masks():
    c = np.arange(784) % 28
    left = (c != 0).astype(np.float32)  # pixel has a left neighbour
    right = (c != 27).astype(np.float32)
    # Column kept for the output shift of dc = -1, 0, +1 (the column that leaves is dropped).
    keep = np.stack([c != 0, np.ones(784, bool), c != 27]).astype(np.float32)
    return left, right, keep


MASK_LEFT, MASK_RIGHT, MASK_KEEP = _masks()


@njit(cache=True, nogil=True, inline="always")
def _n_blocks(n):
    return (n + BLOCK - 1) // BLOCK


@njit(cache=True, nogil=True)
def _first_order_blocks(b0, b1, indices, train, test, fields, alpha, translate, key, mleft, mright,
                        mkeep, out):
    """Blocks ``b0 <= b < b1`` (examples ``b·BLOCK ...``) of :func:`first_order_batch`."""
    n = indices.shape[0]
    nf = fields.shape[0]
    a32 = np.float32(alpha)
    eighth = np.float32(0.125)
    two = np.float32(2.0)
    zero = np.float32(0.0)
    top = np.float32(255.0)
    for b in range(b0, b1):
        img = np.zeros(784 + 2 * PAD, np.float32)
        hd = np.zeros(784 + 2 * PAD, np.float32)  # horizontal central difference
        hs = np.zeros(784 + 2 * PAD, np.float32)  # horizontal [1, 2, 1] smoothing
        tmp = np.empty(784, np.uint8)
        for e in range(b * BLOCK, min(n, (b + 1) * BLOCK)):
            i = indices[e]
            o = out[e]
            a = _copy_base(i, train, test, o)
            if a < 0:
                continue
            k1, k2, shift = _choice(i, key, nf)
            if not translate:
                shift = 4
            x = train[a]
            f1 = fields[k1]
            f2 = fields[k2]
            keep = mkeep[shift % 3]
            body = img[PAD:PAD + 784]
            for j in range(784):
                body[j] = np.float32(x[j])
            hdb = hd[PAD:PAD + 784]
            hsb = hs[PAD:PAD + 784]
            for j in range(784):
                left = img[PAD - 1 + j] * mleft[j]
                right = img[PAD + 1 + j] * mright[j]
                hdb[j] = right - left
                hsb[j] = left + two * img[PAD + j] + right
            for j in range(784):
                dx = (hd[PAD - 28 + j] + two * hd[PAD + j] + hd[PAD + 28 + j]) * eighth
                dy = (hs[PAD + 28 + j] - hs[PAD - 28 + j]) * eighth
                v = img[PAD + j] + a32 * (f1[j] * dx - f2[j] * dy)
                v = min(max(v, zero), top) * keep[j]
                tmp[j] = np.uint8(v)
            _shift_into(tmp, o, shift)


@njit(cache=True, nogil=True, parallel=True)
def first_order_batch(indices, train, test, fields, alpha, translate, key, mleft, mright, mkeep, out):
    """First-order deformations ``x + alpha·(u_x·dx - u_y·dy)``, optionally shifted by one pixel.

    ``dx``, ``dy`` are the Sobel derivatives of the base digit (central difference smoothed by
    [1, 2, 1]/4 across, in grey levels per pixel; ``dy`` along rows, downwards); ``u_x``, ``u_y``
    are fields ``k1``, ``k2`` of the bank. Result clipped to [0, 255] and truncated toward zero.
    This is the tangent-vector form of Loosli, Canu & Bottou (2007), i.e. the linearisation of the
    elastic warp sampled at (row - alpha·u_y, column + alpha·u_x).
    """
    for b in prange(_n_blocks(indices.shape[0])):
        _first_order_blocks(b, b + 1, indices, train, test, fields, alpha, translate, key, mleft,
                            mright, mkeep, out)


@njit(cache=True, nogil=True)
def first_order_serial(indices, train, test, fields, alpha, translate, key, mleft, mright, mkeep, out):
    """:func:`first_order_batch` on the calling thread alone (no thread pool); the same bytes."""
    _first_order_blocks(0, _n_blocks(indices.shape[0]), indices, train, test, fields, alpha, translate,
                        key, mleft, mright, mkeep, out)


@njit(cache=True, nogil=True, inline="always")
def _pixel(x, r, c):
    if r < 0 or r > 27 or c < 0 or c > 27:
        return np.float32(0.0)
    return np.float32(x[r * 28 + c])


@njit(cache=True, nogil=True)
def _elastic_blocks(b0, b1, indices, train, test, fields, alpha, translate, key, mkeep, out):
    """Blocks ``b0 <= b < b1`` (examples ``b·BLOCK ...``) of :func:`elastic_batch`."""
    n = indices.shape[0]
    nf = fields.shape[0]
    a32 = np.float32(alpha)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    top = np.float32(255.0)
    for b in range(b0, b1):
        tmp = np.empty(784, np.uint8)
        for e in range(b * BLOCK, min(n, (b + 1) * BLOCK)):
            i = indices[e]
            o = out[e]
            a = _copy_base(i, train, test, o)
            if a < 0:
                continue
            k1, k2, shift = _choice(i, key, nf)
            if not translate:
                shift = 4
            x = train[a]
            f1 = fields[k1]
            f2 = fields[k2]
            keep = mkeep[shift % 3]
            for j in range(784):
                r = j // 28
                c = j - 28 * r
                sy = np.float32(r) - a32 * f2[j]
                sx = np.float32(c) + a32 * f1[j]
                fy = np.floor(sy)
                fx = np.floor(sx)
                wy = sy - fy
                wx = sx - fx
                r0 = np.int64(fy)
                c0 = np.int64(fx)
                v = ((one - wy) * ((one - wx) * _pixel(x, r0, c0) + wx * _pixel(x, r0, c0 + 1))
                     + wy * ((one - wx) * _pixel(x, r0 + 1, c0) + wx * _pixel(x, r0 + 1, c0 + 1)))
                v = min(max(v, zero), top) * keep[j]
                tmp[j] = np.uint8(v)
            _shift_into(tmp, o, shift)


@njit(cache=True, nogil=True, parallel=True)
def elastic_batch(indices, train, test, fields, alpha, translate, key, mkeep, out):
    """Elastic deformations (Simard et al. 2003): bilinear resampling at displaced positions.

    Output pixel (r, c) samples the base digit at (r - alpha·u_y, c + alpha·u_x) with bilinear
    interpolation, zero outside the image; clipped to [0, 255], truncated; then the same optional
    one-pixel shift as :func:`first_order_batch`, with the same fields for the same index.
    """
    for b in prange(_n_blocks(indices.shape[0])):
        _elastic_blocks(b, b + 1, indices, train, test, fields, alpha, translate, key, mkeep, out)


@njit(cache=True, nogil=True)
def elastic_serial(indices, train, test, fields, alpha, translate, key, mkeep, out):
    """:func:`elastic_batch` on the calling thread alone (no thread pool); the same bytes."""
    _elastic_blocks(0, _n_blocks(indices.shape[0]), indices, train, test, fields, alpha, translate, key,
                    mkeep, out)


# ------------------------------------------------------------------------------------------------
# infimnist-compatible mode (Loosli, Canu & Bottou 2007; Bottou's infimnist.c)
# ------------------------------------------------------------------------------------------------

@njit(cache=True, nogil=True, inline="always")
def _infimnist_k(i):
    # 32-bit unsigned arithmetic on purpose: MNIST8M was generated that way.
    k1 = np.int64(((np.uint64(i) & np.uint64(0xFFFFFFFF)) * np.uint64(131071) & np.uint64(0xFFFFFFFF))
                  % np.uint64(1521))
    # (k1 + 1 + 2i) mod 1522, exact for every int64 i >= 0.
    k2 = (k1 + 1 + 2 * (i % 1522)) % 1522
    return k1, k2


@njit(cache=True, nogil=True, inline="always")
def _infimnist_translate(t, o, case):
    """Bottou's in-place one-pixel shifts, byte for byte, then copy ``t`` into ``o``.

    Case 0 up, 1 down, 2 left, 3 right, 4 up+left, 5 up+right, 6 down+left, 7 down+right, 8 none;
    the left/right shifts keep infimnist's quirks (see :meth:`InfiniteMNIST.from_infimnist_dir`).
    """
    vert = -1
    if case == 0 or case == 4 or case == 5:
        vert = 0
    elif case == 1 or case == 6 or case == 7:
        vert = 1
    horiz = -1
    if case == 2 or case == 4 or case == 6:
        horiz = 2
    elif case == 3 or case == 5 or case == 7:
        horiz = 3
    if vert == 0:  # up one row, last row zero
        for p in range(756):
            t[p] = t[p + 28]
        t[756:] = 0
    elif vert == 1:  # down one row, first row zero
        for p in range(783, 27, -1):
            t[p] = t[p - 28]
        t[:28] = 0
    if horiz == 2:  # left, increasing order; column 0 and the last byte zeroed
        for p in range(783):
            t[p] = 0 if p % 28 == 0 else t[p + 1]
        t[783] = 0
    elif horiz == 3:  # right, decreasing order; column 1 and byte 0 zeroed
        for p in range(783, 0, -1):
            t[p] = 0 if (p - 1) % 28 == 0 else t[p - 1]
        t[0] = 0
    o[:] = t


@njit(cache=True, nogil=True)
def _infimnist_blocks(b0, b1, indices, train, test, fields, tangents, alpha, translate, out):
    """Blocks ``b0 <= b < b1`` (examples ``b·BLOCK ...``) of :func:`infimnist_batch`."""
    n = indices.shape[0]
    a_pos = np.float32(alpha)
    zero = np.float32(0.0)
    top = np.float32(255.0)
    for b in range(b0, b1):
        tmp = np.empty(784, np.uint8)
        for e in range(b * BLOCK, min(n, (b + 1) * BLOCK)):
            i = indices[e]
            o = out[e]
            a = _copy_base(i, train, test, o)
            if a < 0:
                continue
            k1, k2 = _infimnist_k(i)
            al = -a_pos if (k1 + k2) % 2 == 1 else a_pos
            x = train[a]
            f1 = fields[k1]
            f2 = fields[k2]
            t0 = tangents[a, 0]
            t1 = tangents[a, 1]
            for j in range(784):
                p1 = np.float32(f1[j] * t0[j])
                p2 = np.float32(f2[j] * t1[j])
                d = np.float32(p1 - p2)
                m = np.float32(al * d)
                v = np.float32(np.float32(x[j]) + m)
                v = min(max(v, zero), top)
                tmp[j] = np.uint8(v)
            if translate:
                _infimnist_translate(tmp, o, k1 % 9)
            else:
                o[:] = tmp


@njit(cache=True, nogil=True, parallel=True)
def infimnist_batch(indices, train, test, fields, tangents, alpha, translate, out):
    """infimnist's deformation rule (see :meth:`InfiniteMNIST.from_infimnist_dir`).

    ``fields (1522, 784) float32``, ``tangents (n_train, 2, 784) float32``. Every intermediate is
    a float32 (explicit casts; no fast-math, so LLVM contracts nothing into a fused multiply-add).
    """
    for b in prange(_n_blocks(indices.shape[0])):
        _infimnist_blocks(b, b + 1, indices, train, test, fields, tangents, alpha, translate, out)


@njit(cache=True, nogil=True)
def infimnist_serial(indices, train, test, fields, tangents, alpha, translate, out):
    """:func:`infimnist_batch` on the calling thread alone (no thread pool); the same bytes."""
    _infimnist_blocks(0, _n_blocks(indices.shape[0]), indices, train, test, fields, tangents, alpha,
                      translate, out)


@njit(cache=True, nogil=True, inline="always")
def _label(i, train_labels, test_labels):
    n_test = test_labels.shape[0]
    if i < n_test:
        return test_labels[i]
    return train_labels[(i - n_test) % train_labels.shape[0]]


@njit(cache=True, nogil=True, parallel=True)
def labels_batch(indices, train_labels, test_labels, out):
    """Labels of stream indices: (n,) uint8."""
    for e in prange(indices.shape[0]):
        out[e] = _label(indices[e], train_labels, test_labels)


@njit(cache=True, nogil=True)
def labels_serial(indices, train_labels, test_labels, out):
    """:func:`labels_batch` on the calling thread alone."""
    for e in range(indices.shape[0]):
        out[e] = _label(indices[e], train_labels, test_labels)
