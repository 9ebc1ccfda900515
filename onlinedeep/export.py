"""A trained network as a plain PyTorch module, for use outside onlinedeep.

::

    import onlinedeep
    net = onlinedeep.load_module("runs/dae-1x2000-s0/snapshots/snapshot-000010000000.pinned.h5")
    probabilities = net(x)          # x: (n, 784) float32 in [0, 1]

The module is ``nn.Sequential(Linear, Sigmoid, ..., Linear, Softmax)``: hidden layer k is
``Linear(fan_in_k, n_hidden)`` with ``weight = W{k}.T`` and ``bias = b{k}``, then ``Sigmoid``; the
output layer is ``Linear(n_hidden, n_classes)`` from ``W_out``, ``b_out``, then ``Softmax(dim=-1)``,
so its outputs are :func:`onlinedeep.model.predict_proba`'s. ``net[:-1]`` gives the logits (for
``nn.CrossEntropyLoss`` when fine-tuning in PyTorch). The visible biases ``c{k}`` of pre-training
are not part of the classifier and are left out.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from onlinedeep import model

__all__ = ["to_module", "load_module"]


def to_module(params: dict[str, torch.Tensor]) -> nn.Sequential:
    """Build the ``nn.Sequential`` equivalent of a network.

    Parameters
    ----------
    params : dict[str, torch.Tensor]
        ``onlinedeep.model`` layout (float32); the module gets copies, on the same device.

    Returns
    -------
    nn.Sequential
        ``Linear, Sigmoid`` per hidden layer, then ``Linear, Softmax(dim=-1)``; float32, in eval
        mode, parameters with ``requires_grad=True``.

    Raises
    ------
    ValueError, KeyError
        If the parameters are not a network of ``onlinedeep.model``'s layout.
    """
    sizes = model.layer_sizes(params)
    layers: list[nn.Module] = []
    names = [f"{k}" for k in range(model.n_layers(params))] + ["_out"]
    for (fan_in, fan_out), name in zip(zip(sizes[:-1], sizes[1:]), names):
        W, b = params[f"W{name}"], params[f"b{name}"]
        linear = nn.Linear(fan_in, fan_out, device=W.device, dtype=torch.float32)
        with torch.no_grad():
            linear.weight.copy_(W.t())
            linear.bias.copy_(b)
        layers.append(linear)
        layers.append(nn.Sigmoid() if name != "_out" else nn.Softmax(dim=-1))
    return nn.Sequential(*layers).eval()


def load_module(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Sequential:
    """Load a snapshot's network as an ``nn.Sequential`` (see the module docstring).

    Parameters
    ----------
    path : path-like
        A snapshot file (``.h5``) or a run folder (its latest snapshot).
    device : str or torch.device

    Returns
    -------
    nn.Sequential

    Raises
    ------
    SnapshotError
        If the file is missing, damaged or not a snapshot (the message names it).
    """
    from onlinedeep import snapshot as snapshots
    from onlinedeep.evaluate import resolve_snapshot

    snap_path, _ = resolve_snapshot(path)
    snap = snapshots.load(snap_path)
    params = {k: torch.from_numpy(v).to(device) for k, v in snap.params.items()}
    return to_module(params)
