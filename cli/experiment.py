"""``onlinedeep experiment run|report NAME``: one command per figure of the paper's section 8, and
per experiment of sections 6-7 on finite data.

Figures 11, 12 and 14 are networks in one folder (:mod:`onlinedeep.experiments.section8`), Figure 13
is the ordering-variance experiment in its ``figure13/`` sub-folder; all run as idempotent jobs on
local worker processes or a Dask cluster. The finite-data experiments (table1, figure1, figure8,
figure9, figure10, figure14-mnist, l1l2, search) are handled by :mod:`onlinedeep_cli.finite_experiment`.
This module only parses options and prints.
"""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer


class Figure(str, Enum):
    figure11 = "figure11"
    figure12 = "figure12"
    figure13 = "figure13"
    figure14 = "figure14"
    # finite data (sections 6-7)
    table1 = "table1"
    figure1 = "figure1"
    figure8 = "figure8"
    figure9 = "figure9"
    figure10 = "figure10"
    figure14_mnist = "figure14-mnist"
    l1l2 = "l1l2"
    search = "search"


class Dataset(str, Enum):
    mnist = "mnist"
    shapeset = "shapeset"


_SECTION8_OUT = Path("runs/section8")


class Preset(str, Enum):
    paper = "paper"
    smoke = "smoke"


def _jobs_of(figure: str, out: Path, preset: str, segments=None):
    """``[(key, total updates, done, pending by phase kind, config, depends_on, finished)]``."""
    from onlinedeep.experiments import runner, section8

    rows = []
    if figure != "figure13":
        for spec in section8.job_specs(figure, out, preset):
            config = section8.key_config(spec.key, preset=preset, out=out)
            done, left = section8.pending_updates(config)
            finished = runner.finished(spec)
            rows.append((spec.key, config.total_updates, done, {} if finished else left, config,
                         (), finished))
        return rows
    from onlinedeep.experiments import figure13

    return plan_rows(figure13.plan(preset), section8.figure13_folder(out), segments)


def plan_rows(plan, folder: Path, segments=None):
    """:func:`_jobs_of`'s rows for the jobs of an ordering-variance ``plan`` in ``folder`` (of
    ``segments`` only: :meth:`OrderingPlan.jobs`)."""
    from onlinedeep.experiments import ordering_variance as ov
    from onlinedeep.experiments import section8
    from onlinedeep.run_folder import RunFolder

    rows = []
    for job in plan.jobs(segments):
        config = plan.config(job)
        if job.is_stage:
            lo, hi = plan.boundary(job.segment - 1), plan.boundary(job.segment)
        elif job.is_base:
            lo, hi = plan.boundary(plan.n_segments - 1), plan.n_examples
        else:
            lo, hi = plan.boundary(job.segment), plan.n_examples
        held = RunFolder(ov.run_dir(plan, folder, job)).snapshots()
        done = max(lo, min(hi, held[-1][0])) if held else lo
        output = ov.output_path(plan, folder, job)
        finished = output.exists() and ov.output_ok(output)  # a damaged output runs again
        left = {} if finished else section8.phase_updates(config, done, hi)
        rows.append((job.key, hi - lo, done - lo, left, config,
                     tuple(d.key for d in plan.depends_on(job)), finished))
    return rows


def _dry_run(figure: str, out: Path, preset: str, jobs: int, threads: int, segments=None) -> None:
    print_eta(_jobs_of(figure, out, preset, segments), jobs, threads)


def print_eta(rows, jobs: int, threads: int) -> None:
    """Print each job of ``rows`` (:func:`_jobs_of`) with its updates left and time, and the ETA
    of all on ``jobs`` workers, from a short real run of each distinct network here and now."""
    from onlinedeep.config import format_count
    from onlinedeep.experiments import section8
    from onlinedeep_cli.preflight import duration

    rates: dict[tuple, dict[str, float]] = {}
    durations = []
    for key, total, done, left, config, deps, finished in rows:
        seconds = 0.0
        if left:
            net = (config.layers, config.n_hidden, config.pretrain, config.pretrain_layers,
                   config.kernel, config.device, config.cd_k, config.noise)
            if net not in rates:
                rates[net] = section8.measure_seconds_per_update(config, threads)
            seconds = sum(n * rates[net][kind] for kind, n in left.items())
        durations.append((key, seconds, deps))
    shown = rows if len(rows) <= 40 else [r for r in rows if r[3]][:40]
    typer.echo(f"{'job':<22} {'status':<24} {'updates':>8} {'pending':>8} {'est. time':>10}")
    for (key, total, done, left, config, deps, finished), (_, seconds, _) in zip(rows, durations):
        if (key, total, done, left, config, deps, finished) not in shown:
            continue
        pending = sum(left.values())
        status = ("finished" if finished else "post-steps left" if not pending
                  else "not started" if done == 0 else f"at {format_count(done)}")
        typer.echo(f"{key:<22} {status:<24} {format_count(total):>8} {format_count(pending):>8} "
                   f"{duration(seconds):>10}")
    if len(shown) < len(rows):
        typer.echo(f"... ({len(rows) - len(shown)} more jobs not shown)")
    pending = sum(sum(r[3].values()) for r in rows)
    unfinished = sum(1 for r in rows if not r[6])
    eta = section8.makespan(durations, jobs)
    typer.echo(f"{len(rows)} jobs, {unfinished} unfinished, {pending:,} updates pending; "
               f"ETA {duration(eta)} with {jobs} parallel job(s) x {threads} thread(s)")
    typer.echo("(measured here, end to end: a short real run of each distinct network and phase "
               "-- live stream in the producer thread, kernel, metrics -- after a short warm-up, "
               "~1 s of whole chunks per network (at least one per phase), one network at a "
               "time, at the threads each job gets; snapshots and the post-steps (test error, "
               "Figure 12 blocks) are not counted and add minutes)")
    for net, r in rates.items():
        per = ", ".join(f"{k} {1e3 * v:.3g} ms" for k, v in r.items())
        typer.echo(f"  {net[0]}x{net[1]} {net[2]}, {net[3]} pre-trained layer(s) ({net[4]} kernel): "
                   f"{per} per update")


def _run_figure(name: str, out: Path, preset_name: str, connect, job_threads, on_outcome,
                adaptive: bool = False, segments=None):
    """Run a figure's jobs; returns the outcomes and the folder holding ``last_run.json``."""
    from onlinedeep.experiments import section8

    if name == "figure13":
        from onlinedeep.experiments import figure13
        from onlinedeep.experiments.ordering_variance import run_experiment

        section8.save_or_check_plan(out, preset_name)  # the other figures then share its preset
        outcomes = run_experiment(figure13.plan(preset_name), section8.figure13_folder(out),
                                  connect, threads=job_threads, on_outcome=on_outcome,
                                  segments=segments)
        return outcomes, section8.figure13_folder(out)
    outcomes = section8.run_figure(name, out, connect, preset=preset_name, threads=job_threads,
                                   adaptive=adaptive, on_outcome=on_outcome)
    return outcomes, out


def run(
    figure: Figure = typer.Argument(..., help="figure11-figure14 (section 8), or on finite data "
                                    "table1, figure1 (and 2), figure8, figure9, figure10, "
                                    "figure14-mnist, l1l2, search."),
    out: Optional[Path] = typer.Option(None, "--out", help="The experiment folder, on a "
                                       "filesystem every worker sees [runs/section8 for figures "
                                       "11-14, shared by them; runs/finite/NAME otherwise]."),
    jobs: Optional[int] = typer.Option(None, "--jobs", min=1, help="Local worker processes "
                                       "[fill the machine: cores, at most the unfinished jobs]."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Address of an existing Dask "
                                            "scheduler (e.g. tcp://host:8786) to run the jobs on."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Threads per job "
                                          "[cores / --jobs locally; unchanged on a cluster]."),
    preset: Preset = typer.Option(Preset.paper, "--preset", help="paper (the paper's protocol: "
                                  "section 8, or 5.2-5.3 on finite data) or smoke (tiny networks, a "
                                  "few thousand updates)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the jobs, their updates and an "
                                 "ETA from a quick measurement here; run nothing."),
    seeds: Optional[int] = typer.Option(None, "--seeds", min=1, help="Finite data: seeds "
                                        "0..N-1 per cell [10] (the paper: 400 after its "
                                        "search's 10)."),
    dataset: Optional[Dataset] = typer.Option(None, "--dataset", help="Finite data: mnist "
                                              "[default] or shapeset (generated)."),
    set_items: Optional[list[str]] = typer.Option(None, "--set", help="Finite data: FIELD=VALUE "
                                                  "for every run (a FiniteConfig field, e.g. "
                                                  "epochs=5, n_train=10000); repeatable."),
    hparams: Optional[Path] = typer.Option(None, "--hparams", help="Finite data: a JSON file, a "
                                           "search's chosen.json ({by_init: ...}), {fields: ...} "
                                           "or the search's {grid: ...}."),
    only: Optional[list[str]] = typer.Option(None, "--only", help="Finite data: run only the cells "
                                             "whose name matches this pattern (shell-style, e.g. "
                                             "'layers2-*'; and the jobs they depend on); "
                                             "repeatable."),
    only_segments: Optional[str] = typer.Option(None, "--only-segments", help="figure13: run only "
                                                "these segments' draws (e.g. 0-4 or 0,2,5-9) and "
                                                "the base stages they branch from [all]."),
) -> None:
    """Run (or continue) the networks of a figure: finished jobs are skipped, runs started by
    hand or interrupted are resumed, complete runs only get their missing post-steps."""

    from onlinedeep import threads as thread_policy
    from onlinedeep.experiments import executors, section8

    name, preset_name = figure.value, preset.value
    if jobs is not None and scheduler is not None:
        raise typer.BadParameter("starts local worker processes; with --scheduler the cluster's "
                                 "workers run the jobs (scale the cluster instead)",
                                 param_hint="--jobs")
    if only_segments is not None and name != "figure13":
        raise typer.BadParameter(f"applies to figure13 only, not to {name}",
                                 param_hint="--only-segments")
    from onlinedeep_cli import finite_experiment

    if name in finite_experiment.FINITE:
        finite_experiment.run(name, out, seeds=10 if seeds is None else seeds,
                              dataset=(dataset or Dataset.mnist).value, jobs=jobs,
                              scheduler=scheduler, threads=threads, preset=preset_name,
                              dry_run=dry_run, set_items=set_items, hparams=hparams,
                              only=only)
        return
    # Section-8 figures train one network per cell from the paper's protocol: refuse the
    # finite-data options rather than ignore them.
    for given, option in ((only, "--only"), (seeds is not None, "--seeds"),
                          (dataset is not None, "--dataset"), (set_items, "--set"),
                          (hparams is not None, "--hparams")):
        if given:
            raise typer.BadParameter(f"applies to the finite-data experiments only, not to {name}",
                                     param_hint=option)
    out = out or _SECTION8_OUT
    segments = None
    # the section-8 folder's preset (every figure in it), before a dry run too
    section8.check_preset(out, preset_name)
    if name == "figure13":  # a folder of another plan: refused before anything is printed
        from onlinedeep.experiments import figure13
        from onlinedeep.experiments.ordering_variance import check_plan

        check_plan(figure13.plan(preset_name), section8.figure13_folder(out))
        from onlinedeep_cli.ordering_variance import chosen_segments

        segments = chosen_segments(figure13.plan(preset_name), only_segments)
    rows = _jobs_of(name, out, preset_name, segments)
    unfinished = sum(1 for r in rows if not r[6])
    jobs = thread_policy.local_jobs(jobs or 0, threads or 0, pending=unfinished)
    job_threads = thread_policy.decide("job", threads or 0, jobs=jobs)
    if dry_run:
        _dry_run(name, out, preset_name, jobs, job_threads, segments)
        return
    if scheduler is not None:
        job_threads = threads

        def connect():
            return executors.remote_client(scheduler)
    else:
        def connect():
            return executors.local_client(jobs)

    # without --threads a local job's kernel chooses 1..job_threads between chunks (issue 11)
    adaptive = scheduler is None and threads is None
    from onlinedeep.run_folder import JobFolder

    # refuse before saying what would run
    JobFolder(section8.figure13_folder(out) if name == "figure13" else out).check_free()
    typer.echo(f"{name}: {len(rows) - unfinished} of {len(rows)} jobs already finished"
               + (f" (segments {only_segments})" if segments else "")
               + (f"; {jobs} local job(s) x {'up to ' if adaptive else ''}{job_threads} "
                  f"thread(s)" if scheduler is None else ""))
    if unfinished:  # before any job starts: the data can be read, the disk has room
        from onlinedeep_cli.preflight import check_data, check_space_for_runs

        configs = [r[4] for r in rows if not r[6]]
        check_data(configs)
        check_space_for_runs(out, configs, f"{unfinished} unfinished job(s) of {name} in {out}")
    from onlinedeep_cli.preflight import StopOnCtrlC, exit_interrupted, job_bar

    bar, on_outcome = job_bar(unfinished, name)

    try:
        with StopOnCtrlC():
            outcomes, where = _run_figure(name, out, preset_name, connect, job_threads, on_outcome,
                                          adaptive, segments)
    except KeyboardInterrupt:
        bar.close()
        left = sum(1 for r in _jobs_of(name, out, preset_name, segments) if not r[6])
        exit_interrupted(len(rows), left, now=unfinished - left)
    finally:
        bar.close()
    from onlinedeep_cli.preflight import report_outcomes

    report_outcomes(outcomes, name, out, where / "last_run.json")


def report(
    figure: Figure = typer.Argument(..., help="figure11-figure14, or a finite-data experiment "
                                    "(table1, figure1, figure8, figure9, figure10, "
                                    "figure14-mnist, l1l2, search)."),
    out: Optional[Path] = typer.Option(None, "--out", help="The experiment folder [runs/section8; "
                                       "runs/finite/NAME for finite data]."),
    results: Optional[Path] = typer.Option(None, "--results", help="Write into RESULTS/NAME/ "
                                           "(e.g. docs/results) instead of OUT/reports/NAME/."),
    preset: Optional[Preset] = typer.Option(None, "--preset", help="The folder's preset [from "
                                            "OUT/plan.json; paper without one]."),
) -> None:
    """Write a figure's CSV files, PNG and command.txt from what is trained so far (networks
    still training are drawn up to their newest snapshot and marked partial)."""
    from onlinedeep_cli import finite_experiment

    name = figure.value
    if name in finite_experiment.FINITE:
        finite_experiment.report(name, out, results)
        return
    out = out or _SECTION8_OUT
    from onlinedeep.experiments import figure11, figure12, figure13, figure14, section8

    preset_name = preset.value if preset is not None else None
    if name == "figure13":
        if not (section8.figure13_folder(out) / "plan.json").is_file():
            typer.echo(f"error: {out}: holds no figure13 run (no {section8.figure13_folder(out)}"
                       f"/plan.json); run it first: onlinedeep experiment run figure13 --out "
                       f"{out}", err=True)
            raise typer.Exit(2)
        try:
            rep = figure13.report(out, results=results)
        except ValueError as exc:  # a damaged job output or earlier report: named, one line
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"{'condition':>10} {'segment':>7} {'fraction':>8} {'draws':>5} {'variance':>12}"
                   f"  source")
        for i in range(len(rep.table["segment"])):
            typer.echo(f"{rep.table['condition'][i]:>10} {rep.table['segment'][i]:>7d} "
                       f"{rep.table['fraction'][i]:>8.2f} {rep.table['n_draws'][i]:>5d} "
                       f"{rep.table['variance'][i]:>12.4e}  {rep.table['source'][i]}")
        typer.echo(f"table: {rep.table_csv}\nfigure: {rep.figure}\ncommands: {rep.command}")
        return
    module = {"figure11": figure11, "figure12": figure12, "figure14": figure14}[name]
    rep = module.report(out, preset=preset_name, results=results)
    width = max([22] + [len(st.status) for st in rep.statuses])
    typer.echo(f"{'network':<16} {'status':<{width}} {'last':>6} {'err_last':>9} {'final':>7} "
               f"{'test %':>7}")
    from onlinedeep.config import format_count

    for st in rep.statuses:
        typer.echo(f"{st.key:<16} {st.status:<{width}} {format_count(st.last_examples):>6} "
                   f"{st.online_error_last:>9.4f} {st.final_online_error:>7.4f} "
                   f"{st.test_error_percent:>7.2f}")
    typer.echo(f"series: {rep.series_csv}\ntable: {rep.table_csv}\nfigure: {rep.figure}\n"
               f"commands: {rep.command}")


def register(app: typer.Typer) -> None:
    """Add the ``experiment`` sub-app (``run``, ``report``) to ``app``."""
    sub = typer.Typer(help="Sections 6-8 of the paper, one command per figure or table (finite "
                      "data: table1, figure1, 8, 9, 10, figure14-mnist, l1l2, search; online: "
                      "figures 11-14), as resumable jobs, locally (--jobs N) or on a Dask cluster "
                      "(--scheduler ADDRESS).",
                      no_args_is_help=True)
    sub.command("run")(run)
    sub.command("report")(report)
    app.add_typer(sub, name="experiment")
