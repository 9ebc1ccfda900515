"""Initial parameters of a finite run: uniform (paper 5.3) or drawn from marginal histograms
(paper 7.1, Table 1).

Table 1 asks whether pre-training helps only through the marginal distribution of the weights: "we
performed unsupervised pre-training, and computed marginal histograms for each layer's pre-trained
weights and biases (one histogram per each layer's weights and biases). We then resampled new
'initial' random weights and biases according to these histograms (independently for each
parameter), and performed fine-tuning from there." :func:`histogram_params` does that for the
hidden weights ``W{k}`` and hidden biases ``b{k}`` of each pre-trained layer; the softmax layer and
the layers that were not pre-trained keep the uniform initialisation of the same seed (they were
not pre-trained either in the network the histograms come from).
"""
from __future__ import annotations

import numpy as np
import torch

from onlinedeep import model

__all__ = ["uniform_params", "histogram_params", "sample_histogram"]

_TAG = 0x48495354  # "HIST"


def uniform_params(n_inputs: int, n_hidden: int, layers: int, seed: int, *, n_classes: int,
                   top_units: int | None = None, device="cpu") -> dict[str, torch.Tensor]:
    """Weights uniform in ±1/√fan_in, zero biases (paper 5.3; :func:`onlinedeep.model.init_params`).

    With ``top_units`` the top hidden layer has that width (Figure 10): ``W{L-1}``, its biases and
    ``W_out`` are drawn anew, by the same rule, from a generator seeded with ``(seed, "TOP")``; the
    layers below are those of ``init_params``.

    Returns
    -------
    dict of str to torch.Tensor
        The ``onlinedeep.model`` layout, float32, on ``device``.
    """
    params = model.init_params(n_inputs, n_hidden, layers, seed, "cpu", n_outputs=n_classes)
    if top_units is not None and top_units != n_hidden:
        top = layers - 1
        fan_in = n_inputs if top == 0 else n_hidden
        g = torch.Generator().manual_seed((int(seed) * 0x9E3779B1 + 0x544F50) % 2**63)

        def uniform(rows: int, cols: int) -> torch.Tensor:
            bound = 1.0 / np.sqrt(rows)
            w = (torch.rand((rows, cols), generator=g, dtype=torch.float64) * 2 - 1) * bound
            return w.to(torch.float32).contiguous()

        params[f"W{top}"] = uniform(fan_in, top_units)
        params[f"b{top}"] = torch.zeros(top_units, dtype=torch.float32)
        params["W_out"] = uniform(top_units, n_classes)
    return {k: v.to(device) for k, v in params.items()}


def sample_histogram(values: np.ndarray, n: int, rng: np.random.Generator, bins: int = 100
                     ) -> np.ndarray:
    """``n`` independent draws from the histogram of ``values``.

    A bin is chosen with probability proportional to its count, then a value uniform inside it
    (``numpy.histogram`` bins: ``bins`` equal widths over ``[min, max]``). Constant ``values`` (e.g.
    biases a layer never moved) give that constant.

    Returns
    -------
    (n,) float64 ndarray
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        return np.full(n, lo)
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    idx = rng.choice(bins, size=n, p=counts / counts.sum())
    return edges[idx] + rng.random(n) * (edges[idx + 1] - edges[idx])


def histogram_params(pretrained: dict, base: dict[str, torch.Tensor], layers: int, seed: int, *,
                     bins: int = 100) -> dict[str, torch.Tensor]:
    """New parameters drawn from the marginal histograms of pre-trained ones (Table 1).

    Parameters
    ----------
    pretrained : dict of str to array or tensor
        The network after pre-training (``onlinedeep.model`` layout).
    base : dict of str to torch.Tensor
        The uniform initialisation of this run (:func:`uniform_params`): the softmax layer, the
        visible biases and the layers above ``layers`` are taken from it.
    layers : int
        The bottom layers that were pre-trained.
    seed : int
        Seeds the draws: layer k's weights and biases each get their own generator
        ``SeedSequence([seed, tag, k, 0 or 1])``.
    bins : int

    Returns
    -------
    dict of str to torch.Tensor
        float32, shapes and device of ``base``; ``W{k}``, ``b{k}`` (k < ``layers``) drawn
        independently for each parameter from the histogram of the same tensor of ``pretrained``.

    Raises
    ------
    ValueError
        If a pre-trained tensor's shape differs from ``base``'s.
    """
    out = {k: v.clone() for k, v in base.items()}
    for k in range(layers):
        for j, name in enumerate((f"W{k}", f"b{k}")):
            src = pretrained[name]
            src = src.detach().cpu().numpy() if hasattr(src, "detach") else np.asarray(src)
            if tuple(src.shape) != tuple(base[name].shape):
                raise ValueError(f"{name}: the pre-trained tensor has shape {tuple(src.shape)}, "
                                 f"this network's {tuple(base[name].shape)}")
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), _TAG, k, j])))
            drawn = sample_histogram(src, src.size, rng, bins).reshape(src.shape)
            out[name] = model.as_weights(drawn.astype(np.float32), base[name].device)
    return out
