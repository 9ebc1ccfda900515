"""The hyperparameter search of paper 5.3: a grid (footnote 7) on validation error, a few seeds per
point, for networks without (``uniform``) and with (``pretrained``) pre-training; the report
records the choice in ``chosen.json``, which ``experiment run NAME --hparams chosen.json`` applies.

Footnote 7: units {400, 800, 1200}; learning rate {0.1, 0.05, 0.02, 0.01, 0.005}; L2 λ {1e-4, 1e-5,
1e-6, 0}; pre-training learning rate {0.01, 0.005, 0.002, 0.001, 0.0005}; corruption {0, 0.1, 0.25,
0.4} (tied weights only: the engine's auto-encoders are tied). The paper selects on validation
error with 10 seeds. A smaller grid: ``--hparams FILE`` with ``{"grid": {field: [values], ...}}``.
"""
from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

from onlinedeep.atomic import atomic_file
from onlinedeep.config import ConfigError
from onlinedeep.experiments.finite import plots
from onlinedeep.experiments.finite.common import Cell, preset_config

NAME = "search"
HPARAMS_FORMAT = "onlinedeep.finite-hparams"
GRIDS = {
    "paper": {"n_hidden": [400, 800, 1200], "learning_rate": [0.1, 0.05, 0.02, 0.01, 0.005],
              "l2": [1e-4, 1e-5, 1e-6, 0.0],
              "unsup_learning_rate": [0.01, 0.005, 0.002, 0.001, 0.0005],
              "corruption_level": [0.0, 0.1, 0.25, 0.4]},
    "smoke": {"n_hidden": [16], "learning_rate": [0.1, 0.02], "l2": [0.0],
              "unsup_learning_rate": [0.01], "corruption_level": [0.25]},
}
#: Fields that matter only with pre-training.
PRETRAIN_FIELDS = ("unsup_learning_rate", "corruption_level")
SHORT = {"n_hidden": "u", "learning_rate": "lr", "l2": "l2", "unsup_learning_rate": "ulr",
         "corruption_level": "c", "l1": "l1", "layers": "L"}


def cells(preset: str, dataset: str, grid: dict | None = None) -> list[Cell]:
    """One cell per grid point and initialisation (``uniform`` ignores the pre-training fields).

    Raises
    ------
    ConfigError
        If ``grid`` is not ``{field: [values]}`` with non-empty lists.
    """
    grid = GRIDS[preset] if grid is None else grid
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError(f"grid: expected {{field: [values, ...]}}, found {grid!r}")
    out = []
    for init in ("uniform", "pretrained"):
        names = [n for n in grid if init == "pretrained" or n not in PRETRAIN_FIELDS]
        for values in itertools.product(*(grid[n] for n in names)):
            fields = dict(zip(names, values))
            key = init + "-" + "-".join(f"{SHORT.get(n, n)}{v:g}" for n, v in fields.items())
            config = preset_config(preset, dataset, init=init, snapshots="none", **fields)
            if preset == "smoke" and "n_hidden" in fields:
                config = config.replace(n_hidden=fields["n_hidden"])
            out.append(Cell(key, config, {"init": init, **fields}))
    return out


def _group(labels: dict) -> str:
    """The selection group of a grid point: its init, and its depth when the grid varies it
    (paper 5.3: a choice per model and number of layers)."""
    return labels["init"] if "layers" not in labels else f"{labels['init']}@{labels['layers']}"


def choose(plan: dict, results: list) -> dict:
    """Per initialisation (and per depth when the grid has ``layers``), the grid point of lowest
    mean validation error (at each run's best epoch) over its seeds; ties: the first in grid
    order. Keys: ``init`` or ``init@layers``."""
    best: dict[str, tuple[float, str]] = {}
    for key, cell in plan["cells"].items():
        values = [r.best["valid_error"] for r in results if r.cell == key]
        if not values:
            continue
        mean = sum(values) / len(values)
        group = _group(cell["labels"])
        if group not in best or mean < best[group][0]:
            best[group] = (mean, key)
    chosen = {}
    for group, (mean, key) in best.items():
        labels = plan["cells"][key]["labels"]
        chosen[group] = {"fields": {k: v for k, v in labels.items() if k not in ("init", "layers")},
                         "cell": key, "valid_error_pct": 100 * mean,
                         "n_seeds": sum(1 for r in results if r.cell == key)}
    return chosen


def extra(plan: dict, results: list, folder: Path) -> dict[str, Path]:
    """``chosen.json``: ``{"format", "by_init": {init: {field: value}}, "details": ...}``, or with
    ``layers`` in the grid ``"by_init_layers": {init: {layers: {field: value}}}``."""
    chosen = choose(plan, results)
    data = {"format": HPARAMS_FORMAT, "dataset": plan["dataset"], "preset": plan["preset"],
            "details": chosen}
    if all("@" not in g for g in chosen):
        data["by_init"] = {init: c["fields"] for init, c in chosen.items()}
    else:  # a choice per depth: {init: {layers: fields}}
        by: dict[str, dict[str, dict]] = {}
        for group, c in chosen.items():
            init, layers = group.split("@")
            by.setdefault(init, {})[layers] = c["fields"]
        data["by_init_layers"] = by
    path = folder / "chosen.json"
    with atomic_file(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return {"chosen": path}


def draw(plan, results, path):
    """Draw the search as a PNG at ``path`` from ``results`` (list of
    ``common.JobResult``, the finished jobs) and ``plan`` (the folder's ``plan.json`` dict)."""
    series = {}
    for init in ("uniform", "pretrained"):
        keys = [k for k, c in plan["cells"].items() if c["labels"]["init"] == init]
        means = []
        for k in keys:
            v = [100 * r.best["valid_error"] for r in results if r.cell == k]
            means.append(sum(v) / len(v) if v else math.nan)
        ranked = sorted(m for m in means if not math.isnan(m))
        series[init] = (list(range(1, len(ranked) + 1)), [[m] for m in ranked])
    plots.errorbars({"grid points, best first": series}, path, xlabel="rank", sds=0.0,
                    title=f"Search ({plan['dataset']}): mean validation error per grid point")
