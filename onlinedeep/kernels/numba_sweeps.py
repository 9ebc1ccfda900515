"""Row-block sweeps of the Numba kernel (:mod:`onlinedeep.kernels.numba_cpu`): the forward,
backward, DAE and RBM passes over one fixed block of rows, so that the weights do not depend on
the thread count.

Not cached on disk on their own: they are compiled into the drivers of
:mod:`onlinedeep.kernels.numba_chunks`, whose cache entries carry a digest of all the kernel
sources. (Numba's cache checks only a function's own file, so a cached caller here would keep
the machine code of an older version of a callee in another file.)"""
from __future__ import annotations

import numpy as np
from numba import njit

from onlinedeep.kernels.numba_rows import (_axpy, _axpy4, _dot, _dot4, _dot_sgd, _flush, _push,
                                           _rank2_dot, _rank2_row, _rank2x4_axpy, _rank2x4_dot,
                                           _sgd4_axpy, _sgd_row, _sigmoid, _softplus)

_F32 = np.float32

# ---------------------------------------------------------------------------------------------
# Row-block bodies. Every sweep that feeds a sum (a forward pass) is cut into N_BLOCKS fixed row
# blocks, whatever the thread count: block b covers rows [n·b/B, n·(b+1)/B) and accumulates into its
# own partial vector P[b]; the partials are then added in the order b = 0..B-1 (_sum_partials).
# Thread t of T (T <= B) runs blocks [B·t/T, B·(t+1)/T) one after the other. So every float
# operation, and its order, is the same for 1, 2 or 4 threads: results are bit-identical. Blocks are
# whole rows, so the updates of different threads never touch the same memory.

N_BLOCKS = 4
"""Fixed number of row blocks per sweep (and the most threads a sweep can use)."""


@njit(nogil=True)
def _block(count, b, n_parts):
    """Rows [lo, hi) of part b of n_parts of a sweep over ``count`` rows."""
    return count * b // n_parts, count * (b + 1) // n_parts


@njit(nogil=True)
def _blocks_of(t, T):
    """The fixed row blocks [b0, b1) that thread t of T runs."""
    return N_BLOCKS * t // T, N_BLOCKS * (t + 1) // T


@njit(nogil=True)
def _forward_sparse_block(W, rows, m, x, P, w, t, T):
    """P[b, :w] = Σ_{rows j of block b} x_j W_j for the blocks of thread t (rows lists the
    candidate rows; zero inputs are skipped)."""
    idx = np.empty(4, dtype=np.int64)
    coef = np.empty(4, dtype=_F32)
    b0, b1 = _blocks_of(t, T)
    for b in range(b0, b1):
        part = P[b, :w]
        part[:] = 0
        cnt = 0
        q0, q1 = _block(m, b, N_BLOCKS)
        for q in range(q0, q1):
            j = rows[q]
            xj = x[j]
            if xj != 0:
                cnt = _push(part, W, j, xj, idx, coef, cnt)
        _flush(part, W, idx, coef, cnt)


@njit(nogil=True)
def _forward_dense_block(W, h_in, P, w, t, T):
    """P[b, :w] = Σ_{rows j of block b} h_j W_j for the blocks of thread t."""
    b0, b1 = _blocks_of(t, T)
    for b in range(b0, b1):
        part = P[b, :w]
        part[:] = 0
        j0, j1 = _block(W.shape[0], b, N_BLOCKS)
        j = j0
        while j + 4 <= j1:
            _axpy4(part, h_in[j], W[j], h_in[j + 1], W[j + 1], h_in[j + 2], W[j + 2],
                   h_in[j + 3], W[j + 3])
            j += 4
        while j < j1:
            _axpy(part, h_in[j], W[j])
            j += 1


@njit(nogil=True)
def _backward_sgd_block(W, h_in, delta, delta_in, lr, l1, l2, t, T):
    """δ_in_j = (W_j·δ) h_j (1-h_j) at the pre-update row, then the row's SGD step.

    Every row's result depends on that row alone, so any split between threads gives the same bits.
    """
    j0, j1 = _block(W.shape[0], t, T)
    plain = l1 == 0 and l2 == 0
    for j in range(j0, j1):
        row = W[j]
        hj = h_in[j]
        if plain:
            acc = _dot_sgd(row, delta, lr, hj)
        else:
            acc = _dot(row, delta)
            _sgd_row(row, lr, hj, delta, l1, l2)
        delta_in[j] = acc * (hj * (_F32(1.0) - hj))


# The softmax layer (n_top, 10) is used transposed: a row of 10 weights is too short to vectorise
# (a 10-wide row loop cost ~12 µs per update over 2,000 rows), a row of n_top weights is not. The
# chunk driver copies W_out into WoT (n_out, n_top) at its start and back at its end.

@njit(nogil=True)
def _out_forward_t(WT, h, b, o):
    """o = h W + b, for W given transposed as WT (n_out, n)."""
    for c in range(WT.shape[0]):
        o[c] = _dot(WT[c], h) + b[c]


@njit(nogil=True)
def _out_backward_t(WT, h, d, delta_in, lr, l1, l2):
    """δ_in_j = (Σ_c W_jc δ_c) h_j (1-h_j) at the pre-update weights (summed over c = 0, 1, ... in
    order), then the SGD step of every weight, for W given transposed as WT (n_out, n)."""
    two_l2 = _F32(2.0) * l2
    plain = l1 == 0 and l2 == 0
    for c in range(WT.shape[0]):
        row = WT[c]
        dc = d[c]
        if c == 0:
            for j in range(row.shape[0]):
                delta_in[j] = row[j] * dc
        else:
            for j in range(row.shape[0]):
                delta_in[j] += row[j] * dc
        if plain:
            for j in range(row.shape[0]):
                row[j] -= lr * (h[j] * dc)
        else:
            for j in range(row.shape[0]):
                w = row[j]
                sign = _F32(w > 0) - _F32(w < 0)
                row[j] = w - lr * (h[j] * dc + l1 * sign + two_l2 * w)
    for j in range(delta_in.shape[0]):
        hj = h[j]
        delta_in[j] *= hj * (_F32(1.0) - hj)


@njit(nogil=True)
def _first_layer_block(W, rows, m, x, delta, lr, l1, l2, dense, x_next, has_next, P, w, t, T):
    """SGD step of example i on its rows of W0 (every listed row if ``dense``, else the rows of
    non-zero inputs), then example i+1's forward over the same rows (into P[b, :w] for the blocks
    of thread t)."""
    idx = np.empty(4, dtype=np.int64)
    coef = np.empty(4, dtype=_F32)
    both = np.empty(4, dtype=np.int64)     # rows both updated and forwarded, fused four at a time
    plain = l1 == 0 and l2 == 0
    b0, b1 = _blocks_of(t, T)
    for b in range(b0, b1):
        part = P[b, :w]
        part[:] = 0
        cnt = 0
        nb = 0
        q0, q1 = _block(m, b, N_BLOCKS)
        for q in range(q0, q1):
            j = rows[q]
            xj = x[j]
            xn = x_next[j] if has_next else _F32(0.0)
            upd = dense or xj != 0
            if upd and xn != 0 and plain:
                both[nb] = j
                nb += 1
                if nb == 4:
                    j0, j1, j2, j3 = both[0], both[1], both[2], both[3]
                    _sgd4_axpy(part, W[j0], W[j1], W[j2], W[j3], lr, x[j0], x[j1], x[j2], x[j3],
                               delta, x_next[j0], x_next[j1], x_next[j2], x_next[j3])
                    nb = 0
                continue
            if upd:
                _sgd_row(W[j], lr, xj, delta, l1, l2)
            if xn != 0:
                cnt = _push(part, W, j, xn, idx, coef, cnt)
        for q in range(nb):
            j = both[q]
            _sgd_row(W[j], lr, x[j], delta, l1, l2)
            cnt = _push(part, W, j, x_next[j], idx, coef, cnt)
        _flush(part, W, idx, coef, cnt)


@njit(nogil=True)
def _rank2_block(W, lr, s, d, u, e, x_next, has_next, P, t, T, only_next=False):
    """W_j -= lr·(s_j d + u_j e) on every row, then the next example's forward over the rows.

    With ``only_next``, only the rows the next example's forward reads (x_next_j != 0) are updated
    and forwarded; the others are left to _update_sweep_block."""
    idx = np.empty(4, dtype=np.int64)
    coef = np.empty(4, dtype=_F32)
    both = np.empty(4, dtype=np.int64)     # rows also forwarded: update and forward fused, by four
    b0, b1 = _blocks_of(t, T)
    for b in range(b0, b1):
        part = P[b]
        part[:] = 0
        cnt = 0
        nb = 0
        j0, j1 = _block(W.shape[0], b, N_BLOCKS)
        for j in range(j0, j1):
            if has_next and x_next[j] != 0:
                both[nb] = j
                nb += 1
                if nb == 4:
                    k0, k1, k2, k3 = both[0], both[1], both[2], both[3]
                    _rank2x4_axpy(part, W[k0], W[k1], W[k2], W[k3], lr, s[k0], s[k1], s[k2],
                                  s[k3], d, u[k0], u[k1], u[k2], u[k3], e, x_next[k0],
                                  x_next[k1], x_next[k2], x_next[k3])
                    nb = 0
            elif not only_next:
                _rank2_row(W[j], lr, s[j], d, u[j], e)
        for q in range(nb):
            j = both[q]
            _rank2_row(W[j], lr, s[j], d, u[j], e)
            cnt = _push(part, W, j, x_next[j], idx, coef, cnt)
        _flush(part, W, idx, coef, cnt)


@njit(nogil=True, error_model="numpy")
def _visible_unit(z, x, uv, q, mode):
    """What the decoder (DAE) or Gibbs (RBM) sweep feeds back for visible unit q with
    pre-activation z: σ(z) - x_q (mode 0, the DAE's δ_x̂), σ(z) (1, an RBM's mean-field
    reconstruction), or the sample [uv_q < σ(z)] (2)."""
    p = _sigmoid(z)
    if mode == 0:
        return p - x[q]
    if mode == 1:
        return p
    return _F32(1.0) if uv[q] < p else _F32(0.0)


@njit(nogil=True, error_model="numpy")
def _update_sweep_block(W, lr, s, d, u, e, x_next, h, c, g, x, uv, mode, zero, terms, out, P,
                        t, T):
    """The rest of example i's update fused with example i+1's decoder (DAE) or Gibbs (RBM)
    sweep, for the blocks of thread t.

    On every row j with x_next_j = 0, W_j -= lr·(s_j d + u_j e) (the rows with x_next_j != 0 were
    updated by _rank2_block with ``only_next``, fused with example i+1's encoder); then on every
    row c_j -= lr·g_j, z_j = W_j·h + c_j (into ``terms``), out_j = _visible_unit(z_j) and
    P[b] += out_j W_j, four rows at a time (the second read of a row is from L1 or L2). ``out``
    may be ``s``, ``u`` or ``g``: each of their j-th values is read before out_j is written.
    Example i+1's sweep so costs no read of the updated rows beyond the update's own, except on
    the rows its encoder read. With x_next non-zero and g zero everywhere it is a plain sweep (no
    update; the first example of a chunk, the later Gibbs steps of CD-k). ``zero``: zeros, one
    per row."""
    b0, b1 = _blocks_of(t, T)
    for b in range(b0, b1):
        part = P[b]
        part[:] = 0
        j0, j1 = _block(W.shape[0], b, N_BLOCKS)
        j = j0
        while j + 4 <= j1:
            if x_next[j] == 0 and x_next[j + 1] == 0 and x_next[j + 2] == 0 and x_next[j + 3] == 0:
                a0, a1, a2, a3 = _rank2x4_dot(W[j], W[j + 1], W[j + 2], W[j + 3], lr, s[j],
                                              s[j + 1], s[j + 2], s[j + 3], d, u[j], u[j + 1],
                                              u[j + 2], u[j + 3], e, h)
                terms[j] = a0
                terms[j + 1] = a1
                terms[j + 2] = a2
                terms[j + 3] = a3
            elif (x_next[j] != 0 and x_next[j + 1] != 0 and x_next[j + 2] != 0
                  and x_next[j + 3] != 0):
                _dot4(W[j], W[j + 1], W[j + 2], W[j + 3], h, zero, terms, j)
            else:
                for q in range(j, j + 4):
                    if x_next[q] == 0:
                        terms[q] = _rank2_dot(W[q], lr, s[q], d, u[q], e, h)
                    else:
                        terms[q] = _dot(W[q], h)
            for q in range(j, j + 4):
                cq = c[q] - lr * g[q]
                c[q] = cq
                terms[q] += cq
                out[q] = _visible_unit(terms[q], x, uv, q, mode)
            _axpy4(part, out[j], W[j], out[j + 1], W[j + 1], out[j + 2], W[j + 2], out[j + 3],
                   W[j + 3])
            j += 4
        while j < j1:
            if x_next[j] == 0:
                terms[j] = _rank2_dot(W[j], lr, s[j], d, u[j], e, h)
            else:
                terms[j] = _dot(W[j], h)
            cj = c[j] - lr * g[j]
            c[j] = cj
            terms[j] += cj
            out[j] = _visible_unit(terms[j], x, uv, j, mode)
            _axpy(part, out[j], W[j])
            j += 1


@njit(nogil=True)
def _corrupt_c(x, keep, values, has_values, out):
    """x̃ = where(keep, x, values) (values = 0 for masking noise)."""
    for j in range(x.shape[0]):
        if keep[j]:
            out[j] = x[j]
        elif has_values:
            out[j] = values[j]
        else:
            out[j] = 0


@njit(nogil=True, error_model="numpy")
def _sigmoid_(a):
    for c in range(a.shape[0]):
        a[c] = _sigmoid(a[c])


@njit(nogil=True, error_model="numpy")
def _ce_sum(z, x):
    """Σ_j softplus(z_j) - x_j z_j: the terms vectorised, then summed in order j = 0, 1, ..."""
    for j in range(z.shape[0]):
        z[j] = _softplus(z[j]) - x[j] * z[j]
    s = _F32(0.0)
    for j in range(z.shape[0]):
        s += z[j]
    return s


@njit(nogil=True)
def _rescale_block(W, scale, t, T):
    """Rows of part t of T: W_j ← float32(float64(W_j)·scale), elementwise (same bits, any T)."""
    j0, j1 = _block(W.shape[0], t, T)
    for j in range(j0, j1):
        row = W[j]
        for c in range(row.shape[0]):
            row[c] = _F32(np.float64(row[c]) * scale)
