"""Compiled CPU kernel: a whole chunk of batch-size-1 updates inside one Numba function.

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
* every sweep that feeds a sum is cut into ``N_BLOCKS`` (4) fixed blocks of whole rows, each with
  its own partial sum, added in a fixed order; ``n_threads`` threads (1 to 4) share out the blocks.
  The arithmetic and its order do not depend on the thread count, so weights are **bit-identical**
  for 1, 2 or 4 threads (tested) and a run can resume with another count.

All arithmetic is float32. Dot products (row · delta) are compiled with the ``reassoc`` fast-math
flag alone, which lets LLVM vectorise the reduction by summing in a different order — the same
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

import types

import numba
import numpy as np
import torch
from numba import njit, prange
from numba.typed import List

from onlinedeep import threads as thread_policy
from onlinedeep.kernels.numba_rows import _active_rows, _scale, _scale_add, _sum_partials
from onlinedeep.kernels.numba_sweeps import (N_BLOCKS, _backward_sgd_block, _ce_sum, _corrupt_c,
                                             _dae_decode_block, _first_layer_block,
                                             _forward_dense_block, _forward_sparse_block,
                                             _out_backward_t, _out_forward_t, _rank2_block,
                                             _rbm_gibbs_block, _rescale_block, _sigmoid_)
from onlinedeep.kernels.weight_decay import RESCALE_MAX, RESCALE_MIN, decay_factor

__all__ = ["NumbaKernel", "make_kernel", "N_BLOCKS"]

_F32 = np.float32


# ---------------------------------------------------------------------------------------------
# Chunk drivers. Written once, compiled twice (serial and parallel, see _compile): with
# parallel=False, prange is range. Every prange body is one call of a block function above.

def _supervised_impl(Ws, bs, W_out, b_out, X, Y, lr, l1, l2, n_threads, errors, nll, lr64,
                     decay64, scaled):
    # The softmax layer is trained in a transposed copy WoT (see _out_forward_t), written back to
    # W_out at the end of the chunk.
    # scaled (l2 > 0): every weight matrix holds V = W/s, s a float64 scale shared by all matrices
    # (onlinedeep.kernels.weight_decay); not scaled: the plain float32 update, l2 = 0 here.
    n_layers = len(Ws)
    n = X.shape[0]
    n_in = X.shape[1]
    n_out = W_out.shape[1]
    width = 1
    for k in range(n_layers):
        width = max(width, Ws[k].shape[1])
    T = n_threads
    # dense first-layer sweep: every row moves at every update (the L1 step; without the scale,
    # the L2 decay would too)
    dense = l1 != 0 or (l2 != 0 and not scaled)
    s = 1.0                                           # scale of every weight matrix, W = s·V
    s_p = 1.0                                         # scale at which P (first layer) was summed
    zero = np.zeros(max(width, n_out), dtype=_F32)
    H = np.zeros((n_layers, width), dtype=_F32)       # activations h_k
    D = np.zeros((n_layers, width), dtype=_F32)       # deltas δ_k
    P = np.zeros((N_BLOCKS, width), dtype=_F32)       # per-block partial forward sums
    rows = np.empty(n_in, dtype=np.int64)
    o = np.empty(n_out, dtype=_F32)
    d_out = np.empty(n_out, dtype=_F32)
    W0 = Ws[0]
    w0 = W0.shape[1]
    top = n_layers - 1
    n_top = W_out.shape[0]
    WoT = np.ascontiguousarray(W_out.T)               # softmax layer, transposed (n_out, n_top)

    # Forward of the first example over W0 (later forwards are fused with the previous update).
    m = _active_rows(X[0], False, X[0], True, False, rows)
    for t in prange(T):
        _forward_sparse_block(W0, rows, m, X[0], P, w0, t, T)

    for i in range(n):
        x = X[i]
        s32 = _F32(s)
        # ---- forward: h_k = σ(h_{k-1} W_k + b_k)
        if scaled:
            _sum_partials(H[0, :w0], zero, P, N_BLOCKS, w0)
            _scale_add(H[0, :w0], _F32(s_p), bs[0])
        else:
            _sum_partials(H[0, :w0], bs[0], P, N_BLOCKS, w0)
        _sigmoid_(H[0, :w0])
        for k in range(1, n_layers):
            Wk = Ws[k]
            wk = Wk.shape[1]
            h_in = H[k - 1, :Wk.shape[0]]
            for t in prange(T):
                _forward_dense_block(Wk, h_in, P, wk, t, T)
            if scaled:
                _sum_partials(H[k, :wk], zero, P, N_BLOCKS, wk)
                _scale_add(H[k, :wk], s32, bs[k])
            else:
                _sum_partials(H[k, :wk], bs[k], P, N_BLOCKS, wk)
            _sigmoid_(H[k, :wk])
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
        # Scaled: the decay goes into the scale (s ← s·d) and the step into V: V -= (lr/s)·grad.
        s_next = s * decay64
        lr_w = _F32(lr64 / s_next) if scaled else lr
        l2_w = _F32(0.0) if scaled else l2
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
            h_in = H[k - 1, :fan_in]
            d_in = D[k - 1, :fan_in]
            for t in prange(T):
                _backward_sgd_block(Wk, h_in, dk, d_in, lr_w, l1, l2_w, t, T)
            if scaled:
                _scale(d_in, s32)
            bk = bs[k]
            for c in range(wk):
                bk[c] -= lr * dk[c]

        # ---- first layer: update of example i fused with the forward of example i+1
        d0 = D[0, :w0]
        has_next = i + 1 < n
        x_next = X[i + 1] if has_next else x
        m = _active_rows(x, True, x_next, has_next, dense, rows)
        for t in prange(T):
            _first_layer_block(W0, rows, m, x, d0, lr_w, l1, l2_w, dense, x_next, has_next,
                               P, w0, t, T)
        b0 = bs[0]
        for c in range(w0):
            b0[c] -= lr * d0[c]
        s = s_next
        s_p = s_next
        # Back to W = float32(float64(V)·s) when s leaves its range, and at the end of the chunk.
        if scaled and (s < RESCALE_MIN or s > RESCALE_MAX or (i == n - 1 and s != 1.0)):
            for k in range(n_layers):
                Wk = Ws[k]
                for t in prange(T):
                    _rescale_block(Wk, s, t, T)
            for t in prange(T):
                _rescale_block(WoT, s, t, T)
            s = 1.0   # (P keeps its scale s_p: it was summed before the rescale)
    W_out[:, :] = WoT.T


def _dae_impl(W, b, c, X, keep, values, has_values, lr, n_threads, cost):
    n = X.shape[0]
    n_in, n_hid = W.shape
    T = n_threads
    P = np.zeros((N_BLOCKS, n_hid), dtype=_F32)
    rows = np.empty(n_in, dtype=np.int64)
    xt = np.empty(n_in, dtype=_F32)
    xt_next = np.zeros(n_in, dtype=_F32)
    h = np.empty(n_hid, dtype=_F32)
    dh = np.empty(n_hid, dtype=_F32)
    dx = np.empty(n_in, dtype=_F32)
    terms = np.empty(n_in, dtype=_F32)
    zero = np.zeros(n_hid, dtype=_F32)

    _corrupt_c(X[0], keep[0], values[0], has_values, xt)
    m = _active_rows(xt, True, xt, False, False, rows)
    for t in prange(T):
        _forward_sparse_block(W, rows, m, xt, P, n_hid, t, T)

    for i in range(n):
        x = X[i]
        # h = σ(x̃ W + b)
        _sum_partials(h, b, P, N_BLOCKS, n_hid)
        _sigmoid_(h)
        # decoder sweep: x̂ = σ(h Wᵀ + c), δ_x̂ = x̂ - x, and δ_x̂ W on the same rows
        for t in prange(T):
            _dae_decode_block(W, h, c, x, terms, dx, P, t, T)
        cost[i] = _ce_sum(terms, x)
        # δ_h = (δ_x̂ W) ⊙ h ⊙ (1-h)
        _sum_partials(dh, zero, P, N_BLOCKS, n_hid)
        for k in range(n_hid):
            dh[k] = dh[k] * (h[k] * (_F32(1.0) - h[k]))
        # W -= lr·(x̃ᵀ δ_h + δ_x̂ᵀ h), fused with the forward of the next example
        has_next = i + 1 < n
        if has_next:
            _corrupt_c(X[i + 1], keep[i + 1], values[i + 1 if has_values else 0], has_values,
                       xt_next)
        for t in prange(T):
            _rank2_block(W, lr, xt, dh, dx, h, xt_next, has_next, P, t, T)
        for k in range(n_hid):
            b[k] -= lr * dh[k]
        for j in range(n_in):
            c[j] -= lr * dx[j]
        xt[:] = xt_next


def _rbm_impl(W, b, c, X, u_hidden, u_visible, has_uv, lr, cd_k, n_threads, cost):
    n = X.shape[0]
    n_in, n_hid = W.shape
    T = n_threads
    P = np.zeros((N_BLOCKS, n_hid), dtype=_F32)
    rows = np.empty(n_in, dtype=np.int64)
    ph0 = np.empty(n_hid, dtype=_F32)
    ph = np.empty(n_hid, dtype=_F32)
    hs = np.empty(n_hid, dtype=_F32)
    v = np.empty(n_in, dtype=_F32)
    neg_v0 = np.empty(n_in, dtype=_F32)
    terms = np.empty(n_in, dtype=_F32)

    m = _active_rows(X[0], True, X[0], False, False, rows)
    for t in prange(T):
        _forward_sparse_block(W, rows, m, X[0], P, n_hid, t, T)

    for i in range(n):
        v0 = X[i]
        # positive phase: ph0 = σ(v0 W + b), h = [u < ph0]
        _sum_partials(ph0, b, P, N_BLOCKS, n_hid)
        _sigmoid_(ph0)
        for k in range(n_hid):
            hs[k] = _F32(1.0) if u_hidden[i, 0, k] < ph0[k] else _F32(0.0)
        for step in range(cd_k):
            # one sweep: pv = σ(h Wᵀ + c), v = pv (or a sample), and v W on the same rows
            uv = u_visible[i, step if has_uv else 0]
            for t in prange(T):
                _rbm_gibbs_block(W, hs, c, terms, uv, has_uv, v, P, t, T)
            if step == 0:
                cost[i] = _ce_sum(terms, v0)
            _sum_partials(ph, b, P, N_BLOCKS, n_hid)
            _sigmoid_(ph)
            if step + 1 < cd_k:
                for k in range(n_hid):
                    hs[k] = _F32(1.0) if u_hidden[i, step + 1, k] < ph[k] else _F32(0.0)
        # W += lr·(v0ᵀ ph0 - vᵀ ph), written W -= lr·(vᵀ ph + (-v0)ᵀ ph0); fused with the
        # forward of the next example
        for j in range(n_in):
            neg_v0[j] = -v0[j]
        has_next = i + 1 < n
        x_next = X[i + 1] if has_next else v0
        for t in prange(T):
            _rank2_block(W, lr, v, ph, neg_v0, ph0, x_next, has_next, P, t, T)
        for k in range(n_hid):
            b[k] += lr * (ph0[k] - ph[k])
        for j in range(n_in):
            c[j] += lr * (v0[j] - v[j])


def _compile(fn, parallel: bool):
    """Compile ``fn`` serial or parallel under its own name (own on-disk cache entry)."""
    name = f"{fn.__name__}_{'parallel' if parallel else 'serial'}"
    copy = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    copy.__qualname__ = name
    copy.__module__ = fn.__module__
    return njit(cache=True, nogil=True, parallel=parallel)(copy)


_SUPERVISED = {False: _compile(_supervised_impl, False), True: _compile(_supervised_impl, True)}
_DAE = {False: _compile(_dae_impl, False), True: _compile(_dae_impl, True)}
_RBM = {False: _compile(_rbm_impl, False), True: _compile(_rbm_impl, True)}


# ---------------------------------------------------------------------------------------------
# Python side: checks and zero-copy views.

def _param(params: dict, key: str) -> np.ndarray:
    """The numpy view (shared memory) of one parameter, which the kernel updates in place."""
    if key not in params:
        raise KeyError(f"parameter {key!r} missing from params (keys: {', '.join(params)})")
    t = params[key]
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"params[{key!r}] must be a torch.Tensor, found {type(t).__name__}")
    if t.device.type != "cpu" or t.dtype != torch.float32 or not t.is_contiguous():
        raise ValueError(
            f"params[{key!r}] must be a contiguous float32 CPU tensor for the numba kernel; found "
            f"dtype {t.dtype}, device {t.device}, contiguous={t.is_contiguous()}"
        )
    return t.detach().numpy()


def _input(name: str, a, shape: tuple, dtype) -> np.ndarray:
    """A C-contiguous numpy copy/view of an input array, checked against the expected shape."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    arr = np.ascontiguousarray(np.asarray(a), dtype=dtype)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, found {arr.shape}")
    return arr


def _rows_of(x, fan_in: int) -> int:
    shape = tuple(x.shape)
    if len(shape) != 2 or shape[1] != fan_in:
        raise ValueError(f"x must have shape (n, {fan_in}), found {shape}")
    return shape[0]


class NumbaKernel:
    """Batch-size-1 SGD, DAE and RBM updates compiled with Numba, for float32 CPU parameters.

    Implements the ``Kernel`` protocol of :mod:`onlinedeep.kernels` (docs/architecture.md): each
    method runs a whole chunk of consecutive updates, one example per update, in place on the numpy
    views of the parameter tensors, and returns per-example monitoring values.

    Parameters
    ----------
    n_threads : int, optional
        Threads running each weight sweep (default or 0: ``onlinedeep.threads.decide("kernel")``). With 1, a serial
        compiled function runs (used by :mod:`onlinedeep.kernels.replicas`, one model per thread).
        At most :data:`N_BLOCKS` (4) threads work on a sweep; a larger count is reduced to it.
        **Results are bit-identical for every thread count**: each sweep is cut into the same
        :data:`N_BLOCKS` row blocks whose partial sums are added in a fixed order, whichever thread
        runs which block (tests/test_kernels_numba.py). So a run may be resumed with another count.

    Attributes
    ----------
    n_threads : int
        The threads used (after the default and the :data:`N_BLOCKS` cap).

    Raises
    ------
    ValueError
        If ``n_threads`` is not an integer >= 0 (or ``$ONLINEDEEP_NUMBA_THREADS`` is invalid).

    Notes
    -----
    Maths: Erhan et al. (2010), sections 5.1.1, 5.1.2 and 5.3, as written in docs/architecture.md.
    """

    name = "numba"
    owns_threads = True  # runs its own threads (n_threads); its weights do not depend on them

    def __init__(self, n_threads: int | None = None):
        if n_threads is None or (not isinstance(n_threads, bool) and n_threads == 0):
            n_threads = thread_policy.decide("kernel")
        if isinstance(n_threads, bool) or int(n_threads) != n_threads or n_threads < 1:
            raise ValueError(f"n_threads must be an integer >= 1 (0 or None: auto), found {n_threads!r}")
        self.n_threads = min(int(n_threads), N_BLOCKS)

    def _run(self, table, *args):
        if self.n_threads == 1:
            table[False](*args)
            return
        # numba's thread count is per calling thread: set it for this call only
        before = numba.get_num_threads()
        numba.set_num_threads(min(self.n_threads, numba.config.NUMBA_NUM_THREADS))
        try:
            table[True](*args)
        finally:
            numba.set_num_threads(before)

    def supervised(self, params, x, y, *, learning_rate, l1=0.0, l2=0.0):
        """Prequential supervised SGD on a chunk: record the error and NLL, then update.

        Parameters
        ----------
        params : dict[str, torch.Tensor]
            ``W{k}, b{k}`` (k = 0..L-1), ``W_out, b_out``; contiguous float32 CPU; updated in place.
        x : (n, fan_in_0) float32 tensor or array
            Inputs, one example per update, in order.
        y : (n,) int64 tensor or array
            Labels in [0, n_outputs).
        learning_rate, l1, l2 : float
            Step size and weight penalties (l1·Σ|W| + l2·ΣW² over weight matrices, not biases).
            With ``l2 > 0`` every weight decays by ``1 - 2·learning_rate·l2`` per update exactly
            (scaled representation, :mod:`onlinedeep.kernels.weight_decay`), rounded to float32
            once at the end of the chunk.

        Returns
        -------
        errors : (n,) uint8 tensor
            1 where argmax of the pre-update output (first maximum on ties) differs from y.
        nll : (n,) float32 tensor
            logsumexp(o) - o[y] at the pre-update weights.

        Raises
        ------
        KeyError, TypeError, ValueError
            Missing parameter, wrong tensor kind, wrong shape, a label out of range, or
            ``learning_rate · l2 >= 0.5``.
        """
        n_layers = 0
        while f"W{n_layers}" in params:
            n_layers += 1
        if n_layers == 0:
            raise KeyError(f"params has no hidden layer W0 (keys: {', '.join(params)})")
        Ws = List([_param(params, f"W{k}") for k in range(n_layers)])
        bs = List([_param(params, f"b{k}") for k in range(n_layers)])
        W_out, b_out = _param(params, "W_out"), _param(params, "b_out")
        n = _rows_of(x, Ws[0].shape[0])
        X = _input("x", x, (n, Ws[0].shape[0]), np.float32)
        Y = _input("y", y, (n,), np.int64)
        n_out = W_out.shape[1]
        if n and (Y.min() < 0 or Y.max() >= n_out):
            bad = int(np.flatnonzero((Y < 0) | (Y >= n_out))[0])
            raise ValueError(f"y[{bad}] = {Y[bad]} is not a class index in [0, {n_out})")
        errors = np.zeros(n, dtype=np.uint8)
        nll = np.zeros(n, dtype=np.float32)
        decay = decay_factor(learning_rate, l2)  # float64; raises for learning_rate·l2 >= 0.5
        if n:
            self._run(_SUPERVISED, Ws, bs, W_out, b_out, X, Y, _F32(learning_rate), _F32(l1),
                      _F32(l2), self.n_threads, errors, nll, float(learning_rate), decay,
                      float(l2) != 0.0)
        return torch.from_numpy(errors), torch.from_numpy(nll)

    def dae(self, params, layer, x, keep, values, *, learning_rate):
        """Denoising auto-encoder updates of hidden layer ``layer`` (tied weights) on a chunk.

        Parameters
        ----------
        params : dict[str, torch.Tensor]
            Uses ``W{layer} (fan_in, n_hidden)``, ``b{layer}``, ``c{layer}``; updated in place.
        layer : int
        x : (n, fan_in) float32
            Clean inputs of the layer (output of the fixed layers below), in [0, 1].
        keep : (n, fan_in) bool
            False where the input is corrupted.
        values : (n, fan_in) float32 or None
            Replacement values where ``keep`` is False (salt-and-pepper); None = masking noise (0).
        learning_rate : float

        Returns
        -------
        (n,) float32 tensor
            Reconstruction cross-entropy -Σ x log x̂ + (1-x) log(1-x̂) at the pre-update weights.
        """
        W, b, c = (_param(params, f"{p}{layer}") for p in ("W", "b", "c"))
        fan_in = W.shape[0]
        n = _rows_of(x, fan_in)
        X = _input("x", x, (n, fan_in), np.float32)
        K = _input("keep", keep, (n, fan_in), np.bool_)
        has_values = values is not None
        V = (_input("values", values, (n, fan_in), np.float32) if has_values
             else np.zeros((1, fan_in), dtype=np.float32))
        cost = np.zeros(n, dtype=np.float32)
        if n:
            self._run(_DAE, W, b, c, X, K, V, has_values, _F32(learning_rate), self.n_threads, cost)
        return torch.from_numpy(cost)

    def rbm(self, params, layer, x, u_hidden, u_visible, *, learning_rate, cd_k=1):
        """RBM CD-k updates of hidden layer ``layer`` on a chunk.

        Parameters
        ----------
        params : dict[str, torch.Tensor]
            Uses ``W{layer} (fan_in, n_hidden)``, ``b{layer}``, ``c{layer}``; updated in place.
        layer : int
        x : (n, fan_in) float32
            Visible probabilities v0.
        u_hidden : (n, cd_k, n_hidden) float32
            Uniforms of the hidden samples h = [u < p].
        u_visible : (n, cd_k, fan_in) float32 or None
            Uniforms of sampled reconstructions; None = use the probabilities.
        learning_rate : float
        cd_k : int
            Gibbs steps, >= 1.

        Returns
        -------
        (n,) float32 tensor
            Cross-entropy of the first reconstruction against v0, at the pre-update weights.
        """
        if int(cd_k) != cd_k or cd_k < 1:
            raise ValueError(f"cd_k must be an integer >= 1, found {cd_k!r}")
        W, b, c = (_param(params, f"{p}{layer}") for p in ("W", "b", "c"))
        fan_in, n_hid = W.shape
        n = _rows_of(x, fan_in)
        X = _input("x", x, (n, fan_in), np.float32)
        UH = _input("u_hidden", u_hidden, (n, int(cd_k), n_hid), np.float32)
        has_uv = u_visible is not None
        UV = (_input("u_visible", u_visible, (n, int(cd_k), fan_in), np.float32) if has_uv
              else np.zeros((1, 1, fan_in), dtype=np.float32))
        cost = np.zeros(n, dtype=np.float32)
        if n:
            self._run(_RBM, W, b, c, X, UH, UV, has_uv, _F32(learning_rate), int(cd_k),
                      self.n_threads, cost)
        return torch.from_numpy(cost)


def make_kernel(device, threads: int = 0) -> NumbaKernel:
    """Entry point of :func:`onlinedeep.kernels.get` (CPU only).

    Parameters
    ----------
    device : str or torch.device
        Must be a CPU device.
    threads : int
        Threads of the kernel, 0 = auto (``onlinedeep.threads.decide("kernel")``).

    Raises
    ------
    ValueError
        On a non-CPU device or a bad thread count.
    """
    dev = torch.device(device)
    if dev.type != "cpu":
        raise ValueError(f"the numba kernel runs on cpu only, not on {dev}")
    return NumbaKernel(n_threads=threads)
