"""The updates of an :class:`~onlinedeep.learner.OnlineMLP`: its rows cut into the trainer's chunks
and handed to the kernel, one example per update (Erhan et al. 2010, 5.1 and 5.3).

The same positions, draws (:func:`onlinedeep.training.draws.layer_draws`), chunk boundaries and
one-torch-thread forward as the training loop, so one call per phase reproduces a run bit for bit.
"""
from __future__ import annotations

import time
from typing import Iterable

import numpy as np
import torch

from onlinedeep import kernels, model
from onlinedeep import threads as thread_policy
from onlinedeep.training.draws import layer_draws

__all__ = ["chunks", "check_loss", "pretrain", "supervised"]


def chunks(position: int, n: int, size: int) -> Iterable[tuple[int, int]]:
    """Offsets ``[a, b)`` of ``n`` rows starting at stream ``position``, cut where the position
    crosses a multiple of ``size`` (the trainer's chunk boundaries)."""
    a = 0
    while a < n:
        pos = position + a
        b = min(n, a + (pos // size + 1) * size - pos)
        yield a, b
        a = b


def check_loss(net, values: np.ndarray, start: int, what: str, phase: str) -> None:
    """Raise :class:`~onlinedeep.training.loop.NonFiniteLossError` naming the first update of
    ``values (n,)`` (positions ``start..``) that is NaN or infinite, and the rate to lower."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return
    from onlinedeep.training.loop import NonFiniteLossError

    i = int(np.argmax(bad))
    rate = ("learning_rate" if phase == "supervised" else "unsup_learning_rate")
    raise NonFiniteLossError(
        f"the {what} became non-finite ({values[i]}) at update {start + i} ({phase}, "
        f"{rate} {getattr(net, rate)}); the weights hold that update: reload a saved copy and "
        f"try a smaller {rate}", start + i)


def pretrain(net, X: np.ndarray, layer: int) -> None:
    """Pre-train hidden layer ``layer`` of ``net`` on ``X (n, n_inputs) float32`` (checked), one
    update per row: a DAE (paper 5.1.2) or an RBM by CD-k (5.1.1) on the output of the layers
    below; advances ``position_`` and ``layer_updates_[layer]``, records the reconstruction cost.

    Raises
    ------
    NonFiniteLossError
        If the reconstruction cost becomes NaN or infinite.
    """
    cfg = net._cfg
    kernel = net._get_kernel()
    dev = net._device
    t0 = time.perf_counter()
    with thread_policy.torch_threads(thread_policy.decide("loop-torch") if kernel.owns_threads else None):
        for a, b in chunks(net.position_, X.shape[0], cfg.chunk_size):
            start = net.position_
            h = model.hidden_forward(net.params_, torch.from_numpy(X[a:b]).to(dev), layer)
            drawn = layer_draws(cfg, layer, start, start + b - a)
            with thread_policy.chunk_threads(net._kernel_threads, kernel, ("pretrain", layer),
                                             b - a):
                cost = kernels.pretrain_chunk(kernel, net.params_, layer, h, drawn,
                                              pretrain=cfg.pretrain,
                                              learning_rate=cfg.unsup_learning_rate,
                                              cd_k=cfg.cd_k, device=dev)
            net.position_ += b - a
            net.layer_updates_[layer] += b - a
            check_loss(net, cost, start, "reconstruction cost", f"pre-training layer {layer}")
            net.metrics_.add_pretrain(start, layer, cost)
    net.elapsed_s_ += time.perf_counter() - t0


def supervised(net, X: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Supervised SGD of ``net`` on ``X (n, n_inputs) float32`` and class indices ``idx (n,)
    int64`` (both checked, n ≥ 1), one update per row; each row is scored before its update.

    Returns
    -------
    errors : (n,) uint8 ndarray
    nll : (n,) float32 ndarray

    Raises
    ------
    NonFiniteLossError
        If the NLL becomes NaN or infinite.
    """
    cfg = net._cfg
    kernel = net._get_kernel()
    dev = net._device
    errors_all, nll_all = [], []
    t0 = time.perf_counter()
    with thread_policy.torch_threads(thread_policy.decide("loop-torch") if kernel.owns_threads else None):
        for a, b in chunks(net.position_, X.shape[0], cfg.chunk_size):
            start = net.position_
            x = torch.from_numpy(X[a:b]).to(dev)
            t = torch.from_numpy(idx[a:b]).to(dev)
            with thread_policy.chunk_threads(net._kernel_threads, kernel, ("supervised", -1),
                                             b - a):
                errors, nll = kernel.supervised(net.params_, x, t, learning_rate=cfg.learning_rate,
                                                l1=cfg.l1, l2=cfg.l2)
                errors, nll = errors.cpu().numpy(), nll.cpu().numpy()
            net.position_ += b - a
            check_loss(net, nll, start, "NLL", "supervised")
            net.metrics_.add_supervised(start, errors, nll)
            errors_all.append(errors)
            nll_all.append(nll)
    net.elapsed_s_ += time.perf_counter() - t0
    return np.concatenate(errors_all), np.concatenate(nll_all)
