"""Row primitives of the Numba kernel (:mod:`onlinedeep.kernels.numba_cpu`): dot products, row
updates, the vectorisable sigmoid and soft-plus, partial-sum helpers. Each loops over a whole row
view from 0 so LLVM vectorises it.

Not cached on disk on their own: they are compiled into the drivers of
:mod:`onlinedeep.kernels.numba_chunks`, whose cache entries carry a digest of all the kernel
sources. (Numba's cache checks only a function's own file, so a cached caller here would keep
the machine code of an older version of a callee in another file.)"""
from __future__ import annotations

import numpy as np
from numba import njit

from onlinedeep.kernels.numba_math import sigmoid32, softplus32

_F32 = np.float32

# ---------------------------------------------------------------------------------------------
# Row primitives. Each loops over a whole row view from 0 so LLVM vectorises it (a loop over
# range(j0, j1) of a 2-D array did not vectorise in our measurements).

@njit(nogil=True, fastmath={"reassoc"})
def _dot(a, b):
    """Σ a·b in float32; ``reassoc`` lets the reduction vectorise (order of the sum only)."""
    s = _F32(0.0)
    for c in range(a.shape[0]):
        s += a[c] * b[c]
    return s


@njit(nogil=True)
def _axpy(y, a, x):
    """y += a·x (in place)."""
    for c in range(y.shape[0]):
        y[c] += a * x[c]


@njit(nogil=True)
def _axpy4(y, a0, x0, a1, x1, a2, x2, a3, x3):
    """y += a0·x0 + a1·x1 + a2·x2 + a3·x3: one load/store of y per four rows (the store of the
    accumulator, not the weight stream, limited a one-row axpy sweep here)."""
    for c in range(y.shape[0]):
        y[c] += a0 * x0[c] + a1 * x1[c] + a2 * x2[c] + a3 * x3[c]


@njit(nogil=True)
def _push(part, W, j, a, idx, coef, cnt):
    """Queue part += a·W[j]; every fourth queued row flushes the group with _axpy4. Returns cnt."""
    idx[cnt] = j
    coef[cnt] = a
    cnt += 1
    if cnt == 4:
        _axpy4(part, coef[0], W[idx[0]], coef[1], W[idx[1]], coef[2], W[idx[2]], coef[3],
               W[idx[3]])
        cnt = 0
    return cnt


@njit(nogil=True)
def _flush(part, W, idx, coef, cnt):
    for q in range(cnt):
        _axpy(part, coef[q], W[idx[q]])


@njit(nogil=True, fastmath={"reassoc"})
def _dot_sgd(row, d, lr, s):
    """Σ row·d at the pre-update row, and row -= lr·s·d, in one pass (plain SGD, no penalty).

    The row's step does not depend on its dot product, so both share one read of the row;
    ``reassoc`` vectorises the sum (its order only) and may hoist ``lr·s`` out of the loop.
    """
    acc = _F32(0.0)
    for c in range(row.shape[0]):
        w = row[c]
        acc += w * d[c]
        row[c] = w - lr * (s * d[c])
    return acc


@njit(nogil=True, fastmath={"reassoc"})
def _dot4(r0, r1, r2, r3, h, c, out, j):
    """out[j+q] = r_q·h + c[j+q] for q = 0..3: four dot products in one pass (h read once)."""
    a0 = _F32(0.0)
    a1 = _F32(0.0)
    a2 = _F32(0.0)
    a3 = _F32(0.0)
    for k in range(h.shape[0]):
        hk = h[k]
        a0 += r0[k] * hk
        a1 += r1[k] * hk
        a2 += r2[k] * hk
        a3 += r3[k] * hk
    out[j] = a0 + c[j]
    out[j + 1] = a1 + c[j + 1]
    out[j + 2] = a2 + c[j + 2]
    out[j + 3] = a3 + c[j + 3]


@njit(nogil=True)
def _sgd4_axpy(part, r0, r1, r2, r3, lr, s0, s1, s2, s3, d, a0, a1, a2, a3):
    """SGD step of four rows (r_q -= lr·s_q·d) and part += Σ a_q·r_q at the updated rows, in one
    pass: each row is read and written once, the forward sum reads the new values from registers."""
    for c in range(part.shape[0]):
        dc = d[c]
        w0 = r0[c] - lr * (s0 * dc)
        w1 = r1[c] - lr * (s1 * dc)
        w2 = r2[c] - lr * (s2 * dc)
        w3 = r3[c] - lr * (s3 * dc)
        r0[c] = w0
        r1[c] = w1
        r2[c] = w2
        r3[c] = w3
        part[c] += a0 * w0 + a1 * w1 + a2 * w2 + a3 * w3


@njit(nogil=True)
def _rank2x4_axpy(part, r0, r1, r2, r3, lr, s0, s1, s2, s3, d, t0, t1, t2, t3, e,
                  a0, a1, a2, a3):
    """r_q -= lr·(s_q·d + t_q·e) for four rows and part += Σ a_q·r_q at the updated rows, one pass.

    (With s_q = 0 the step equals _rank2_row's one-term form exactly: 0·d + t·e = t·e.)"""
    for c in range(part.shape[0]):
        dc = d[c]
        ec = e[c]
        w0 = r0[c] - lr * (s0 * dc + t0 * ec)
        w1 = r1[c] - lr * (s1 * dc + t1 * ec)
        w2 = r2[c] - lr * (s2 * dc + t2 * ec)
        w3 = r3[c] - lr * (s3 * dc + t3 * ec)
        r0[c] = w0
        r1[c] = w1
        r2[c] = w2
        r3[c] = w3
        part[c] += a0 * w0 + a1 * w1 + a2 * w2 + a3 * w3


@njit(nogil=True, error_model="numpy")
def _sigmoid(z):
    """σ(z) (vectorisable polynomial form, :mod:`onlinedeep.kernels.numba_math`)."""
    return sigmoid32(z)


@njit(nogil=True, error_model="numpy")
def _softplus(z):
    """log(1 + e^z), stable for large |z| (:mod:`onlinedeep.kernels.numba_math`)."""
    return softplus32(z)


@njit(nogil=True)
def _sgd_row(row, lr, s, d, l1, l2):
    """Supervised SGD on one weight row: row -= lr·(s·d + l1·sign(row) + 2·l2·row)."""
    if l1 == 0 and l2 == 0:
        for c in range(row.shape[0]):
            row[c] -= lr * (s * d[c])
    else:
        two_l2 = _F32(2.0) * l2
        for c in range(row.shape[0]):
            w = row[c]
            sign = _F32(w > 0) - _F32(w < 0)
            row[c] = w - lr * (s * d[c] + l1 * sign + two_l2 * w)


@njit(nogil=True)
def _rank2_row(row, lr, s, d, t, e):
    """row -= lr·(s·d + t·e): the tied-weight DAE (and RBM) update of one row. A zero s or t
    drops its term (same value: 0·d + t·e = t·e), halving the arithmetic of most rows."""
    if s == 0:
        for c in range(row.shape[0]):
            row[c] -= lr * (t * e[c])
    elif t == 0:
        for c in range(row.shape[0]):
            row[c] -= lr * (s * d[c])
    else:
        for c in range(row.shape[0]):
            row[c] -= lr * (s * d[c] + t * e[c])


@njit(nogil=True)
def _active_rows(xa, use_a, xb, use_b, dense, rows):
    """Fill ``rows`` with the rows a first-layer sweep must visit; return their count.

    Every row when ``dense`` (a penalty step on every weight), else the rows where ``xa`` (the
    example being updated) or ``xb`` (the next example, being forwarded) is non-zero.
    """
    m = 0
    for j in range(rows.shape[0]):
        if dense or (use_a and xa[j] != 0) or (use_b and xb[j] != 0):
            rows[m] = j
            m += 1
    return m


@njit(nogil=True)
def _sum_partials(out, bias, partial, n_parts, width):
    """out = (Σ_{b=0..n_parts-1} partial[b]) + bias, summed in that order (bias last, as x·W + b)."""
    for c in range(width):
        s = _F32(0.0)
        for t in range(n_parts):
            s += partial[t, c]
        out[c] = s + bias[c]


@njit(nogil=True)
def _scale_add(out, scale, bias):
    """out = out·scale + bias (a forward sum of ``V`` brought to ``W = scale·V``, then the bias)."""
    for c in range(out.shape[0]):
        out[c] = out[c] * scale + bias[c]


@njit(nogil=True)
def _scale(out, scale):
    """out *= scale (a backward sum of ``V`` brought to ``W = scale·V``)."""
    for c in range(out.shape[0]):
        out[c] *= scale


@njit(nogil=True, fastmath={"reassoc"})
def _rank2_dot(row, lr, s, d, t, e, h):
    """row -= lr·(s·d + t·e), then return Σ row·h at the updated row, in one pass."""
    acc = _F32(0.0)
    for c in range(row.shape[0]):
        w = row[c] - lr * (s * d[c] + t * e[c])
        row[c] = w
        acc += w * h[c]
    return acc


@njit(nogil=True, fastmath={"reassoc"})
def _rank2x4_dot(r0, r1, r2, r3, lr, s0, s1, s2, s3, d, t0, t1, t2, t3, e, h):
    """_rank2_dot of four rows in one pass (d, e and h read once); returns the four sums."""
    a0 = _F32(0.0)
    a1 = _F32(0.0)
    a2 = _F32(0.0)
    a3 = _F32(0.0)
    for c in range(h.shape[0]):
        dc = d[c]
        ec = e[c]
        hc = h[c]
        w0 = r0[c] - lr * (s0 * dc + t0 * ec)
        w1 = r1[c] - lr * (s1 * dc + t1 * ec)
        w2 = r2[c] - lr * (s2 * dc + t2 * ec)
        w3 = r3[c] - lr * (s3 * dc + t3 * ec)
        r0[c] = w0
        r1[c] = w1
        r2[c] = w2
        r3[c] = w3
        a0 += w0 * hc
        a1 += w1 * hc
        a2 += w2 * hc
        a3 += w3 * hc
    return a0, a1, a2, a3
