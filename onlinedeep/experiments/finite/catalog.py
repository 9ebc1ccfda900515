"""The finite-data experiments by name (``onlinedeep experiment run NAME``) and the options every
one of them takes: preset, data set, ``--set`` overrides, ``--hparams`` (a search's choice or a
grid)."""
from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from onlinedeep.config import ConfigError
from onlinedeep.experiments.finite.common import Cell, apply_overrides

__all__ = ["NAMES", "module", "experiment_cells", "parse_set", "read_hparams"]

#: Experiment name → module of ``onlinedeep.experiments.finite``.
NAMES = {"table1": "table1", "figure1": "figure1", "figure8": "figure8", "figure9": "figure9",
         "figure10": "figure10", "figure14-mnist": "figure14_mnist", "l1l2": "l1l2",
         "search": "search"}


def module(name: str):
    """The module of experiment ``name`` (``cells``, ``draw``, optionally ``extra``).

    Raises
    ------
    ConfigError
        On an unknown name.
    """
    if name not in NAMES:
        raise ConfigError(f"experiment: expected one of {sorted(NAMES)}, found {name!r}")
    return importlib.import_module(f"onlinedeep.experiments.finite.{NAMES[name]}")


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """``["epochs=5", "n_train=10000"]`` → ``{"epochs": 5, "n_train": 10000}`` (values read as
    JSON when they parse, e.g. numbers, ``null``, ``true``; else as strings).

    Raises
    ------
    ConfigError
        On an item without ``=``.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"set: expected FIELD=VALUE, found {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except ValueError:
            out[k.strip()] = v
    return out


def read_hparams(path) -> dict[str, Any]:
    """A ``--hparams`` file: ``{"by_init": {init: {field: value}}}`` or ``{"by_init_layers": {init:
    {layers: {field: value}}}}`` (a search's ``chosen.json``), ``{"grid": {field: [values]}}`` (the
    search's grid) and/or ``{"fields": {field: value}}``.

    Raises
    ------
    ConfigError
        If the file cannot be read or is not such an object.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"hparams: cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not ({"by_init", "by_init_layers", "grid", "fields"}
                                          & set(data)):
        raise ConfigError(f"hparams: {path}: expected a JSON object with 'by_init', "
                          "'by_init_layers', 'grid' or 'fields'")
    return data


def experiment_cells(name: str, preset: str, dataset: str, overrides: dict | None = None,
                     hparams: dict | None = None) -> list[Cell]:
    """The cells of ``name`` with the preset, the data set and the overrides applied.

    Raises
    ------
    ConfigError
        On an unknown experiment, preset or field, an invalid value, or a grid for another
        experiment than the search.
    """
    mod = module(name)
    hparams = hparams or {}
    if "grid" in hparams:
        if name != "search":
            raise ConfigError("hparams: a 'grid' applies to the search only")
        cells = mod.cells(preset, dataset, grid=hparams["grid"])
    else:
        cells = mod.cells(preset, dataset)
    fields = {**hparams.get("fields", {}), **(overrides or {})}
    return apply_overrides(cells, fields, hparams.get("by_init"), hparams.get("by_init_layers"))
