"""The compiled chunk drivers of the CPU kernel: a whole chunk of batch-size-1 updates inside one
Numba function (called by :class:`onlinedeep.kernels.numba_cpu.NumbaKernel`).

The maths is exactly that of docs/architecture.md ("The maths every kernel computes"); this module
only changes how the weights are swept, never what is computed:

* one compiled call per chunk (a Python call per example costs more than its arithmetic);
* each example's first-layer weight update is merged with the next example's forward pass over the
  same rows (one sweep of ``W0`` per example instead of two; the forward reads the *updated* rows, so
  the batch-1 semantics are unchanged);
* the first layer touches only the rows of ``W0`` whose input is non-zero (MNIST pixels are ~81%
  zero). This is exact: a zero input contributes nothing to the forward sum and its row's gradient is
  zero. The L2 decay does not need the other rows either: with ``l2 > 0`` the weights are kept as
  ``W = s·V`` during a chunk (:mod:`onlinedeep.kernels.weight_decay`), the decay is carried by the
  float64 scale ``s`` and applied to every weight at the end of the chunk. With ``l1 > 0`` the
  L1 step ``-lr·l1·sign(W)`` moves every weight, so every row is updated then;
* the backward pass of a hidden layer and its weight update share one pass over each row (the dot
  product of a row with the layer's delta reads each weight before it is overwritten, so gradients
  are those at the pre-update weights);
* a DAE or RBM layer's update of example i is split in two passes: first the rows example i+1's
  encoder (positive phase) reads, fused with that encoder; then, once example i+1's hidden layer is
  known, the other rows, each updated and at once swept by example i+1's decoder (DAE) or first
  Gibbs step (RBM), which reads the updated row anyway. Every row is then read and written once per
  example, plus one more read of the encoder's rows (was: two reads and a write of every row; 1.1×
  on a 784-2000 DAE layer, README "Speed");
* every sweep that feeds a sum is cut into ``N_BLOCKS`` (4) fixed blocks of whole rows, each with
  its own partial sum, added in a fixed order; ``T`` threads (1 to 4) share out the blocks. Each
  thread runs the whole driver (its index ``t`` is an argument), sweeps its own blocks and meets
  the others at a spinning barrier (:mod:`onlinedeep.kernels.numba_sync`) before the serial steps,
  which thread 0 runs alone. The arithmetic and its order do not depend on the thread count, so
  weights are **bit-identical** for 1, 2 or 4 threads (tested) and a run can resume with another
  count.

All arithmetic is float32. Dot products (row · delta), and the row updates fused with one
(``_dot_sgd``, ``_rank2_dot``, ``_rank2x4_dot``), are compiled with the ``reassoc`` fast-math flag
alone, which lets LLVM vectorise the reduction by summing in a different order — the same
freedom BLAS takes in the reference's matrix products (10× faster here). No FMA contraction is
used. Sigmoids and soft-plus terms are the vectorisable polynomial forms of
:mod:`onlinedeep.kernels.numba_math` (relative error < 5e-7, soft-plus absolute < 3e-7), not libm's
``exp``/``log1p`` (scalar calls, ~7× slower per sigmoid). Other passes: the softmax layer is trained
in a transposed copy (its 10-wide rows do not vectorise), written back at the end of the chunk; an
update of four rows and the next forward over them share one pass; the DAE decoder and RBM Gibbs
sweeps take four rows' dot products per pass. The tests compare every mode with
:mod:`onlinedeep.kernels.reference`.

Sources: the updates are those of Erhan et al. (2010), sections 5.1.1 (RBM, CD-k), 5.1.2 (denoising
auto-encoder) and 5.3 (supervised fine-tuning, L1/L2 penalties).
"""

from __future__ import annotations

import hashlib
import types
from pathlib import Path

import numpy as np
from numba import njit

from onlinedeep.kernels.numba_rows import _active_rows, _scale, _scale_add, _sum_partials
from onlinedeep.kernels.numba_sweeps import (N_BLOCKS, _backward_sgd_block, _ce_sum, _corrupt_c,
                                             _first_layer_block,
                                             _forward_dense_block, _forward_sparse_block,
                                             _out_backward_t, _out_forward_t, _rank2_block,
                                             _rescale_block, _sigmoid_,
                                             _update_sweep_block)
from onlinedeep.kernels.numba_sync import barrier
from onlinedeep.kernels.weight_decay import RESCALE_MAX, RESCALE_MIN

__all__ = ["SUPERVISED", "DAE", "RBM"]

_F32 = np.float32


# ---------------------------------------------------------------------------------------------
# Chunk drivers. Each of the chunk's T threads runs the whole driver with its own t (0..T-1):
# every sweep on the fixed row blocks of thread t (numba_sweeps), then a barrier; the serial steps
# between sweeps (partial sums, sigmoids, the softmax layer, biases) run on thread 0 alone and
# end at a barrier before any thread reads what they wrote. Every thread passes the same barriers
# in the same order (the control flow depends only on the inputs and the scalars every thread
# computes alike). A barrier returns -1 when the chunk is aborted: the driver returns. The arrays
# the threads share are allocated by the caller (numba_cpu); the others are each thread's own.

def _supervised_impl(Ws, bs, W_out, b_out, X, Y, lr, l1, l2, errors, nll, lr64, decay64, scaled,
                     H, D, P, WoT, t, T, sync):
    # Shared: H (activations h_k), D (deltas δ_k), P (per-block partial forward sums), WoT (the
    # softmax layer, transposed: see _out_forward_t; the caller copies it from W_out and back).
    # scaled (l2 > 0): every weight matrix holds V = W/s, s a float64 scale shared by all matrices
    # (onlinedeep.kernels.weight_decay); not scaled: the plain float32 update, l2 = 0 here.
    n_layers = len(Ws)
    n = X.shape[0]
    n_in = X.shape[1]
    n_out = W_out.shape[1]
    width = 1
    for k in range(n_layers):
        width = max(width, Ws[k].shape[1])
    # dense first-layer sweep: every row moves at every update (the L1 step; without the scale,
    # the L2 decay would too)
    dense = l1 != 0 or (l2 != 0 and not scaled)
    s = 1.0                                           # scale of every weight matrix, W = s·V
    s_p = 1.0                                         # scale at which P (first layer) was summed
    zero = np.zeros(max(width, n_out), dtype=_F32)
    rows = np.empty(n_in, dtype=np.int64)
    o = np.empty(n_out, dtype=_F32)
    d_out = np.empty(n_out, dtype=_F32)
    W0 = Ws[0]
    w0 = W0.shape[1]
    top = n_layers - 1
    n_top = W_out.shape[0]
    sense = 0

    # Forward of the first example over W0 (later forwards are fused with the previous update).
    m = _active_rows(X[0], False, X[0], True, False, rows)
    _forward_sparse_block(W0, rows, m, X[0], P, w0, t, T)
    sense = barrier(sync, T, sense)
    if sense < 0:
        return

    for i in range(n):
        x = X[i]
        s32 = _F32(s)
        # ---- forward: h_k = σ(h_{k-1} W_k + b_k)
        if t == 0:
            if scaled:
                _sum_partials(H[0, :w0], zero, P, N_BLOCKS, w0)
                _scale_add(H[0, :w0], _F32(s_p), bs[0])
            else:
                _sum_partials(H[0, :w0], bs[0], P, N_BLOCKS, w0)
            _sigmoid_(H[0, :w0])
        for k in range(1, n_layers):
            Wk = Ws[k]
            wk = Wk.shape[1]
            sense = barrier(sync, T, sense)
            if sense < 0:
                return
            _forward_dense_block(Wk, H[k - 1, :Wk.shape[0]], P, wk, t, T)
            sense = barrier(sync, T, sense)
            if sense < 0:
                return
            if t == 0:
                if scaled:
                    _sum_partials(H[k, :wk], zero, P, N_BLOCKS, wk)
                    _scale_add(H[k, :wk], s32, bs[k])
                else:
                    _sum_partials(H[k, :wk], bs[k], P, N_BLOCKS, wk)
                _sigmoid_(H[k, :wk])
        # Scaled: the decay goes into the scale (s ← s·d) and the step into V: V -= (lr/s)·grad.
        s_next = s * decay64
        lr_w = _F32(lr64 / s_next) if scaled else lr
        l2_w = _F32(0.0) if scaled else l2
        if t == 0:
            htop = H[top, :n_top]
            if scaled:
                _out_forward_t(WoT, htop, zero, o)
                _scale_add(o, s32, b_out)
            else:
                _out_forward_t(WoT, htop, b_out, o)

            # ---- prequential monitoring, before the update
            y = Y[i]
            best = 0
            for c in range(1, n_out):
                if o[c] > o[best]:
                    best = c
            errors[i] = 1 if best != y else 0
            mx = o[best]
            z = _F32(0.0)
            for c in range(n_out):
                z += np.exp(o[c] - mx)
            lse = mx + np.log(z)
            nll[i] = lse - o[y]
            for c in range(n_out):
                d_out[c] = np.exp(o[c] - lse)     # softmax
            d_out[y] -= 1                          # δ_out = p - onehot(y)

            # ---- softmax layer, then hidden layers k >= 1: backward dot and update in one sweep.
            _out_backward_t(WoT, htop, d_out, D[top, :n_top], lr_w, l1, l2_w)
            if scaled:
                _scale(D[top, :n_top], s32)
            for c in range(n_out):
                b_out[c] -= lr * d_out[c]
        for k in range(n_layers - 1, 0, -1):
            Wk = Ws[k]
            wk = Wk.shape[1]
            fan_in = Wk.shape[0]
            dk = D[k, :wk]
            d_in = D[k - 1, :fan_in]
            sense = barrier(sync, T, sense)
            if sense < 0:
                return
            _backward_sgd_block(Wk, H[k - 1, :fan_in], dk, d_in, lr_w, l1, l2_w, t, T)
            sense = barrier(sync, T, sense)
            if sense < 0:
                return
            if t == 0:
                if scaled:
                    _scale(d_in, s32)
                bk = bs[k]
                for c in range(wk):
                    bk[c] -= lr * dk[c]

        # ---- first layer: update of example i fused with the forward of example i+1
        sense = barrier(sync, T, sense)
        if sense < 0:
            return
        d0 = D[0, :w0]
        has_next = i + 1 < n
        x_next = X[i + 1] if has_next else x
        m = _active_rows(x, True, x_next, has_next, dense, rows)
        _first_layer_block(W0, rows, m, x, d0, lr_w, l1, l2_w, dense, x_next, has_next, P, w0,
                           t, T)
        if t == 0:
            b0 = bs[0]
            for c in range(w0):
                b0[c] -= lr * d0[c]
        sense = barrier(sync, T, sense)
        if sense < 0:
            return
        s = s_next
        s_p = s_next
        # Back to W = float32(float64(V)·s) when s leaves its range, and at the end of the chunk.
        if scaled and (s < RESCALE_MIN or s > RESCALE_MAX or (i == n - 1 and s != 1.0)):
            for k in range(n_layers):
                _rescale_block(Ws[k], s, t, T)
            _rescale_block(WoT, s, t, T)
            s = 1.0   # (P keeps its scale s_p: it was summed before the rescale)
            sense = barrier(sync, T, sense)
            if sense < 0:
                return


def _dae_impl(W, b, c, X, keep, values, has_values, lr, cost, P, xt, xt_next, h, h_next, dh, dx,
              terms, t, T, sync):
    # Per example i: h_i from the encoder partials; δ_h from the decoder partials; then example
    # i's update on the rows example i+1's encoder reads, fused with that forward (P); h_{i+1};
    # then example i's update on the other rows fused with example i+1's decoder sweep (P again).
    # The decoder of example i+1 so shares the update's pass over most rows.
    # Shared: P and the vectors after it (x̃_i, x̃_{i+1}, h_i, h_{i+1}, δ_h, δ_x̂, decoder terms).
    n = X.shape[0]
    n_in, n_hid = W.shape
    rows = np.empty(n_in, dtype=np.int64)
    zero = np.zeros(n_hid, dtype=_F32)
    zero_in = np.zeros(n_in, dtype=_F32)
    ones = np.ones(n_in, dtype=_F32)        # every row "read by the encoder": no update in a sweep
    sense = 0

    # Example 0: encoder, then decoder sweep (later decoder sweeps are fused with the update).
    if t == 0:
        _corrupt_c(X[0], keep[0], values[0], has_values, xt)
        xt_next[:] = 0
    sense = barrier(sync, T, sense)
    if sense < 0:
        return
    m = _active_rows(xt, True, xt, False, False, rows)
    _forward_sparse_block(W, rows, m, xt, P, n_hid, t, T)
    sense = barrier(sync, T, sense)
    if sense < 0:
        return
    if t == 0:
        _sum_partials(h, b, P, N_BLOCKS, n_hid)
        _sigmoid_(h)
    sense = barrier(sync, T, sense)
    if sense < 0:
        return
    _update_sweep_block(W, lr, xt, h, dx, h, ones, h, c, zero_in, X[0], zero_in, 0, zero_in,
                        terms, dx, P, t, T)
    sense = barrier(sync, T, sense)
    if sense < 0:
        return

    for i in range(n):
        x = X[i]
        if t == 0:
            cost[i] = _ce_sum(terms, x)
            # δ_h = (δ_x̂ W) ⊙ h ⊙ (1-h)
            _sum_partials(dh, zero, P, N_BLOCKS, n_hid)
            for k in range(n_hid):
                dh[k] = dh[k] * (h[k] * (_F32(1.0) - h[k]))
            # W -= lr·(x̃ᵀ δ_h + δ_x̂ᵀ h)
            if i + 1 < n:
                _corrupt_c(X[i + 1], keep[i + 1], values[i + 1 if has_values else 0], has_values,
                           xt_next)
        sense = barrier(sync, T, sense)
        if sense < 0:
            return
        if i + 1 < n:
            _rank2_block(W, lr, xt, dh, dx, h, xt_next, True, P, t, T, True)
            sense = barrier(sync, T, sense)
            if sense < 0:
                return
            if t == 0:
                for k in range(n_hid):
                    b[k] -= lr * dh[k]
                _sum_partials(h_next, b, P, N_BLOCKS, n_hid)
                _sigmoid_(h_next)
            sense = barrier(sync, T, sense)
            if sense < 0:
                return
            _update_sweep_block(W, lr, xt, dh, dx, h, xt_next, h_next, c, dx, X[i + 1],
                                dx, 0, zero_in, terms, dx, P, t, T)
            sense = barrier(sync, T, sense)
            if sense < 0:
                return
            if t == 0:
                h[:] = h_next
                xt[:] = xt_next
        else:
            _rank2_block(W, lr, xt, dh, dx, h, xt_next, False, P, t, T)
            if t == 0:
                for k in range(n_hid):
                    b[k] -= lr * dh[k]
                for j in range(n_in):
                    c[j] -= lr * dx[j]
            sense = barrier(sync, T, sense)
            if sense < 0:
                return


def _rbm_impl(W, b, c, X, u_hidden, u_visible, has_uv, lr, cd_k, cost, P, ph0, ph0_next, ph, hs,
              v, neg_v0, g, terms, t, T, sync):
    # As _dae_impl: example i's update is split between the rows example i+1's positive phase
    # reads (fused with it) and the others, fused with example i+1's first Gibbs sweep.
    # Shared: P and the vectors after it.
    n = X.shape[0]
    n_in, n_hid = W.shape
    rows = np.empty(n_in, dtype=np.int64)
    zero_in = np.zeros(n_in, dtype=_F32)
    ones = np.ones(n_in, dtype=_F32)        # every row "read by the encoder": no update in a sweep
    mode = 2 if has_uv else 1
    sense = 0

    # Example 0: positive phase, then its first Gibbs sweep (later first sweeps are fused with
    # the previous example's update).
    m = _active_rows(X[0], True, X[0], False, False, rows)
    _forward_sparse_block(W, rows, m, X[0], P, n_hid, t, T)
    sense = barrier(sync, T, sense)
    if sense < 0:
        return
    # positive phase: ph0 = σ(v0 W + b), h = [u < ph0]
    if t == 0:
        _sum_partials(ph0, b, P, N_BLOCKS, n_hid)
        _sigmoid_(ph0)
        for k in range(n_hid):
            hs[k] = _F32(1.0) if u_hidden[0, 0, k] < ph0[k] else _F32(0.0)
    sense = barrier(sync, T, sense)
    if sense < 0:
        return
    _update_sweep_block(W, lr, v, ph, neg_v0, ph0, ones, hs, c, zero_in, X[0], u_visible[0, 0],
                        mode, zero_in, terms, v, P, t, T)
    sense = barrier(sync, T, sense)
    if sense < 0:
        return

    for i in range(n):
        v0 = X[i]
        # after a sweep: pv = σ(h Wᵀ + c), v = pv (or a sample), P = partials of v W
        if t == 0:
            cost[i] = _ce_sum(terms, v0)
            _sum_partials(ph, b, P, N_BLOCKS, n_hid)
            _sigmoid_(ph)
        for step in range(1, cd_k):
            if t == 0:
                for k in range(n_hid):
                    hs[k] = _F32(1.0) if u_hidden[i, step, k] < ph[k] else _F32(0.0)
            sense = barrier(sync, T, sense)
            if sense < 0:
                return
            uv = u_visible[i, step] if has_uv else u_visible[0, 0]
            _update_sweep_block(W, lr, v, ph, neg_v0, ph0, ones, hs, c, zero_in, v0, uv, mode,
                                zero_in, terms, v, P, t, T)
            sense = barrier(sync, T, sense)
            if sense < 0:
                return
            if t == 0:
                _sum_partials(ph, b, P, N_BLOCKS, n_hid)
                _sigmoid_(ph)
        # W += lr·(v0ᵀ ph0 - vᵀ ph), written W -= lr·(vᵀ ph + (-v0)ᵀ ph0)
        if t == 0:
            for j in range(n_in):
                neg_v0[j] = -v0[j]
        sense = barrier(sync, T, sense)
        if sense < 0:
            return
        if i + 1 < n:
            x_next = X[i + 1]
            _rank2_block(W, lr, v, ph, neg_v0, ph0, x_next, True, P, t, T, True)
            sense = barrier(sync, T, sense)
            if sense < 0:
                return
            if t == 0:
                for k in range(n_hid):
                    b[k] += lr * (ph0[k] - ph[k])
                _sum_partials(ph0_next, b, P, N_BLOCKS, n_hid)
                _sigmoid_(ph0_next)
                for k in range(n_hid):
                    hs[k] = _F32(1.0) if u_hidden[i + 1, 0, k] < ph0_next[k] else _F32(0.0)
                # c += lr·(v0 - v), written c -= lr·(v - v0)
                for j in range(n_in):
                    g[j] = v[j] - v0[j]
            sense = barrier(sync, T, sense)
            if sense < 0:
                return
            _update_sweep_block(W, lr, v, ph, neg_v0, ph0, x_next, hs, c, g, x_next,
                                u_visible[i + 1 if has_uv else 0, 0], mode, zero_in, terms, v,
                                P, t, T)
            sense = barrier(sync, T, sense)
            if sense < 0:
                return
            if t == 0:
                ph0[:] = ph0_next
        else:
            _rank2_block(W, lr, v, ph, neg_v0, ph0, v0, False, P, t, T)
            if t == 0:
                for k in range(n_hid):
                    b[k] += lr * (ph0[k] - ph[k])
                for j in range(n_in):
                    c[j] += lr * (v0[j] - v[j])
            sense = barrier(sync, T, sense)
            if sense < 0:
                return


def sources_digest() -> str:
    """A digest (12 hex digits) of every ``.py`` file of ``onlinedeep.kernels``.

    The drivers compile in functions and constants of several files (numba_sweeps, numba_rows,
    numba_math, weight_decay), but Numba's on-disk cache checks only the file of the function it
    caches: after a change to a callee's file alone it would load the old machine code (measured:
    a cached caller kept the old callee). The digest in each driver's name gives every version of
    the sources its own cache entry; the callees are not cached on their own (a cached callee
    would embed its own callees' old code the same way).
    """
    h = hashlib.sha1()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


_SOURCES = sources_digest()


def _compile(fn):
    """Compile ``fn`` under its own name (own on-disk cache entry, one per version of the kernel
    sources)."""
    name = f"{fn.__name__}_{_SOURCES}"
    copy = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    copy.__qualname__ = name
    copy.__module__ = fn.__module__
    return njit(cache=True, nogil=True)(copy)


# The compiled drivers: each thread of a chunk calls one with its own t (numba_cpu.NumbaKernel).
SUPERVISED = _compile(_supervised_impl)
DAE = _compile(_dae_impl)
RBM = _compile(_rbm_impl)
