"""The reference kernel: the plain per-example PyTorch loop, forward, backward and update by hand.

No autograd and no optimizer: each update is the handful of BLAS-2 calls of the maths in
docs/architecture.md, written into buffers allocated once per network shape, in place on the
parameters. It runs on any device PyTorch runs on; nothing inside the loop reads a value back to the
host (monitoring values are computed after the loop from preallocated device tensors), so on CUDA the
whole chunk is queued without a synchronisation.

Every faster kernel is tested against this one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from onlinedeep.kernels.weight_decay import decay_factor, must_rescale, rescale_
from onlinedeep.model import n_layers

__all__ = ["ReferenceKernel", "make_kernel"]


def _check(name: str, t, shape: tuple, dtype: torch.dtype, device: torch.device) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {shape} {dtype}, got {type(t).__name__}")
    if tuple(t.shape) != tuple(shape) or t.dtype != dtype or t.device != device:
        raise ValueError(
            f"{name} must be a {dtype} tensor of shape {tuple(shape)} on {device}; "
            f"got {t.dtype} of shape {tuple(t.shape)} on {t.device}"
        )


def _layer(params: dict[str, torch.Tensor], layer: int) -> tuple[torch.Tensor, ...]:
    depth = n_layers(params)
    if not 0 <= layer < depth:
        raise ValueError(f"layer must be in [0, {depth - 1}] for a {depth}-layer network, got {layer}")
    W, b, c = params[f"W{layer}"], params[f"b{layer}"], params[f"c{layer}"]
    fan_in, n_hidden = W.shape
    _check(f"b{layer}", b, (n_hidden,), torch.float32, W.device)
    _check(f"c{layer}", c, (fan_in,), torch.float32, W.device)
    return W, b, c


def _sigmoid_grad_(delta: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """δ ← δ ⊙ h ⊙ (1 - h), in place: δh - (δh)h, two passes and no temporary."""
    delta.mul_(h)
    return delta.addcmul_(delta, h, value=-1.0)


def _cross_entropy(pre: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-Σ_i t_i log σ(a_i) + (1 - t_i) log(1 - σ(a_i)) = Σ_i softplus(a_i) - t_i a_i, per row.

    Computed from the pre-activation ``a`` so that a saturated reconstruction gives a large finite
    cost rather than ``inf`` or ``nan``.
    """
    return (F.softplus(pre) - target * pre).sum(dim=1)


def _supervised_plain(Ws, WTs, bs, x, onehot, logits, inp0, h, o, delta, signs, lr, l1):
    """The supervised loop without L2: plain float32 updates of the stored weights."""
    depth = len(Ws) - 1
    for i in range(x.shape[0]):
        # Forward: h_k = σ(h_{k-1} W_k + b_k), o = h_{L-1} W_out + b_out (kept for the metrics).
        below = inp0.copy_(x[i])
        for k in range(depth):
            torch.addmv(bs[k], WTs[k], below, out=h[k]).sigmoid_()
            below = h[k]
        torch.addmv(bs[depth], WTs[depth], below, out=o)
        logits[i].copy_(o)
        # δ_out = softmax(o) - onehot(y)
        torch.softmax(o, 0, out=delta[depth]).sub_(onehot[i])
        # Backward from the top; δ_{k-1} is taken from W_k before W_k moves.
        for k in range(depth, -1, -1):
            inp = h[k - 1] if k > 0 else inp0
            if k > 0:
                _sigmoid_grad_(torch.mv(Ws[k], delta[k], out=delta[k - 1]), h[k - 1])
            if signs is not None:
                torch.sign(Ws[k], out=signs[k])
            # W ← W - lr·h_inᵀδ  [- lr·l1·sign(W_before)]
            Ws[k].addr_(inp, delta[k], alpha=-lr)
            if signs is not None:
                Ws[k].add_(signs[k], alpha=-lr * l1)
            bs[k].add_(delta[k], alpha=-lr)


def _supervised_scaled(Ws, WTs, bs, x, onehot, logits, inp0, h, o, delta, signs, lr, l1,
                       decay, scales):
    """The supervised loop with L2: ``Ws[k]`` holds ``V_k = W_k / scales[k]``.

    The scales are float64 host values that follow a fixed schedule (never read from the
    device); ``scales`` is updated in place and the caller brings the matrices back to W.
    """
    depth = len(Ws) - 1
    for i in range(x.shape[0]):
        s = scales[0]  # the pre-update scale, the same for every matrix here
        below = inp0.copy_(x[i])
        for k in range(depth):
            torch.addmv(bs[k], WTs[k], below, alpha=s, out=h[k]).sigmoid_()
            below = h[k]
        torch.addmv(bs[depth], WTs[depth], below, alpha=s, out=o)
        logits[i].copy_(o)
        torch.softmax(o, 0, out=delta[depth]).sub_(onehot[i])
        s_next = s * decay
        step = -lr / s_next
        for k in range(depth, -1, -1):
            inp = h[k - 1] if k > 0 else inp0
            if k > 0:
                _sigmoid_grad_(torch.mv(Ws[k], delta[k], out=delta[k - 1]).mul_(s), h[k - 1])
            if signs is not None:
                torch.sign(Ws[k], out=signs[k])
            # s·V ← d·s·V - lr·h_inᵀδ  [- lr·l1·sign(V_before)]: the decay is all in the scale
            Ws[k].addr_(inp, delta[k], alpha=step)
            if signs is not None:
                Ws[k].add_(signs[k], alpha=step * l1)
            scales[k] = s_next
            bs[k].add_(delta[k], alpha=-lr)
        if must_rescale(s_next):
            for k, W in enumerate(Ws):
                rescale_(W, scales[k])
                scales[k] = 1.0


class ReferenceKernel:
    """Per-example PyTorch loop implementing :class:`onlinedeep.kernels.Kernel`.

    Buffers are cached per (shape, device), so repeated chunks on the same network allocate only the
    small per-chunk outputs. Each example's input row is first copied into a fixed buffer, so every
    BLAS call sees the same addresses (and alignment) whatever the chunking: without L2 the weights
    after a sequence of updates are bit-identical however the sequence was cut into chunks (with L2,
    to float32 rounding: each chunk ends with one rounding of the exact decay,
    :mod:`onlinedeep.kernels.weight_decay`).
    """

    name = "reference"
    owns_threads = False  # computes with PyTorch, whose threads are process-wide

    def __init__(self, device: str | torch.device | None = None) -> None:
        self.device = None if device is None else torch.device(device)
        self._buffers: dict[tuple, torch.Tensor] = {}

    def _buffer(self, tag: str, shape, device: torch.device) -> torch.Tensor:
        shape = (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)
        key = (tag, shape, device)
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = torch.empty(shape, dtype=torch.float32, device=device)
        return buf

    # ------------------------------------------------------------------ supervised
    @torch.no_grad()
    def supervised(self, params, x, y, *, learning_rate, l1=0.0, l2=0.0):
        """Prequential supervised SGD on a chunk: record, then update, one example at a time.

        Parameters
        ----------
        params : dict[str, torch.Tensor]
            Network (``W{k}``, ``b{k}``, ``W_out``, ``b_out``), updated in place.
        x : (n, n_inputs) float32 tensor
            Inputs in [0, 1], on the parameters' device.
        y : (n,) int64 tensor
            Labels in [0, n_outputs).
        learning_rate, l1, l2 : float
            Step size and the penalties ``l1·Σ|W| + l2·Σ W²`` over the weight matrices (biases are
            not penalised; Erhan et al. 2010, section 5.3 and footnote 5). With ``l2 > 0`` every
            weight decays by ``1 - 2·learning_rate·l2`` per update exactly, through the scaled
            representation of :mod:`onlinedeep.kernels.weight_decay` (the weights are rounded to
            float32 once, at the end of the chunk).

        Returns
        -------
        errors : (n,) uint8 tensor
            1 where ``argmax(o) != y`` before the update of that example (first maximum on ties).
        nll : (n,) float32 tensor
            ``logsumexp(o) - o[y]`` before the update.

        Raises
        ------
        ValueError, TypeError
            On a shape, dtype or device mismatch, or ``learning_rate · l2 >= 0.5``.
        """
        depth = n_layers(params)
        Ws = [params[f"W{k}"] for k in range(depth)] + [params["W_out"]]
        bs = [params[f"b{k}"] for k in range(depth)] + [params["b_out"]]
        device = Ws[0].device
        n = x.shape[0] if isinstance(x, torch.Tensor) and x.ndim == 2 else -1
        _check("x", x, (n, Ws[0].shape[0]), torch.float32, device)
        _check("y", y, (n,), torch.int64, device)
        for k, (W, b) in enumerate(zip(Ws, bs)):
            if k > 0 and W.shape[0] != Ws[k - 1].shape[1]:
                raise ValueError(f"layer {k} expects {W.shape[0]} inputs but layer {k - 1} has "
                                 f"{Ws[k - 1].shape[1]} units")
            _check(f"bias of layer {k}", b, (W.shape[1],), torch.float32, device)
        lr, l1, l2 = float(learning_rate), float(l1), float(l2)
        decay = decay_factor(lr, l2)
        scaled = l2 != 0.0

        n_out = Ws[-1].shape[1]
        WTs = [W.t() for W in Ws]  # views: stay valid as W is updated in place
        inp0 = self._buffer("x", Ws[0].shape[0], device)
        h = [self._buffer(f"h{k}", W.shape[1], device) for k, W in enumerate(Ws[:-1])]
        o = self._buffer("o", n_out, device)
        delta = [self._buffer(f"delta{k}", W.shape[1], device) for k, W in enumerate(Ws)]
        signs = ([self._buffer(f"sign{k}", W.shape, device) for k, W in enumerate(Ws)]
                 if l1 != 0.0 else None)
        logits = torch.empty((n, n_out), dtype=torch.float32, device=device)
        onehot = torch.zeros((n, n_out), dtype=torch.float32, device=device)
        onehot.scatter_(1, y.unsqueeze(1), 1.0)

        if not scaled:
            _supervised_plain(Ws, WTs, bs, x, onehot, logits, inp0, h, o, delta, signs, lr, l1)
        else:
            # W_k = scales[k]·Ws[k] (onlinedeep.kernels.weight_decay). One scale per matrix, all
            # equal after each complete update; kept apart so that an interrupted chunk still
            # leaves every matrix at its own weights.
            scales = [1.0] * len(Ws)
            try:
                _supervised_scaled(Ws, WTs, bs, x, onehot, logits, inp0, h, o, delta, signs, lr,
                                   l1, decay, scales)
            finally:
                for W, s in zip(Ws, scales):
                    rescale_(W, s)

        errors = (logits.argmax(dim=1) != y).to(torch.uint8)
        nll = torch.logsumexp(logits, dim=1) - logits.gather(1, y.unsqueeze(1)).squeeze(1)
        return errors, nll

    # ------------------------------------------------------------------ denoising auto-encoder
    @torch.no_grad()
    def dae(self, params, layer, x, keep, values, *, learning_rate):
        """One denoising auto-encoder update per example on layer ``layer`` (tied weights).

        Erhan et al. 2010, section 5.1.2 (Vincent et al. 2008): ``x̃ = where(keep, x, values)``
        (``values = None``: masking noise, dropped inputs are 0), ``h = σ(x̃ W + b)``,
        ``x̂ = σ(h Wᵀ + c)``, gradient of the cross-entropy ``CE(x || x̂)`` against the clean ``x``.

        Parameters
        ----------
        params : dict[str, torch.Tensor]
            Network; ``W{layer}``, ``b{layer}``, ``c{layer}`` are updated in place.
        layer : int
            Layer being pre-trained.
        x : (n, fan_in) float32 tensor
            Clean input of the layer (the deterministic output of the layers below), in [0, 1].
        keep : (n, fan_in) bool tensor
            False where the input is corrupted (see :mod:`onlinedeep.noise`).
        values : (n, fan_in) float32 tensor or None
            Replacement values where ``keep`` is False (salt-and-pepper), or None for masking.
        learning_rate : float

        Returns
        -------
        (n,) float32 tensor
            Reconstruction cross-entropy of each example, before its update (nats, summed over
            inputs).

        Raises
        ------
        ValueError, TypeError
            On a shape, dtype or device mismatch.
        """
        W, b, c = _layer(params, layer)
        fan_in, n_hidden = W.shape
        device = W.device
        n = x.shape[0] if isinstance(x, torch.Tensor) and x.ndim == 2 else -1
        _check("x", x, (n, fan_in), torch.float32, device)
        _check("keep", keep, (n, fan_in), torch.bool, device)
        if values is not None:
            _check("values", values, (n, fan_in), torch.float32, device)
        lr = float(learning_rate)

        # The corruption does not depend on the weights: apply it to the whole chunk at once.
        corrupted = torch.where(keep, x, values if values is not None else 0.0)
        pre = torch.empty((n, fan_in), dtype=torch.float32, device=device)
        WT = W.t()
        clean = self._buffer("dae_x", fan_in, device)
        xt = self._buffer("dae_xt", fan_in, device)
        a = self._buffer("dae_a", fan_in, device)
        h = self._buffer("dae_h", n_hidden, device)
        dh = self._buffer("dae_dh", n_hidden, device)
        dx = self._buffer("dae_dx", fan_in, device)

        for i in range(n):
            clean.copy_(x[i])
            xt.copy_(corrupted[i])
            torch.addmv(b, WT, xt, out=h).sigmoid_()
            torch.addmv(c, W, h, out=a)
            pre[i].copy_(a)
            torch.sigmoid(a, out=dx).sub_(clean)                # δ_x̂ = x̂ - x
            _sigmoid_grad_(torch.mv(WT, dx, out=dh), h)         # δ_h = (δ_x̂ W) ⊙ h ⊙ (1-h)
            W.addr_(xt, dh, alpha=-lr)                          # encoder part of the tied gradient
            W.addr_(dx, h, alpha=-lr)                           # decoder part
            b.add_(dh, alpha=-lr)
            c.add_(dx, alpha=-lr)

        return _cross_entropy(pre, x)

    # ------------------------------------------------------------------ RBM, CD-k
    @torch.no_grad()
    def rbm(self, params, layer, x, u_hidden, u_visible, *, learning_rate, cd_k=1):
        """One contrastive-divergence (CD-k) update per example on the Bernoulli RBM of layer ``layer``.

        Erhan et al. 2010, section 5.1.1 (Hinton 2002). Statistics as recommended by Hinton 2010,
        "A practical guide to training restricted Boltzmann machines", sections 3.1-3.3: hidden
        states are *sampled* to drive the chain (``h = [u < ph]``), the visible reconstruction is the
        probability ``pv`` (or a sample ``[u' < pv]`` when ``u_visible`` is given), and the
        statistics use hidden *probabilities*:
        ``W += lr·(v0ᵀ ph0 - vᵀ ph)``, ``b += lr·(ph0 - ph)``, ``c += lr·(v0 - v)``.

        Parameters
        ----------
        params : dict[str, torch.Tensor]
            Network; ``W{layer}``, ``b{layer}`` (hidden bias), ``c{layer}`` (visible bias) are
            updated in place.
        layer : int
            Layer being pre-trained.
        x : (n, fan_in) float32 tensor
            Visible probabilities ``v0`` in [0, 1] (the deterministic output of the layers below).
        u_hidden : (n, cd_k, n_hidden) float32 tensor
            Uniforms in [0, 1): ``u_hidden[:, 0]`` samples h from ph0, ``u_hidden[:, t]`` samples h
            from the ph of Gibbs step t-1.
        u_visible : (n, cd_k, fan_in) float32 tensor or None
            Uniforms sampling the reconstruction of Gibbs step t (``u_visible[:, t]``); None keeps
            the probabilities.
        learning_rate : float
        cd_k : int
            Gibbs steps, >= 1.

        Returns
        -------
        (n,) float32 tensor
            Cross-entropy of the first reconstruction ``pv`` against ``v0`` (nats, summed over
            inputs), before the update.

        Raises
        ------
        ValueError, TypeError
            On a shape, dtype or device mismatch or ``cd_k < 1``.
        """
        W, b, c = _layer(params, layer)
        fan_in, n_hidden = W.shape
        device = W.device
        if int(cd_k) != cd_k or cd_k < 1:
            raise ValueError(f"cd_k must be an integer >= 1, got {cd_k!r}")
        cd_k = int(cd_k)
        n = x.shape[0] if isinstance(x, torch.Tensor) and x.ndim == 2 else -1
        _check("x", x, (n, fan_in), torch.float32, device)
        _check("u_hidden", u_hidden, (n, cd_k, n_hidden), torch.float32, device)
        if u_visible is not None:
            _check("u_visible", u_visible, (n, cd_k, fan_in), torch.float32, device)
        lr = float(learning_rate)

        pre = torch.empty((n, fan_in), dtype=torch.float32, device=device)
        WT = W.t()
        v0 = self._buffer("rbm_v0", fan_in, device)
        ph0 = self._buffer("rbm_ph0", n_hidden, device)
        ph = self._buffer("rbm_ph", n_hidden, device)
        hs = self._buffer("rbm_h", n_hidden, device)
        a = self._buffer("rbm_a", fan_in, device)
        pv = self._buffer("rbm_pv", fan_in, device)
        v = self._buffer("rbm_v", fan_in, device) if u_visible is not None else pv

        for i in range(n):
            v0.copy_(x[i])
            torch.addmv(b, WT, v0, out=ph0).sigmoid_()
            torch.lt(u_hidden[i, 0], ph0, out=hs)                # h ~ P(h | v0)
            for t in range(cd_k):
                torch.addmv(c, W, hs, out=a)
                if t == 0:
                    pre[i].copy_(a)
                torch.sigmoid(a, out=pv)                         # P(v | h)
                if u_visible is not None:
                    torch.lt(u_visible[i, t], pv, out=v)
                torch.addmv(b, WT, v, out=ph).sigmoid_()
                if t + 1 < cd_k:
                    torch.lt(u_hidden[i, t + 1], ph, out=hs)
            W.addr_(v0, ph0, alpha=lr)                           # positive phase
            W.addr_(v, ph, alpha=-lr)                            # negative phase
            b.add_(ph0, alpha=lr).add_(ph, alpha=-lr)
            c.add_(v0, alpha=lr).add_(v, alpha=-lr)

        return _cross_entropy(pre, x)


def make_kernel(device: str | torch.device = "cpu") -> ReferenceKernel:
    """The reference kernel for ``device`` (any device PyTorch supports)."""
    return ReferenceKernel(device)
