"""``onlinedeep experiment run|report NAME`` for the finite-data experiments (paper sections 6-7):
table1, figure1 (with Figure 2), figure8, figure9, figure10, figure14-mnist, l1l2, search.

Cells × seeds as idempotent jobs (:mod:`onlinedeep.experiments.finite.common`) on local worker
processes or a Dask cluster; this module only parses options and prints.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

FINITE = ("table1", "figure1", "figure8", "figure9", "figure10", "figure14-mnist", "l1l2", "search")


def default_out(name: str) -> Path:
    return Path("runs/finite") / name


def _cells(name, preset, dataset, set_items, hparams):
    from onlinedeep.config import ConfigError
    from onlinedeep.experiments.finite import catalog

    data = catalog.read_hparams(hparams) if hparams is not None else None
    try:
        return catalog.experiment_cells(name, preset, dataset, catalog.parse_set(set_items), data)
    except ConfigError as exc:
        text = _set_message(str(exc), set_items or [])
        if text is None:
            raise
        typer.secho(f"error: {text}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None


def _set_message(text: str, set_items: list[str]) -> Optional[str]:
    """A configuration error caused by a ``--set`` item, naming the item as typed
    (``--set units=16: unknown field ...``); None for an error with another cause. The fields are
    the finite-data configuration's, which the command has no options for: the generic rewrite of
    field names into options (``n_hidden`` → ``--n-hidden``) would name options it does not
    take."""
    if text.startswith("set: "):  # an item without '='
        return "--" + text
    body = text.removeprefix("configuration: ")
    for item in set_items:
        field = item.split("=", 1)[0].strip()
        if body.startswith("unknown field(s) ") and repr(field) in body.split(";", 1)[0]:
            return f"--set {item}: {body}"
        if body.startswith(field + ": "):
            return f"--set {item}: {body[len(field) + 2:]}"
    return None


def _dry_run(cells, specs, seeds: int, dataset: str, jobs: Optional[int], threads: int) -> None:
    """Print each cell's jobs and the ETA of the unfinished ones from a quick measurement here
    (``jobs`` None: on a cluster, whose width is unknown here)."""
    from onlinedeep.experiments import runner
    from onlinedeep.experiments.finite import cost
    from onlinedeep.finite.config import FiniteConfig
    from onlinedeep.finite.data import load_dataset
    from onlinedeep_cli.preflight import duration

    configs = {s.key: FiniteConfig.from_dict(s.args[0]) for s in specs}
    pending = {s.key for s in runner.pending(specs)}
    first = cells[0].config
    data = load_dataset(dataset, mnist_dir=first.mnist_dir, seed=first.data_seed,
                        sizes=first.sizes())
    job_cost = cost.JobCost(data, threads)
    wall, each = cost.estimate(specs, configs, pending, job_cost, jobs or 1)
    for cell in cells:
        cfg = cell.config
        keys = [s.key for s in specs if s.key.startswith(cell.key + "/")]
        if not keys:  # a cell --only leaves out
            continue
        left = [each[k] for k in keys if k in each]
        typer.echo(f"  {cell.key:<40} {len(keys) - len(left):>4}/{seeds} done  layers "
                   f"{cfg.layers} x {cfg.n_hidden}, init {cfg.init}, {cfg.pretrain_epochs}+"
                   f"{cfg.epochs} epochs, "
                   f"{configs[keys[0]].engine_config().total_updates:,} updates per job"
                   + (f", ~{duration(left[0])} each" if left else ""))
    where = (f"ETA {duration(wall)} with {jobs} parallel job(s) x {threads} thread(s)" if jobs
             else f"{duration(sum(each.values()))} of single-job time; divide by the cluster's "
                  f"task slots")
    typer.echo(f"{len(pending)} unfinished job(s): {where} (measured here: a short real run of "
               f"each distinct network at {threads} thread(s), ~0.6 s of chunks, plus the "
               f"evaluation after every epoch; other work on this machine slows it)")


def run(name: str, out: Optional[Path], *, seeds: int, dataset: str, jobs: Optional[int],
        scheduler: Optional[str], threads: Optional[int], preset: str, dry_run: bool,
        set_items: list[str] | None, hparams: Optional[Path], only: list[str] | None = None
        ) -> None:
    """Run (or continue) a finite-data experiment: finished jobs are skipped."""

    from onlinedeep import threads as thread_policy
    from onlinedeep.experiments import executors, runner
    from onlinedeep.experiments.finite import common

    out = out or default_out(name)
    cells = _cells(name, preset, dataset, set_items, hparams)
    common.check_plan(out, name, preset, dataset, cells)
    specs = common.select(common.job_specs(out, cells, range(seeds)), only)
    unfinished = len(runner.pending(specs))
    jobs = thread_policy.local_jobs(jobs or 0, threads or 0, pending=max(unfinished, 1))
    job_threads = threads if scheduler is not None else thread_policy.decide("job", threads or 0,
                                                                             jobs=jobs)
    from onlinedeep.finite.config import FiniteConfig

    updates = sum(FiniteConfig.from_dict(s.args[0]).engine_config().total_updates for s in specs)
    chosen = (f" (--only: {len({s.key.split('/')[0] for s in specs})} of {len(cells)} cells)"
              if only else "")
    if not dry_run:  # refuse before saying what would run
        from onlinedeep.run_folder import JobFolder

        JobFolder(out).check_free()
    typer.echo(f"{name} ({dataset}, preset {preset}): {len(cells)} cell(s) x {seeds} seed(s)"
               f"{chosen} = {len(specs)} jobs, {len(specs) - unfinished} already finished; "
               f"{updates:,} updates in all" + (f"; {jobs} local job(s) x {job_threads} thread(s)"
                                                 if scheduler is None else f"; on {scheduler}"))
    if dry_run:
        _dry_run(cells, specs, seeds, dataset, jobs if scheduler is None else None, job_threads)
        return
    if scheduler is not None:
        def connect():
            return executors.remote_client(scheduler)
    else:
        def connect():
            return executors.local_client(jobs)

    if unfinished:  # the data can be read, before any job starts (MNIST errors once, here)
        from onlinedeep.finite.data import load_dataset

        first = cells[0].config
        load_dataset(dataset, mnist_dir=first.mnist_dir, seed=first.data_seed, sizes=first.sizes())
    from onlinedeep_cli.preflight import StopOnCtrlC, exit_interrupted, job_bar

    bar, on_outcome = job_bar(unfinished, name)

    try:
        with StopOnCtrlC():
            outcomes = common.run_experiment(name, out, cells, range(seeds), connect,
                                             preset=preset, dataset=dataset, threads=job_threads,
                                             on_outcome=on_outcome, only=only,
                                             adaptive=scheduler is None and threads is None)
    except KeyboardInterrupt:
        bar.close()
        left = len(runner.pending(specs))
        exit_interrupted(len(specs), left, others="start over")
    finally:
        bar.close()
    from onlinedeep_cli.preflight import report_outcomes

    report_outcomes(outcomes, name, out, Path(out) / "last_run.json")


def report(name: str, out: Optional[Path], results: Optional[Path]) -> None:
    """Write the experiment's table (mean ± sd over seeds), per-seed CSV, figure, command.txt."""
    from onlinedeep.experiments.finite import catalog, common

    out = out or default_out(name)
    mod = catalog.module(name)
    files = common.write_report(name, out, results, mod.draw, getattr(mod, "extra", None))
    for line in common.table_lines(files["table"]):
        typer.echo(line)
    typer.echo("(test error at each run's epoch of best validation error; last epoch: no early "
               "stopping)")
    for what, path in files.items():
        typer.echo(f"{what}: {path}")
