"""Parameters of the sigmoid MLP / stacked auto-encoder / DBN, and batched inference.

A network is a plain ``dict[str, torch.Tensor]`` (float32, one device), see docs/architecture.md:

=========  ======================  ==========================================================
key        shape                   meaning
=========  ======================  ==========================================================
``W{k}``   ``(fan_in_k, n_hidden)``  hidden layer k; row j holds the outgoing weights of input j
``b{k}``   ``(n_hidden,)``           hidden bias of layer k
``c{k}``   ``(fan_in_k,)``           visible / reconstruction bias of layer k (pre-training only)
``W_out``  ``(n_hidden, n_outputs)`` softmax layer (10 classes for MNIST)
``b_out``  ``(n_outputs,)``
=========  ======================  ==========================================================

Training lives in :mod:`onlinedeep.kernels`; this module only creates, inspects and evaluates.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "init_params",
    "n_layers",
    "layer_sizes",
    "clone_params",
    "as_weights",
    "hidden_forward",
    "predict_proba",
    "predict",
]


def init_params(
    n_inputs: int,
    n_hidden: int,
    n_layers: int,
    seed: int,
    device: str | torch.device = "cpu",
    n_outputs: int = 10,
) -> dict[str, torch.Tensor]:
    """Create a freshly initialised network.

    Weights of every layer (hidden and softmax) are drawn uniform in [-1/√fan_in, 1/√fan_in], fan_in
    being the number of inputs a unit of that layer receives; all biases are zero (Erhan et al. 2010,
    section 5.3). The draws come from a CPU ``torch.Generator`` seeded with ``seed`` in the order
    ``W0, W1, ..., W_out``, so the result is a pure function of the arguments, identical on every
    device.

    Parameters
    ----------
    n_inputs : int
        Inputs of the first layer (784 for MNIST), >= 1.
    n_hidden : int
        Units per hidden layer (all layers have the same width), >= 1.
    n_layers : int
        Number of hidden layers, >= 1.
    seed : int
        Initialisation seed, in [0, 2**63 - 1].
    device : str or torch.device
        Where the tensors live.
    n_outputs : int
        Classes of the softmax layer (10 for MNIST digits).

    Returns
    -------
    dict[str, torch.Tensor]
        ``W{k}`` (fan_in_k, n_hidden), ``b{k}`` (n_hidden,), ``c{k}`` (fan_in_k,) for k = 0..n_layers-1,
        then ``W_out`` (n_hidden, n_outputs), ``b_out`` (n_outputs,); all float32, contiguous.

    Raises
    ------
    ValueError
        If a size is < 1 or the seed is out of range.
    """
    for name, value in (("n_inputs", n_inputs), ("n_hidden", n_hidden), ("n_layers", n_layers),
                        ("n_outputs", n_outputs)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if int(seed) != seed or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2**63 - 1], got {seed!r}")
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed))

    def uniform(fan_in: int, fan_out: int) -> torch.Tensor:
        # Scaled in float64 and rounded once, so |w| <= float32(1/√fan_in) holds exactly.
        bound = 1.0 / math.sqrt(fan_in)
        w = torch.rand((fan_in, fan_out), generator=gen, dtype=torch.float64)
        return w.mul_(2.0 * bound).sub_(bound).to(torch.float32)

    params: dict[str, torch.Tensor] = {}
    fan_in = int(n_inputs)
    for k in range(int(n_layers)):
        params[f"W{k}"] = uniform(fan_in, int(n_hidden))
        params[f"b{k}"] = torch.zeros(int(n_hidden), dtype=torch.float32)
        params[f"c{k}"] = torch.zeros(fan_in, dtype=torch.float32)
        fan_in = int(n_hidden)
    params["W_out"] = uniform(fan_in, int(n_outputs))
    params["b_out"] = torch.zeros(int(n_outputs), dtype=torch.float32)
    return {name: t.to(device) for name, t in params.items()}


def n_layers(params: dict[str, torch.Tensor]) -> int:
    """Number of hidden layers (count of ``W{k}`` keys).

    Raises
    ------
    ValueError
        If the keys ``W0 .. W{L-1}`` are not consecutive.
    """
    count = 0
    while f"W{count}" in params:
        count += 1
    extra = sorted(k for k in params if k.startswith("W") and k[1:].isdigit() and int(k[1:]) >= count)
    if extra:
        raise ValueError(f"hidden layers must be W0..W{{L-1}} without gaps; found {extra} after "
                         f"W{count} is missing")
    return count


def layer_sizes(params: dict[str, torch.Tensor]) -> list[int]:
    """Widths ``[n_inputs, n_hidden_0, ..., n_hidden_{L-1}, n_outputs]`` of the network."""
    sizes = [int(params["W0"].shape[0])]
    for k in range(n_layers(params)):
        sizes.append(int(params[f"W{k}"].shape[1]))
    sizes.append(int(params["W_out"].shape[1]))
    return sizes


def as_weights(array, device: str | torch.device = "cpu") -> torch.Tensor:
    """A copy of ``array`` (any numeric array-like, e.g. a snapshot's ``(784, 2000) float32``
    weights) as a contiguous tensor whose data torch allocated, on ``device``.

    Why a copy: torch's CPU allocator aligns data to 64 bytes; numpy places a large buffer 16 or
    48 bytes past a 64-byte boundary, and the numba kernel's 512-bit loads of such weights split
    across cache lines: 0.82-0.88× the speed of the same weights aligned, with the same bits
    (``benchmarks/bench_alignment.py``). Every trainable tensor made from a file or an array
    (a snapshot, a drawn initialisation) goes through here.
    """
    return torch.as_tensor(array).contiguous().clone().to(device)


def clone_params(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Independent deep copy (same keys, order, devices and dtypes)."""
    return {name: t.detach().clone() for name, t in params.items()}


def _as_input(params: dict[str, torch.Tensor], x) -> torch.Tensor:
    w0 = params["W0"]
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        raise TypeError(
            f"x must be float inputs in [0, 1] of shape (n, {w0.shape[0]}), got dtype {x.dtype}; "
            "convert uint8 images with infinite_mnist.to_float"
        )
    if x.ndim != 2 or x.shape[1] != w0.shape[0]:
        raise ValueError(f"x must have shape (n, {w0.shape[0]}), got {tuple(x.shape)}")
    return x.to(device=w0.device, dtype=torch.float32)


@torch.no_grad()
def hidden_forward(params: dict[str, torch.Tensor], x, upto: int) -> torch.Tensor:
    """Deterministic output of hidden layers ``0 .. upto-1``: the input of layer ``upto``.

    Greedy layer-wise pre-training trains layer ``upto`` on this: the layers below stay fixed and
    feed their mean-field sigmoid outputs upward, not samples. This is the choice of Bengio et al.
    (2007, "Greedy layer-wise training of deep networks") and of the Deep Learning Tutorials' DBN and
    SdA (Theano); section 5.1.1 of Erhan et al. (2010) describes a DBN whose layers model samples of
    the posteriors below, and the paper does not say which its experiments used.

    Parameters
    ----------
    params : dict[str, torch.Tensor]
        Network (see module docstring).
    x : (n, n_inputs) float32 tensor or array_like
        Inputs in [0, 1]; moved to the parameters' device.
    upto : int
        Number of layers to apply, in [0, n_layers]. ``upto = 0`` returns ``x`` (as float32 on the
        parameters' device, possibly the same tensor).

    Returns
    -------
    (n, fan_in_upto) float32 tensor
        ``h_{upto-1}`` with ``h_k = σ(h_{k-1} W_k + b_k)``.

    Raises
    ------
    ValueError, TypeError
        If ``upto`` is out of range or ``x`` has the wrong shape or dtype.
    """
    depth = n_layers(params)
    if not 0 <= upto <= depth:
        raise ValueError(f"upto must be in [0, {depth}], got {upto}")
    h = _as_input(params, x)
    for k in range(upto):
        h = torch.addmm(params[f"b{k}"], h, params[f"W{k}"]).sigmoid_()
    return h


@torch.no_grad()
def _logits(params: dict[str, torch.Tensor], x, batch_size: int) -> torch.Tensor:
    x = _as_input(params, x)
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    depth = n_layers(params)
    out = torch.empty((x.shape[0], params["W_out"].shape[1]), dtype=torch.float32, device=x.device)
    for start in range(0, x.shape[0], int(batch_size)):
        h = x[start:start + batch_size]
        for k in range(depth):
            h = torch.addmm(params[f"b{k}"], h, params[f"W{k}"]).sigmoid_()
        torch.addmm(params["b_out"], h, params["W_out"], out=out[start:start + batch_size])
    return out


def predict_proba(params: dict[str, torch.Tensor], x, batch_size: int = 4096) -> torch.Tensor:
    """Class probabilities of the full network, evaluated in batches.

    Parameters
    ----------
    params : dict[str, torch.Tensor]
        Network (see module docstring).
    x : (n, n_inputs) float32 tensor or array_like
        Inputs in [0, 1].
    batch_size : int
        Examples per matrix product (bounds memory; the result does not depend on it beyond float
        rounding).

    Returns
    -------
    (n, n_outputs) float32 tensor on the parameters' device
        ``softmax(h_{L-1} W_out + b_out)``, ``h`` as in :func:`hidden_forward`.

    Raises
    ------
    ValueError, TypeError
        If ``x`` has the wrong shape or dtype, or ``batch_size < 1``.
    """
    return torch.softmax(_logits(params, x, batch_size), dim=1)


def predict(params: dict[str, torch.Tensor], x, batch_size: int = 4096) -> torch.Tensor:
    """Predicted classes: argmax of the logits (first maximum on ties), ``(n,)`` int64 tensor.

    Same rule as the ``error`` the kernels record. See :func:`predict_proba` for the arguments and
    errors.
    """
    return _logits(params, x, batch_size).argmax(dim=1)
