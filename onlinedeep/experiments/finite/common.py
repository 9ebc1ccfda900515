"""The machinery shared by the finite-data experiments (paper sections 6-7): cells × seeds as jobs.

An experiment is a list of :class:`Cell` (one condition: a :class:`FiniteConfig` template, labels
for the report, optionally the cell whose job of the same seed it needs first); with ``--seeds N``
each cell runs seeds ``0..N-1``, one job each (:mod:`onlinedeep.experiments.runner`: idempotent,
on local worker processes or a Dask cluster). Layout of the experiment folder ``OUT``::

    plan.json                 experiment, preset, dataset and every cell's configuration; a rerun
                              (more seeds, after an interruption) must match it
    <cell>/s<seed:03d>/       the run folder of one job (onlinedeep.finite.train); its epochs.h5,
                              written last, means the job is finished
    last_run.json             outcomes of the latest run

``report`` reads every finished job: per cell the test error at the epoch of best validation error
(mean ± sd over seeds, in %), the last epoch's values, the NLLs, into ``table.csv``, one line per
job into ``seeds.csv``, the experiment's figure and ``command.txt``.
"""
from __future__ import annotations

import fnmatch
import json
import math
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from onlinedeep.config import ConfigError
from onlinedeep.experiments import runner
from onlinedeep.finite import records as rec
from onlinedeep.finite.config import FiniteConfig
from onlinedeep.run_folder import JobFolder, snapshot_name

__all__ = ["Cell", "PRESETS", "preset_config", "apply_overrides", "job_key", "run_dir",
           "job_specs", "select", "run_experiment", "check_plan", "JobResult", "collect", "cell_table",
           "write_report", "run_job"]

PLAN_FORMAT = "onlinedeep.finite-plan"
#: Field values of each preset, under the experiment's own. ``paper``: the protocol of 5.3 (50 + 50
#: epochs, full splits) with FiniteConfig's hyperparameters; ``smoke``: a few hundred examples, 1-2
#: epochs, small layers, for tests and a first try (seconds per job).
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "smoke": {"n_train": 200, "n_valid": 100, "n_test": 100, "epochs": 2, "pretrain_epochs": 1,
              "n_hidden": 16, "chunk_size": 100},
}


@dataclass(frozen=True)
class Cell:
    """One condition of an experiment.

    Attributes
    ----------
    key : str
        Folder name of the cell (``layers1-uniform``).
    config : FiniteConfig
        Its configuration (``seed`` is set per job).
    labels : dict
        What the report groups and draws by (``{"layers": 1, "init": "uniform"}``).
    after : str or None
        Key of the cell whose job of the same seed must finish first; this cell's runs take their
        ``histogram_source`` from that job's snapshot at the end of pre-training (Table 1).
    """

    key: str
    config: FiniteConfig
    labels: dict = field(default_factory=dict)
    after: str | None = None


def preset_config(preset: str, dataset: str, **fields: Any) -> FiniteConfig:
    """A :class:`FiniteConfig` of ``preset`` for ``dataset`` with the experiment's ``fields``; a
    preset's value wins over the field's for the sizes and epochs of ``smoke``.

    Raises
    ------
    ConfigError
        On an unknown preset or an invalid field.
    """
    if preset not in PRESETS:
        raise ConfigError(f"preset: expected one of {sorted(PRESETS)}, found {preset!r}")
    values = {"dataset": dataset, **fields}
    for k, v in PRESETS[preset].items():
        if k == "n_hidden" and "n_hidden" in fields and preset == "smoke":
            values[k] = min(v, fields["n_hidden"])
        else:
            values[k] = v
    return FiniteConfig(**values)


def apply_overrides(cells: list[Cell], overrides: dict[str, Any] | None,
                    by_init: dict[str, dict[str, Any]] | None = None,
                    by_init_layers: dict[str, dict[str, dict[str, Any]]] | None = None
                    ) -> list[Cell]:
    """The cells with ``overrides`` (``--set``) and, per cell's ``init``, a search's choice
    (``--hparams``) applied; ``overrides`` win. The choice is ``by_init[init]``, or
    ``by_init_layers[init][str(layers)]`` for a search made per depth (paper 5.3), which takes
    precedence where it has the cell's depth. A ``histogram`` cell without its own entry takes the
    ``uniform`` one: the search covers ``uniform`` and ``pretrained``, and a network drawn from the
    histograms is, like a uniform one, fine-tuned from a random start.

    Raises
    ------
    ConfigError
        On an unknown field or an invalid value (naming the cell).
    """
    out = []
    for cell in cells:
        init = cell.config.init
        if init == "histogram" and init not in {*(by_init or {}), *(by_init_layers or {})}:
            init = "uniform"
        chosen = (by_init or {}).get(init, {})
        chosen = (by_init_layers or {}).get(init, {}).get(str(cell.config.layers), chosen)
        changes = {**chosen, **(overrides or {})}
        try:
            config = cell.config.replace(**changes) if changes else cell.config
        except ConfigError as exc:
            raise ConfigError(f"{exc} (cell {cell.key})") from None
        out.append(Cell(cell.key, config, cell.labels, cell.after))
    return out


def job_key(cell: str, seed: int) -> str:
    return f"{cell}/s{seed:03d}"


def run_dir(out, cell: str, seed: int) -> Path:
    return Path(out) / cell / f"s{seed:03d}"


def _pretrained_snapshot(out, cell: Cell, seed: int) -> Path:
    """The snapshot at the end of pre-training of ``cell``'s job of ``seed``."""
    position = cell.config.replace(seed=seed).engine_config().unsup_updates
    return run_dir(out, cell.key, seed) / "snapshots" / snapshot_name(position, pinned=True)


def job_config(out, cells: dict[str, Cell], cell: Cell, seed: int, threads: int | None) -> FiniteConfig:
    """The configuration of ``cell``'s job of ``seed``."""
    changes: dict[str, Any] = {"seed": seed}
    if threads:
        changes["threads"] = threads
    if cell.after is not None:
        changes["histogram_source"] = str(_pretrained_snapshot(out, cells[cell.after], seed))
    return cell.config.replace(**changes)


def run_job(config_data: dict, run_path: str, threads: int | None) -> dict[str, Any]:
    """One job on a worker: train (or find finished) the run; returns a small summary."""
    import warnings

    from infinite_mnist import MnistSourceWarning

    from onlinedeep import threads as thread_policy
    from onlinedeep.finite.train import train

    thread_policy.set_job_threads(threads)
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # the driver showed data warnings once, not once per worker
        warnings.simplefilter("ignore", MnistSourceWarning)
        result = train(FiniteConfig.from_dict(config_data), run_path)
    best = result.best
    return {"key": run_path, "status": "already finished" if result.params is None else "trained",
            "best_epoch": best["epoch"] if best else None,
            "test_error": best["test_error"] if best else None,
            "seconds": round(time.perf_counter() - t0, 1)}


def job_specs(out, cells: list[Cell], seeds: range, threads: int | None = None, *,
              adaptive: bool = False) -> list[runner.JobSpec]:
    """One job per cell and seed; a cell with ``after`` depends on that cell's job of its seed.
    Each job runs on ``threads`` threads; with ``adaptive`` that is the most its kernel may use,
    choosing 1..``threads`` between chunks (``FiniteConfig.threads`` 0)."""
    from onlinedeep.finite.train import records_path

    by_key = {c.key: c for c in cells}
    specs = []
    for seed in seeds:
        for cell in cells:
            path = run_dir(out, cell.key, seed)
            config = job_config(out, by_key, cell, seed, threads)
            if adaptive:
                config = config.replace(threads=0)
            deps = (job_key(cell.after, seed),) if cell.after else ()
            specs.append(runner.JobSpec(job_key(cell.key, seed), run_job,
                                        (config.to_dict(), str(path), threads),
                                        records_path(path), depends_on=deps, check=rec.readable))
    return specs


def _plan(name: str, preset: str, dataset: str, cells: list[Cell]) -> dict:
    return {"format": PLAN_FORMAT, "experiment": name, "preset": preset, "dataset": dataset,
            "cells": {c.key: {"config": c.config.to_dict(), "labels": c.labels, "after": c.after}
                      for c in cells}}


def select(specs: list[runner.JobSpec], only: Sequence[str] | None) -> list[runner.JobSpec]:
    """The jobs of the cells whose key matches one of the shell-style patterns ``only`` (all
    jobs when it is empty), with the jobs they depend on, in the order given.

    Raises
    ------
    ConfigError
        If a pattern matches no cell (the message lists the cells).
    """
    if not only:
        return list(specs)
    cells = list(dict.fromkeys(s.key.split("/")[0] for s in specs))
    for pattern in only:
        if not fnmatch.filter(cells, pattern):
            raise ConfigError(f"--only: {pattern!r} matches no cell; the cells are "
                              f"{', '.join(cells)}")
    keep = {s.key for s in specs if any(fnmatch.fnmatchcase(s.key.split("/")[0], p) for p in only)}
    by_key = {s.key: s for s in specs}
    todo = list(keep)
    while todo:
        for dep in by_key[todo.pop()].depends_on:
            if dep in by_key and dep not in keep:
                keep.add(dep)
                todo.append(dep)
    return [s for s in specs if s.key in keep]


def check_plan(out, name: str, preset: str, dataset: str, cells: list[Cell]) -> dict | None:
    """The stored plan, checked against this one (None: no plan yet); reads only.

    Raises
    ------
    ConfigError
        If ``OUT/plan.json`` is not a finite plan, or holds another experiment, preset, data set
        or cell configuration (threads aside): use another ``--out``.
    """
    path = JobFolder(out).plan_path
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(stored, dict) or stored.get("format") != PLAN_FORMAT:
        raise ConfigError(f"{path}: not a finite-data experiment plan (expected format "
                          f"{PLAN_FORMAT!r}); is this folder another experiment's? use another --out")
    want = _plan(name, preset, dataset, cells)
    for what in ("experiment", "preset", "dataset"):
        if stored.get(what) != want[what]:
            raise ConfigError(f"{path}: this folder holds {what} {stored.get(what)!r}, not "
                              f"{want[what]!r}; use another --out")

    def strip(cells_dict):
        return {k: {**v, "config": {f: x for f, x in v["config"].items() if f != "threads"}}
                for k, v in cells_dict.items()}

    if strip(stored.get("cells", {})) != strip(want["cells"]):
        raise ConfigError(f"{path}: this folder's cells have other configurations (other --set / "
                          f"--hparams values?); use another --out")
    return stored


def run_experiment(name: str, out, cells: list[Cell], seeds: range, connect: Callable, *,
                   preset: str, dataset: str, threads: int | None = None,
                   on_outcome: Callable | None = None, only: Sequence[str] | None = None,
                   adaptive: bool = False) -> dict:
    """Run the unfinished jobs (:func:`runner.run_jobs`), writing ``plan.json`` first; with
    ``only``, those of the matching cells (:func:`select`). The plan always holds every cell.
    ``threads`` and ``adaptive``: as :func:`job_specs`.

    Raises
    ------
    ConfigError
        If the folder holds another plan (nothing is written).
    """
    check_plan(out, name, preset, dataset, cells)
    folder = JobFolder(out)

    def prepare() -> None:
        if not folder.plan_path.is_file():
            folder.write_json(folder.plan_path, _plan(name, preset, dataset, cells))

    specs = job_specs(out, cells, seeds, threads, adaptive=adaptive)
    return runner.run_jobs(folder, select(specs, only), connect, prepare=prepare,
                           on_outcome=on_outcome)


# ---------------------------------------------------------------------------- results
@dataclass
class JobResult:
    """One finished job: its cell, seed, labels and per-epoch records."""

    cell: str
    seed: int
    labels: dict
    records: rec.EpochRecords

    @property
    def best(self) -> dict:
        return self.records.best()

    @property
    def last(self) -> dict:
        return self.records.last()


def load_plan(out) -> dict:
    """``OUT/plan.json``.

    Raises
    ------
    RunDirError
        If there is none (nothing was run in ``out``).
    """
    from onlinedeep.run_folder import RunDirError

    path = JobFolder(out).plan_path
    if not path.is_file():
        raise RunDirError(f"{out}: no plan.json: no finite-data experiment was run here")
    return json.loads(path.read_text())


def collect(out) -> tuple[dict, list[JobResult]]:
    """The plan and every finished job of the folder (cells in plan order, seeds ascending)."""
    from onlinedeep.finite.train import records_path

    plan = load_plan(out)
    results = []
    for key, cell in plan["cells"].items():
        folder = Path(out) / key
        seeds = sorted(int(p.name[1:]) for p in folder.glob("s[0-9][0-9][0-9]*") if p.is_dir()
                       ) if folder.is_dir() else []
        for seed in seeds:
            path = records_path(run_dir(out, key, seed))
            if rec.readable(path):
                results.append(JobResult(key, seed, cell["labels"], rec.read_h5(path)[1]))
    return plan, results


def _mean_sd(values: list[float]) -> tuple[float, float]:
    a = np.array([v for v in values if not math.isnan(v)], dtype=np.float64)
    if a.size == 0:
        return math.nan, math.nan
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else math.nan


def cell_table(plan: dict, results: list[JobResult]) -> tuple[list[str], list[list]]:
    """Per cell: seeds, test/valid error at the best validation epoch (mean, sd, in %), the last
    epoch's test error, train and test NLL (mean, sd)."""
    header = ["cell", *_label_names(plan), "n_seeds", "test_error_pct", "test_error_sd",
              "valid_error_pct", "valid_error_sd", "best_epoch_mean", "last_test_error_pct",
              "last_test_error_sd", "last_train_nll", "last_train_nll_sd", "last_test_nll",
              "last_test_nll_sd"]
    rows = []
    for key, cell in plan["cells"].items():
        mine = [r for r in results if r.cell == key]
        row: list[Any] = [key, *[cell["labels"].get(n, "") for n in _label_names(plan)], len(mine)]
        for values, scale in (([r.best["test_error"] for r in mine], 100),
                              ([r.best["valid_error"] for r in mine], 100)):
            m, s = _mean_sd(values)
            row += [m * scale, s * scale]
        row.append(_mean_sd([r.best["epoch"] for r in mine])[0])
        for values, scale in (([r.last["test_error"] for r in mine], 100),
                              ([r.last["train_nll"] for r in mine], 1),
                              ([r.last["test_nll"] for r in mine], 1)):
            m, s = _mean_sd(values)
            row += [m * scale, s * scale]
        rows.append(row)
    return header, rows


def _label_names(plan: dict) -> list[str]:
    names: list[str] = []
    for cell in plan["cells"].values():
        names += [n for n in cell["labels"] if n not in names]
    return names


def seed_rows(results: list[JobResult]) -> tuple[list[str], list[list]]:
    """One line per job: its best-validation epoch and values, and the last epoch's."""
    header = ["cell", "seed", "best_epoch", "test_error", "valid_error", "train_error",
              "last_epoch", "last_test_error", "last_train_nll", "last_test_nll"]
    rows = [[r.cell, r.seed, r.best["epoch"], r.best["test_error"], r.best["valid_error"],
             r.best["train_error"], r.last["epoch"], r.last["test_error"], r.last["train_nll"],
             r.last["test_nll"]] for r in results]
    return header, rows


def write_report(name: str, out, results_dir, draw: Callable[[dict, list[JobResult], Path], None],
                 extra: Callable | None = None) -> dict[str, Path]:
    """``table.csv``, ``seeds.csv``, ``<name>.png`` (drawn by ``draw(plan, results, path)``) and
    ``command.txt`` in ``OUT/reports/<name>/`` or ``RESULTS/<name>/``; ``extra(plan, results,
    folder)`` may add files (the search's ``chosen.json``).

    Raises
    ------
    RunDirError
        If no job of the folder has finished (nothing is created).
    """
    from onlinedeep.atomic import make_folder
    from onlinedeep.experiments.section8 import write_csv, write_text
    from onlinedeep.run_folder import RunDirError

    plan, results = collect(out)
    if plan.get("experiment") != name:
        raise RunDirError(f"{out}: this folder holds experiment {plan.get('experiment')!r}, not "
                          f"{name!r}; report it with: onlinedeep experiment report "
                          f"{plan.get('experiment')} --out {out}")
    if not results:
        raise RunDirError(f"{out}: no finished job of {name} yet; run it first: onlinedeep "
                          f"experiment run {name} --out {out}")
    folder = (Path(results_dir) if results_dir is not None else Path(out) / "reports") / name
    make_folder(folder, "the report folder")
    header, rows = cell_table(plan, results)
    files = {"table": write_csv(folder / "table.csv", header, rows)}
    header, rows = seed_rows(results)
    files["seeds"] = write_csv(folder / "seeds.csv", header, rows)
    files["figure"] = folder / f"{name}.png"
    draw(plan, results, files["figure"])
    if extra is not None:
        files.update(extra(plan, results, folder))
    seeds = sorted({r.seed for r in results})
    files["command"] = write_text(folder / "command.txt", (
        f"# {name}: {len(results)} finished job(s), seeds {seeds[0]}-{seeds[-1]}, preset "
        f"{plan['preset']}, dataset {plan['dataset']}\n"
        f"onlinedeep experiment report {name} --out {shlex.quote(str(out))}"
        + (f" --results {shlex.quote(str(results_dir))}" if results_dir is not None else "")
        + f"\n# reported by: {shlex.join(['onlinedeep', *sys.argv[1:]]) if sys.argv[1:] else '-'}\n"))
    return files


def table_lines(path: Path) -> list[str]:
    """The table as aligned text lines (for the command line), mean ± sd."""
    import csv

    with open(path) as f:
        rows = list(csv.DictReader(f))
    lines = [f"{'cell':<28} {'seeds':>5} {'test error % (best valid)':>26} {'last epoch %':>16}"]
    for r in rows:
        def pm(m, s):
            return f"{float(r[m]):.2f} ± {float(r[s]):.2f}" if r[m] and r[s] else (
                f"{float(r[m]):.2f}" if r[m] else "-")
        lines.append(f"{r['cell']:<28} {r['n_seeds']:>5} {pm('test_error_pct', 'test_error_sd'):>26} "
                     f"{pm('last_test_error_pct', 'last_test_error_sd'):>16}")
    return lines

