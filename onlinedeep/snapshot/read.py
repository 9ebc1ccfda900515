"""Reading a snapshot: every dataset and attribute checked (type, shape, dtype, finite values,
checksums) and the position checked against the file name, counters, phase and metrics, so a
damaged or edited file is a :class:`SnapshotError` naming it, never garbage."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

from onlinedeep.config import ConfigError, RunConfig
from onlinedeep.metrics import MetricsStateError, RunMetrics, Series
from onlinedeep.run_folder import position_in_name
from onlinedeep.snapshot.schema import (FORMAT, FORMAT_VERSION, Snapshot, SnapshotError,
                                        check_params, expected_state)

__all__ = ["load", "read_series"]


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
        check_params(params, config, where=str(path))
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
