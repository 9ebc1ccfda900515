"""CUDA kernel: batch-size-1 updates queued without a host synchronisation, replayed as CUDA graphs.

At batch size 1 a GPU update is ~20 tiny kernel launches; launched from Python one by one they cost
more than the arithmetic. This module

* writes one update as a *step function* of in-place tensor operations on preallocated buffers, with
  no ``.item()`` and no host-side branching on device values (monitoring values — the logits, the
  reconstruction pre-activations — are stored on the device and reduced after the chunk);
* on CUDA, captures ``steps_per_graph`` consecutive steps in one ``torch.cuda.CUDAGraph`` (static
  input buffers; the parameters are updated in place at fixed addresses) and replays it, copying
  each block of the chunk into the static buffers first (device-to-device, asynchronous);
* batches R independent replicas with ``torch.bmm`` / ``baddbmm``: every tensor carries a leading
  replica axis, so R models advance one example each per step (each model still one example per
  update). On the GPU this turns R tiny launches into one; on the CPU it is slower than the numba
  replicas (see shared/notes/batch1-training-on-this-cpu.md) and is used only for testing.

The same step functions run eagerly on any device (``use_graphs=False``, the default off CUDA);
the tests run them on the CPU against :mod:`onlinedeep.kernels.reference`, and capture graphs only
where CUDA is available. Maths: docs/architecture.md (Erhan et al. 2010, sections 5.1.1, 5.1.2, 5.3).
"""

from __future__ import annotations

import torch

from onlinedeep.kernels.weight_decay import decay_factor, must_rescale, rescale_

__all__ = ["CudaGraphKernel", "make_kernel"]


def _depth(params: dict) -> int:
    k = 0
    while f"W{k}" in params:
        k += 1
    if k == 0:
        raise KeyError(f"params has no hidden layer W0 (keys: {', '.join(params)})")
    return k


def _sigmoid_grad_(delta: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """δ ← δ ⊙ h ⊙ (1 - h), in place."""
    delta.mul_(h)
    return delta.addcmul_(delta, h, value=-1.0)


# --------------------------------------------------------------------------- step functions
# Every tensor has a leading replica axis R; vectors are (R, 1, n) rows so that bmm applies.

class _SupervisedStep:
    """One prequential SGD update of R replicas without L2: forward, logits kept, backward, update.

    (With L2: :class:`_ScaledSupervisedStep`.)
    """

    def __init__(self, P: dict, lr: float, l1: float):
        self.depth = _depth(P)
        self.Ws = [P[f"W{k}"] for k in range(self.depth)] + [P["W_out"]]
        self.bs = [P[f"b{k}"].unsqueeze(1) for k in range(self.depth)] + [P["b_out"].unsqueeze(1)]
        R = self.Ws[0].shape[0]
        dev = self.Ws[0].device
        self.h = [torch.empty((R, 1, W.shape[2]), device=dev) for W in self.Ws[:-1]]
        self.delta = [torch.empty((R, 1, W.shape[2]), device=dev) for W in self.Ws]
        self.signs = [torch.empty_like(W) for W in self.Ws] if l1 != 0.0 else None
        self.lr, self.l1 = lr, l1

    def __call__(self, x: torch.Tensor, onehot: torch.Tensor, logits: torch.Tensor) -> None:
        """x (R, 1, F), onehot (R, 1, n_out), logits (R, 1, n_out) output buffer."""
        below = x
        for k in range(self.depth):
            torch.baddbmm(self.bs[k], below, self.Ws[k], out=self.h[k]).sigmoid_()
            below = self.h[k]
        torch.baddbmm(self.bs[-1], below, self.Ws[-1], out=logits)
        top = self.depth
        torch.softmax(logits, dim=2, out=self.delta[top]).sub_(onehot)
        for k in range(top, -1, -1):
            inp = self.h[k - 1] if k > 0 else x
            if k > 0:   # δ_{k-1} from W_k before W_k moves
                _sigmoid_grad_(torch.bmm(self.delta[k], self.Ws[k].transpose(1, 2),
                                         out=self.delta[k - 1]), self.h[k - 1])
            if self.signs is not None:
                torch.sign(self.Ws[k], out=self.signs[k])
            self.Ws[k].baddbmm_(inp.transpose(1, 2), self.delta[k], alpha=-self.lr)
            if self.signs is not None:
                self.Ws[k].add_(self.signs[k], alpha=-self.lr * self.l1)
            self.bs[k].add_(self.delta[k], alpha=-self.lr)


class _ScaledSupervisedStep:
    """:class:`_SupervisedStep` with L2: each ``W`` holds ``V = W/s`` (kernels.weight_decay).

    The scale is a float64 host schedule, fed per step as float32 coefficients (an input tensor,
    so a captured graph reads each step's values at replay): ``s`` before the update, the step
    ``-lr/s'`` and the L1 step ``-lr·l1/s'`` with ``s' = s·d`` after it.
    """

    def __init__(self, P: dict, lr: float, l1: float):
        self.depth = _depth(P)
        self.Ws = [P[f"W{k}"] for k in range(self.depth)] + [P["W_out"]]
        self.bs = [P[f"b{k}"].unsqueeze(1) for k in range(self.depth)] + [P["b_out"].unsqueeze(1)]
        R = self.Ws[0].shape[0]
        dev = self.Ws[0].device
        self.h = [torch.empty((R, 1, W.shape[2]), device=dev) for W in self.Ws[:-1]]
        self.delta = [torch.empty((R, 1, W.shape[2]), device=dev) for W in self.Ws]
        self.step = [torch.empty((R, 1, W.shape[2]), device=dev) for W in self.Ws]
        self.signs = [torch.empty_like(W) for W in self.Ws] if l1 != 0.0 else None
        self.lr = lr

    def __call__(self, x: torch.Tensor, onehot: torch.Tensor, coef: torch.Tensor,
                 logits: torch.Tensor) -> None:
        """x (R, 1, F), onehot (R, 1, n_out), coef (1, 1, 3) [s, -lr/s', -lr·l1/s'], logits out."""
        scale, step, step_l1 = coef[:, :, 0:1], coef[:, :, 1:2], coef[:, :, 2:3]
        below = x
        for k in range(self.depth):
            torch.bmm(below, self.Ws[k], out=self.h[k]).mul_(scale).add_(self.bs[k]).sigmoid_()
            below = self.h[k]
        torch.bmm(below, self.Ws[-1], out=logits).mul_(scale).add_(self.bs[-1])
        top = self.depth
        torch.softmax(logits, dim=2, out=self.delta[top]).sub_(onehot)
        for k in range(top, -1, -1):
            inp = self.h[k - 1] if k > 0 else x
            if k > 0:   # δ_{k-1} from W_k = s·V_k before V_k moves
                _sigmoid_grad_(torch.bmm(self.delta[k], self.Ws[k].transpose(1, 2),
                                         out=self.delta[k - 1]).mul_(scale), self.h[k - 1])
            if self.signs is not None:
                torch.sign(self.Ws[k], out=self.signs[k])
            # V ← V - (lr/s')·(h_inᵀδ [+ l1·sign(V_before)]); the decay is all in the scale
            torch.mul(self.delta[k], step, out=self.step[k])
            self.Ws[k].baddbmm_(inp.transpose(1, 2), self.step[k])
            if self.signs is not None:
                self.Ws[k].addcmul_(self.signs[k], step_l1)
            self.bs[k].add_(self.delta[k], alpha=-self.lr)


def _scale_schedule(n: int, decay: float, lr: float, l1: float):
    """Per-step coefficients of :class:`_ScaledSupervisedStep` for a chunk of ``n`` updates.

    Returns ``coef (1, n, 3) float32`` (CPU) and the segments ``[(start, stop, scale)]``, after
    each of which the weights are brought back to ``W`` (``rescale_(V, scale)``): where the float64
    scale leaves its range, and at the end of the chunk.
    """
    rows, segments = [], []
    s, start = 1.0, 0
    for i in range(n):
        s_next = s * decay
        rows.append((s, -lr / s_next, -lr * l1 / s_next))
        s = s_next
        if must_rescale(s) or i == n - 1:
            segments.append((start, i + 1, s))
            s, start = 1.0, i + 1
    return torch.tensor(rows, dtype=torch.float64).to(torch.float32).reshape(1, n, 3), segments


class _DaeStep:
    """One tied-weight denoising auto-encoder update of R replicas (paper 5.1.2)."""

    def __init__(self, P: dict, layer: int, lr: float):
        self.W, self.b, self.c = (P[f"{p}{layer}"] for p in ("W", "b", "c"))
        self.b, self.c = self.b.unsqueeze(1), self.c.unsqueeze(1)
        R, F, H = self.W.shape
        dev = self.W.device
        self.h = torch.empty((R, 1, H), device=dev)
        self.dh = torch.empty((R, 1, H), device=dev)
        self.dx = torch.empty((R, 1, F), device=dev)
        self.lr = lr

    def __call__(self, x, xt, pre) -> None:
        """x, xt (clean, corrupted) (R, 1, F); pre (R, 1, F) output: decoder pre-activation."""
        WT = self.W.transpose(1, 2)
        torch.baddbmm(self.b, xt, self.W, out=self.h).sigmoid_()
        torch.baddbmm(self.c, self.h, WT, out=pre)
        torch.sigmoid(pre, out=self.dx).sub_(x)                           # δ_x̂ = x̂ - x
        _sigmoid_grad_(torch.bmm(self.dx, self.W, out=self.dh), self.h)   # δ_h
        self.W.baddbmm_(xt.transpose(1, 2), self.dh, alpha=-self.lr)
        self.W.baddbmm_(self.dx.transpose(1, 2), self.h, alpha=-self.lr)
        self.b.add_(self.dh, alpha=-self.lr)
        self.c.add_(self.dx, alpha=-self.lr)


class _RbmStep:
    """One CD-k update of R replicas (paper 5.1.1; statistics as in Hinton 2010, section 3)."""

    def __init__(self, P: dict, layer: int, lr: float, cd_k: int, sample_visible: bool):
        self.W, self.b, self.c = (P[f"{p}{layer}"] for p in ("W", "b", "c"))
        self.b, self.c = self.b.unsqueeze(1), self.c.unsqueeze(1)
        R, F, H = self.W.shape
        dev = self.W.device
        self.ph0 = torch.empty((R, 1, H), device=dev)
        self.ph = torch.empty((R, 1, H), device=dev)
        self.hs = torch.empty((R, 1, H), device=dev)
        self.a = torch.empty((R, 1, F), device=dev)
        self.pv = torch.empty((R, 1, F), device=dev)
        self.v = torch.empty((R, 1, F), device=dev) if sample_visible else self.pv
        self.lr, self.cd_k, self.sample_visible = lr, cd_k, sample_visible

    def __call__(self, v0, u_hidden, u_visible, pre) -> None:
        """v0 (R, 1, F); u_hidden (R, cd_k, H); u_visible (R, cd_k, F) or None; pre (R, 1, F) out."""
        WT = self.W.transpose(1, 2)
        torch.baddbmm(self.b, v0, self.W, out=self.ph0).sigmoid_()
        torch.lt(u_hidden[:, 0:1], self.ph0, out=self.hs)
        for t in range(self.cd_k):
            a = pre if t == 0 else self.a
            torch.baddbmm(self.c, self.hs, WT, out=a)
            torch.sigmoid(a, out=self.pv)
            if self.sample_visible:
                torch.lt(u_visible[:, t:t + 1], self.pv, out=self.v)
            torch.baddbmm(self.b, self.v, self.W, out=self.ph).sigmoid_()
            if t + 1 < self.cd_k:
                torch.lt(u_hidden[:, t + 1:t + 2], self.ph, out=self.hs)
        self.W.baddbmm_(v0.transpose(1, 2), self.ph0, alpha=self.lr)
        self.W.baddbmm_(self.v.transpose(1, 2), self.ph, alpha=-self.lr)
        self.b.add_(self.ph0, alpha=self.lr).add_(self.ph, alpha=-self.lr)
        self.c.add_(v0, alpha=self.lr).add_(self.v, alpha=-self.lr)


def _cross_entropy(pre: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Σ_i softplus(a_i) - t_i a_i over the last axis (= -Σ t log σ(a) + (1-t) log(1-σ(a)))."""
    return (torch.nn.functional.softplus(pre) - target * pre).sum(dim=-1)


# --------------------------------------------------------------------------- the kernel

class CudaGraphKernel:
    """Batch-size-1 kernel for CUDA: step functions replayed as CUDA graphs, replicas batched.

    Implements the ``Kernel`` protocol (docs/architecture.md) for one model, and ``*_batched``
    variants for R replicas (parameters with a leading replica axis).

    Parameters
    ----------
    device : str or torch.device
        Where the parameters live.
    use_graphs : bool, optional
        Capture and replay CUDA graphs (default: True on CUDA, False elsewhere — off CUDA the step
        functions run eagerly, which is how the tests exercise them on CPU-only machines).
    steps_per_graph : int
        Consecutive updates captured in one graph (default 64); the rest of a chunk runs eagerly.

    Notes
    -----
    No GPU was available while this was written: the graph path is covered only by tests marked
    ``skipif(not torch.cuda.is_available())``. Graphs are cached per (method, parameter storage
    addresses, shapes, hyper-parameters); parameters must be updated in place, never replaced.
    """

    name = "cuda-graph"
    owns_threads = False  # computes with PyTorch, whose threads are process-wide

    def __init__(self, device="cuda", *, use_graphs: bool | None = None, steps_per_graph: int = 64):
        self.device = torch.device(device)
        if use_graphs is None:
            use_graphs = self.device.type == "cuda"
        if use_graphs and self.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a cuda device, found {self.device}")
        if int(steps_per_graph) != steps_per_graph or steps_per_graph < 1:
            raise ValueError(f"steps_per_graph must be an integer >= 1, found {steps_per_graph!r}")
        self.use_graphs = bool(use_graphs)
        self.steps_per_graph = int(steps_per_graph)
        self._graphs: dict[tuple, tuple] = {}

    # ---- generic driver: run `step(*inputs_at_i, *outputs_at_i)` for i in range(n)
    def _drive(self, key, make_step, inputs: list[torch.Tensor], outputs: list[torch.Tensor]):
        """inputs/outputs: tensors with the step index on axis 1 (R, n, ...); all on the device."""
        n = inputs[0].shape[1]
        step = make_step()
        done = 0
        if self.use_graphs and n >= self.steps_per_graph:
            graph, static_in, static_out = self._graph(key, make_step, inputs, outputs)
            S = self.steps_per_graph
            while done + S <= n:
                for s, t in zip(static_in, inputs):
                    s.copy_(t[:, done:done + S], non_blocking=True)
                graph.replay()
                for s, t in zip(static_out, outputs):
                    t[:, done:done + S].copy_(s, non_blocking=True)
                done += S
        for i in range(done, n):
            step(*(t[:, i:i + 1] for t in inputs), *(t[:, i:i + 1] for t in outputs))

    def _graph(self, key, make_step, inputs, outputs):
        S = self.steps_per_graph
        full_key = (key, S, tuple((tuple(t.shape[:1] + t.shape[2:]), t.dtype) for t in inputs))
        cached = self._graphs.get(full_key)
        if cached is not None:
            return cached
        static_in = [torch.zeros((t.shape[0], S, *t.shape[2:]), dtype=t.dtype, device=t.device)
                     for t in inputs]
        static_out = [torch.zeros((t.shape[0], S, *t.shape[2:]), dtype=t.dtype, device=t.device)
                      for t in outputs]
        step = make_step()
        # Warm-up (cuBLAS handles, allocator) on a side stream, on throw-away copies of the
        # parameters: capture itself executes nothing, so the real parameters are untouched.
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            scratch = make_step(scratch=True)
            scratch(*(t[:, 0:1] for t in static_in), *(t[:, 0:1] for t in static_out))
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for i in range(S):
                step(*(t[:, i:i + 1] for t in static_in), *(t[:, i:i + 1] for t in static_out))
        cached = self._graphs[full_key] = (graph, static_in, static_out, step)
        return cached[:3]

    @staticmethod
    def _key(name, P, *hyper):
        return (name, tuple((k, v.data_ptr(), tuple(v.shape)) for k, v in P.items()), hyper)

    @staticmethod
    def _scratch_or(P: dict, scratch: bool) -> dict:
        return {k: v.clone() for k, v in P.items()} if scratch else P

    def _check_device(self, P: dict) -> None:
        for k, v in P.items():
            if v.device != self.device or v.dtype != torch.float32 or not v.is_contiguous():
                raise ValueError(f"params[{k!r}] must be a contiguous float32 tensor on "
                                 f"{self.device}; found {v.dtype} on {v.device}, contiguous="
                                 f"{v.is_contiguous()}")

    # ---- batched (R replicas) methods
    @torch.no_grad()
    def supervised_batched(self, P, x, y, *, learning_rate, l1=0.0, l2=0.0):
        """R replicas, one chunk each: ``x (R, n, fan_in)``, ``y (R, n) int64`` → errors, nll ``(R, n)``.

        ``P`` is a dict of ``(R, ...)`` tensors (one replica per row), updated in place.
        With ``l2 > 0`` every weight decays by ``1 - 2·learning_rate·l2`` per update exactly (scaled
        representation, :mod:`onlinedeep.kernels.weight_decay`), rounded to float32 once at the end
        of the chunk. Raises ValueError for ``learning_rate · l2 >= 0.5``.
        """
        self._check_device(P)
        lr, l1, l2 = float(learning_rate), float(l1), float(l2)
        decay = decay_factor(lr, l2)
        R, n = x.shape[:2]
        n_out = P["W_out"].shape[2]
        if y.shape != (R, n):
            raise ValueError(f"y must have shape {(R, n)}, found {tuple(y.shape)}")
        onehot = torch.zeros((R, n, n_out), dtype=torch.float32, device=self.device)
        onehot.scatter_(2, y.unsqueeze(2), 1.0)
        logits = torch.empty((R, n, n_out), dtype=torch.float32, device=self.device)
        x = x.contiguous()
        if l2 == 0.0:
            self._drive(self._key("sup", P, lr, l1, l2),
                        lambda scratch=False: _SupervisedStep(self._scratch_or(P, scratch), lr, l1),
                        [x, onehot], [logits])
        else:
            # Exact decay: W = s·V within the chunk (onlinedeep.kernels.weight_decay).
            coef, segments = _scale_schedule(n, decay, lr, l1)
            coef = coef.to(self.device)
            weights = [v for k, v in P.items() if k.startswith("W")]
            for a, b, scale in segments:
                self._drive(self._key("sup-scaled", P, lr, l1, l2),
                            lambda scratch=False: _ScaledSupervisedStep(
                                self._scratch_or(P, scratch), lr, l1),
                            [x[:, a:b], onehot[:, a:b], coef[:, a:b]], [logits[:, a:b]])
                for W in weights:
                    rescale_(W, scale)
        errors = (logits.argmax(dim=2) != y).to(torch.uint8)
        nll = torch.logsumexp(logits, dim=2) - logits.gather(2, y.unsqueeze(2)).squeeze(2)
        return errors, nll

    @torch.no_grad()
    def dae_batched(self, P, layer, x, keep, values, *, learning_rate):
        """R replicas: ``x, keep, values (R, n, fan_in)`` (values may be None) → cost ``(R, n)``."""
        self._check_device(P)
        lr = float(learning_rate)
        xt = torch.where(keep, x, values if values is not None else torch.zeros((), device=x.device))
        pre = torch.empty_like(x)
        self._drive(self._key("dae", P, layer, lr),
                    lambda scratch=False: _DaeStep(self._scratch_or(P, scratch), layer, lr),
                    [x.contiguous(), xt.contiguous()], [pre])
        return _cross_entropy(pre, x)

    @torch.no_grad()
    def rbm_batched(self, P, layer, x, u_hidden, u_visible, *, learning_rate, cd_k=1):
        """R replicas: ``x (R, n, F)``, ``u_hidden (R, n, cd_k, H)``, ``u_visible (R, n, cd_k, F)``
        or None → cost ``(R, n)``."""
        self._check_device(P)
        if int(cd_k) != cd_k or cd_k < 1:
            raise ValueError(f"cd_k must be an integer >= 1, found {cd_k!r}")
        lr, cd_k = float(learning_rate), int(cd_k)
        sample = u_visible is not None
        pre = torch.empty_like(x)
        inputs = [x.contiguous(), u_hidden.contiguous()]
        if sample:
            inputs.append(u_visible.contiguous())

        def make(scratch=False):
            step = _RbmStep(self._scratch_or(P, scratch), layer, lr, cd_k, sample)
            if sample:
                return lambda v0, uh, uv, out: step(v0, uh.squeeze(1), uv.squeeze(1), out)
            return lambda v0, uh, out: step(v0, uh.squeeze(1), None, out)

        self._drive(self._key("rbm", P, layer, lr, cd_k, sample), make, inputs, [pre])
        return _cross_entropy(pre, x)

    # ---- the Kernel protocol (one model: R = 1 views, updated in place)
    def supervised(self, params, x, y, *, learning_rate, l1=0.0, l2=0.0):
        """Kernel protocol; see :meth:`supervised_batched` (here R = 1, ``x (n, fan_in)``)."""
        P = {k: v.unsqueeze(0) for k, v in params.items()}
        errors, nll = self.supervised_batched(P, x.unsqueeze(0), y.unsqueeze(0),
                                              learning_rate=learning_rate, l1=l1, l2=l2)
        return errors[0], nll[0]

    def dae(self, params, layer, x, keep, values, *, learning_rate):
        """Kernel protocol; see :meth:`dae_batched`."""
        P = {k: v.unsqueeze(0) for k, v in params.items()}
        return self.dae_batched(P, layer, x.unsqueeze(0), keep.unsqueeze(0),
                                None if values is None else values.unsqueeze(0),
                                learning_rate=learning_rate)[0]

    def rbm(self, params, layer, x, u_hidden, u_visible, *, learning_rate, cd_k=1):
        """Kernel protocol; see :meth:`rbm_batched`."""
        P = {k: v.unsqueeze(0) for k, v in params.items()}
        return self.rbm_batched(P, layer, x.unsqueeze(0), u_hidden.unsqueeze(0),
                                None if u_visible is None else u_visible.unsqueeze(0),
                                learning_rate=learning_rate, cd_k=cd_k)[0]


def make_kernel(device="cuda") -> CudaGraphKernel:
    """Entry point of :func:`onlinedeep.kernels.get`."""
    dev = torch.device(device)
    if dev.type != "cuda":
        raise ValueError(f"the cuda-graph kernel runs on cuda only, not on {dev}")
    return CudaGraphKernel(dev)
