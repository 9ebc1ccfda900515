"""Writing a snapshot: the HDF5 file built in memory, then one atomic write
(:func:`onlinedeep.atomic.write_bytes`)."""
from __future__ import annotations

import datetime as _dt
import io
import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping

import h5py
import numpy as np

from onlinedeep.atomic import write_bytes
from onlinedeep.config import RunConfig
from onlinedeep.metrics import RunMetrics, Series
from onlinedeep.snapshot.schema import FORMAT, FORMAT_VERSION, check_params, data_caveat

__all__ = ["save", "h5_image"]


def _json_default(o: Any):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def _to_numpy(t) -> np.ndarray:
    if hasattr(t, "detach"):
        t = t.detach().cpu().numpy()
    return np.asarray(t)

def save(
    path: str | os.PathLike,
    *,
    config: RunConfig,
    schedule: Mapping[str, Any],
    position: int,
    phase: str,
    layer: int,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    counters: Mapping[str, Any],
    provenance: Mapping[str, Any],
    train_error: Mapping[str, Any] | None = None,
) -> Path:
    """Write a snapshot atomically (temporary file in the same folder, fsync, rename).

    Parameters
    ----------
    path : path-like
        Destination ``.h5`` file.
    config : RunConfig
    schedule : dict
        ``Schedule.to_dict()``.
    position : int
        Examples seen.
    phase, layer : str, int
        Phase label (``"pretrain"``, ``"supervised"``, ``"done"``) and pre-trained layer (or -1).
    params : mapping of str to tensor or ndarray
        float32 parameters (torch tensors are copied to the host).
    metrics : dict
        ``RunMetrics.state()``.
    counters : dict
        ``unsup_done``, ``sup_done``, ``elapsed_s``.
    provenance : dict
        JSON-able.
    train_error : dict, optional
        ``block_start``, ``block_stop``, ``error`` arrays.

    Returns
    -------
    Path

    Raises
    ------
    SnapshotError
        If a parameter is not finite or has the wrong shape for ``config`` (nothing is written).
    onlinedeep.atomic.DiskFullError
        If the disk lacks the space (checked before writing; nothing is left behind and the file
        it would replace is intact).
    OSError
        If the file cannot be written otherwise (nothing is left behind).
    """
    path = Path(path)
    arrays = {k: np.ascontiguousarray(_to_numpy(v), dtype=np.float32) for k, v in params.items()}
    check_params(arrays, config, where=f"{path} (not written)")

    def fill(f: h5py.File) -> None:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["position"] = np.int64(position)
        f.attrs["phase"] = phase
        f.attrs["layer"] = int(layer)
        f.attrs["config"] = config.to_json()
        f.attrs["schedule"] = json.dumps(dict(schedule), sort_keys=True, default=_json_default)
        f.attrs["provenance"] = json.dumps(dict(provenance), sort_keys=True,
                                           default=_json_default)
        f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        caveat = data_caveat(provenance)
        if caveat:
            f.attrs["data_caveat"] = caveat
        g = f.create_group("params")
        for k, a in arrays.items():
            _dataset(g, k, a)
        c = f.create_group("counters")
        for k, v in counters.items():
            c.attrs[k] = v
        m = f.create_group("metrics")
        for k in RunMetrics.SCALARS:
            m.attrs[k] = metrics[k]
        for name in RunMetrics.WINDOWS:
            st = metrics[name]
            d = _dataset(m, name, np.asarray(st["buffer"]))
            d.attrs["n_seen"] = np.int64(st["n_seen"])
            d.attrs["total"] = st["total"]
        s = f.create_group("series")
        series: Series = metrics["series"]
        for name in Series.FIELDS:
            _dataset(s, name, np.asarray(getattr(series, name), dtype=Series.DTYPES[name]))
        if train_error is not None:
            t = f.create_group("train_error")
            for name in ("block_start", "block_stop", "error"):
                _dataset(t, name, np.asarray(train_error[name]))

    return write_bytes(path, h5_image(fill), what="the snapshot")


def h5_image(fill: Callable[[h5py.File], None]) -> bytes:
    """The bytes of an HDF5 file built in memory by ``fill(file)``.

    HDF5 crashes the process (segmentation fault) when a write fails on a full disk; built in memory,
    the file reaches the disk through one plain write (:func:`onlinedeep.atomic.write_bytes`), which
    fails cleanly.
    """
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        fill(f)
    return buffer.getvalue()


def _dataset(group: h5py.Group, name: str, a: np.ndarray) -> h5py.Dataset:
    if a.size == 0:
        return group.create_dataset(name, data=a)
    return group.create_dataset(name, data=a, chunks=True, fletcher32=True)
