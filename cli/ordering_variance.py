"""``onlinedeep ordering-variance run|report|indices``: the example-ordering experiment (paper 8.2, Figure 13).

The logic lives in :mod:`onlinedeep.experiments.ordering_variance` (plan, jobs, aggregation) and
:mod:`onlinedeep.experiments.executors` (local or Dask cluster); this module only parses options and prints.
"""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from onlinedeep.config import ConfigError, format_count, parse_count
from onlinedeep_cli.options import option_name


class Preset(str, Enum):
    paper = "paper"
    smoke = "smoke"


class Pretrain(str, Enum):
    dae = "dae"
    rbm = "rbm"


def _count(value: Optional[str], flag: str) -> Optional[int]:
    if value is None:
        return None
    try:
        return parse_count(value, name=flag)
    except ConfigError as exc:
        raise _bad_parameter(str(exc)) from None


def _bad_parameter(message: str) -> typer.BadParameter:
    """A usage error naming the option at fault: ``"segment: expected ..."`` → ``Invalid value for
    --segment: expected ...``."""
    name, sep, rest = message.partition(": ")
    flag = name if name.startswith("--") else "--" + name.replace("_", "-")
    if sep and flag in ("--segment", "--draw", "--start", "--count"):
        return typer.BadParameter(rest, param_hint=flag)
    if sep and name == "positions":
        return typer.BadParameter(rest, param_hint="--start/--count")
    return typer.BadParameter(message)


def parse_segments(text: Optional[str]) -> Optional[list[int]]:
    """``--only-segments``: ``"0-4"``, ``"0,2,5-9"`` → the segment numbers (None: all).

    Raises
    ------
    typer.BadParameter
        If the text is not a comma-separated list of numbers and ranges ``a-b`` (a ≤ b).
    """
    if text is None:
        return None
    import re

    chosen = []
    for part in text.split(","):
        m = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", part.strip())
        a, b = (int(m.group(1)), int(m.group(2) or m.group(1))) if m else (0, -1)
        if b < a:
            raise typer.BadParameter(f"expected segment numbers and ranges such as 0-4 or 0,2,5-9, "
                                     f"found {part.strip()!r}", param_hint="--only-segments")
        chosen.extend(range(a, b + 1))
    return chosen


def chosen_segments(plan, text: Optional[str]) -> Optional[list[int]]:
    """``--only-segments`` read and checked against ``plan`` (None: every segment).

    Raises
    ------
    typer.BadParameter
        If the text is malformed, or names no segment or one the plan does not have.
    """
    if text is None:
        return None
    from onlinedeep.config import ConfigError

    try:
        return plan.check_segments(parse_segments(text))
    except ConfigError as exc:
        raise typer.BadParameter(str(exc).removeprefix("segments: "),
                                 param_hint="--only-segments") from None


ONLY_SEGMENTS = typer.Option(None, "--only-segments", help="Run only these segments' draws "
                             "(e.g. 0-4 or 0,2,5-9) and the base stages they branch from: to split "
                             "the experiment between machines, or to finish it on a new one "
                             "[all].")


def _describe(plan) -> str:
    costs = plan.costs()
    conds = ", ".join(
        f"{name} ({format_count(cfg.unsup_updates)} unsupervised + {format_count(cfg.sup_updates)} "
        f"supervised, {cfg.layers}x{cfg.n_hidden})" for name, cfg in plan.configs.items()
    )
    return (
        f"N = {plan.n_examples:,} examples, S = {plan.n_segments} segments of "
        f"{plan.segment_length:,}, D = {plan.n_draws} draws, test set = stream indices "
        f"{plan.test_start}-{plan.test_start + plan.test_count - 1}\n"
        f"conditions: {conds}\n"
        f"with prefix sharing:    {costs['runs_shared']} training runs as {costs['jobs_shared']} jobs "
        f"(each base run in {plan.n_segments} stages), {costs['updates_shared']:,} updates\n"
        f"without prefix sharing: {costs['jobs_unshared']} training runs = jobs, "
        f"{costs['updates_unshared']:,} updates"
    )


# The options that define a plan, shared by `run` and `indices` (one definition, the same flags).
_OUT = typer.Option(..., "--out", help="Experiment folder (on a filesystem every worker sees).")
_PRESET = typer.Option(Preset.paper, "--preset", help="paper: N=10M, S=10, D=10, 784-2000-10; "
                       "smoke: N=4k, S=4, D=3, 784-32-10.")
_PRETRAIN = typer.Option(Pretrain.dae, "--pretrain", help="Pre-training of the pre-trained "
                         "condition (the other one has none).")
_SEGMENTS = typer.Option(None, "--segments", min=1, help="S [preset].")
_DRAWS = typer.Option(None, "--draws", min=2, help="D [preset].")
_TEST_COUNT = typer.Option(None, "--test-count", min=1, help="Test digits (stream indices 0..n-1, "
                           "at most 10,000) [10,000].")
_LAYERS = typer.Option(None, "--layers", help="Hidden layers [1].")
_N_HIDDEN = typer.Option(None, "--n-hidden", "--units",
                         help="Units per hidden layer [preset]; --units is the same option.")
_UNSUP = typer.Option(None, "--unsup-updates", help="Pre-training updates of the pre-trained "
                      "condition, e.g. 2.5M [preset].")
_SUP = typer.Option(None, "--sup-updates", help="Supervised updates after pre-training, e.g. 7.5M "
                    "[preset]; the condition without pre-training trains on the sum.")
_LR = typer.Option(None, "--lr", help="Supervised learning rate [preset].")
_UNSUP_LR = typer.Option(None, "--unsup-lr", help="Unsupervised learning rate.")
_CORRUPTION = typer.Option(None, "--corruption", help="DAE corruption level.")
_SEED = typer.Option(None, "--seed", help="Initial weights, noise and the draws of the resampled "
                     "segments [0].")
_SNAPSHOT_EVERY = typer.Option(None, "--snapshot-every", help="Updates between resume points of "
                               "each job [preset].")
_DEVICE = typer.Option(None, "--device", help="auto|cpu|cuda.")
_KERNEL = typer.Option(None, "--kernel", help="Training kernel (auto, reference, ...).")
_MNIST_DIR = typer.Option(None, "--mnist-dir", help="MNIST folder [$ONLINEDEEP_MNIST_DIR, cache, "
                          "download].")


def make_plan(preset, pretrain, segments, draws, test_count, layers, n_hidden, unsup_updates,
              sup_updates, lr, unsup_lr, corruption, seed, snapshot_every, device, kernel,
              mnist_dir):
    """The :class:`OrderingPlan` the plan options describe (ConfigError on a bad value)."""
    from onlinedeep.experiments.ordering_variance import OrderingPlan

    return OrderingPlan.preset(
        getattr(preset, "value", preset), pretrain=getattr(pretrain, "value", pretrain),
        n_segments=segments, n_draws=draws, test_count=test_count, layers=layers,
        n_hidden=n_hidden,
        unsup_updates=_count(unsup_updates, "--unsup-updates"),
        sup_updates=_count(sup_updates, "--sup-updates"), learning_rate=lr,
        unsup_learning_rate=unsup_lr, corruption_level=corruption, seed=seed,
        snapshot_every=_count(snapshot_every, "--snapshot-every"), device=device, kernel=kernel,
        mnist_dir=str(Path(mnist_dir).resolve()) if mnist_dir is not None else None,
    )


def run(
    out: Path = _OUT,
    preset: Preset = _PRESET,
    jobs: int = typer.Option(0, "--jobs", min=0, help="Local worker processes (ignored with "
                             "--scheduler) [0: fill the machine, cores / --threads (1 thread each "
                             "by default)]."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Address of an existing Dask "
                                            "scheduler (e.g. tcp://host:8786) to run the jobs on."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Torch/Numba threads per job "
                                          "[default: cores / jobs locally; unchanged on a cluster]."),
    pretrain: Pretrain = _PRETRAIN,
    segments: Optional[int] = _SEGMENTS,
    draws: Optional[int] = _DRAWS,
    test_count: Optional[int] = _TEST_COUNT,
    layers: Optional[int] = _LAYERS,
    n_hidden: Optional[int] = _N_HIDDEN,
    unsup_updates: Optional[str] = _UNSUP,
    sup_updates: Optional[str] = _SUP,
    lr: Optional[float] = _LR,
    unsup_lr: Optional[float] = _UNSUP_LR,
    corruption: Optional[float] = _CORRUPTION,
    seed: Optional[int] = _SEED,
    snapshot_every: Optional[str] = _SNAPSHOT_EVERY,
    device: Optional[str] = _DEVICE,
    kernel: Optional[str] = _KERNEL,
    mnist_dir: Optional[Path] = _MNIST_DIR,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and its cost; run nothing."),
    only_segments: Optional[str] = ONLY_SEGMENTS,
) -> None:
    """Run (or continue) the experiment: skips finished jobs, resumes interrupted ones."""
    from onlinedeep import threads as thread_policy
    from onlinedeep.experiments import executors
    from onlinedeep.experiments.ordering_variance import run_experiment

    # ConfigError (an option, or a folder holding another experiment) and OSError (e.g. an
    # unreachable --scheduler) are reported by cli.main as one line.
    plan = make_plan(preset, pretrain, segments, draws, test_count, layers, n_hidden, unsup_updates,
                     sup_updates, lr, unsup_lr, corruption, seed, snapshot_every, device, kernel,
                     mnist_dir)
    chosen = chosen_segments(plan, only_segments)
    from onlinedeep.experiments.ordering_variance import check_plan, pending_jobs

    if not dry_run:  # refuse before saying what would run
        from onlinedeep.run_folder import JobFolder

        JobFolder(out).check_free()
        check_plan(plan, out)
    typer.echo(_describe(plan))
    if dry_run:
        check_plan(plan, out)  # a changed plan: the dry run shows it, then says it is refused
    if dry_run:
        if scheduler is None:  # the time of the jobs still to run, measured here (issue 11)
            from onlinedeep_cli.experiment import plan_rows, print_eta

            rows = plan_rows(plan, out, chosen)
            unfinished = sum(1 for r in rows if not r[6])
            jobs = thread_policy.local_jobs(jobs, threads or 0, pending=unfinished)
            print_eta(rows, jobs, thread_policy.decide("job", threads or 0, jobs=jobs))
        return

    from tqdm import tqdm

    from onlinedeep_cli.preflight import StopOnCtrlC, exit_interrupted

    total = len(plan.jobs(chosen))
    pending = pending_jobs(plan, out, chosen)
    typer.echo(f"{total - len(pending)} of {total} jobs already finished"
               + (f" (segments {only_segments})" if chosen else ""))
    if pending:  # before any job starts: the data can be read, the disk has room
        from onlinedeep_cli.preflight import check_data, check_space_for_runs

        check_data(plan.configs.values())
        check_space_for_runs(out, [plan.config(job) for job in pending],
                             f"{len(pending)} unfinished job(s) of the experiment in {out}")
    bar = tqdm(total=len(pending), unit="job", desc="ordering-variance", dynamic_ncols=True)

    def on_outcome(outcome) -> None:
        bar.update(1)
        if outcome.status != "done":
            bar.write(f"{outcome.status}: {outcome.key}: {outcome.error}")

    if scheduler is not None:
        def connect():
            return executors.remote_client(scheduler)
    else:
        jobs = thread_policy.local_jobs(jobs, threads or 0)  # jobs x threads = cores
        threads = thread_policy.decide("job", threads or 0, jobs=jobs)

        def connect():
            return executors.local_client(jobs)
    try:
        with StopOnCtrlC():
            outcomes = run_experiment(plan, out, connect, threads=threads, on_outcome=on_outcome,
                                      segments=chosen)
    except KeyboardInterrupt:
        bar.close()
        left = pending_jobs(plan, out, chosen)
        exit_interrupted(total, len(left), now=len(pending) - len(left))
    finally:
        bar.close()
    before = sum(1 for o in outcomes.values() if o.status == "done"
                 and (o.value or {}).get("status") == "already finished")
    done = sum(1 for o in outcomes.values() if o.status == "done") - before
    failed = [o for o in outcomes.values() if o.status == "failed"]
    skipped = [o for o in outcomes.values() if o.status == "skipped"]
    typer.echo(f"{total} jobs: {before} already finished, {done} finished now, {len(failed)} failed, "
               f"{len(skipped)} not started (failed dependency)")
    for o in failed:
        typer.echo(f"FAILED {o.key}: {o.error}", err=True)
    if failed or skipped:
        typer.echo(f"tracebacks: {out / 'last_run.json'}; fix the cause and rerun the same command "
                   "(finished jobs are skipped).", err=True)
        raise typer.Exit(1)
    typer.echo(f"all jobs finished; next: onlinedeep ordering-variance report --out {out}")


def report(
    out: Path = typer.Option(..., "--out", help="Experiment folder written by `run`."),
) -> None:
    """Aggregate the finished jobs into one HDF5 table and draw Figure 13."""
    from onlinedeep.experiments.ordering_variance import load_plan, report as make_report

    try:
        plan = load_plan(out)
        table, table_path, figure_path = make_report(out)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{'condition':>10} {'segment':>7} {'fraction':>8} {'draws':>5} {'variance':>12} "
               f"{'online_error':>12}")
    for i in range(len(table["segment"])):
        typer.echo(f"{table['condition'][i]:>10} {table['segment'][i]:>7d} {table['fraction'][i]:>8.2f} "
                   f"{table['n_draws'][i]:>5d} {table['variance'][i]:>12.4e} "
                   f"{table['online_error_mean'][i]:>12.4f}")
    missing = int((plan.n_draws - table["n_draws"]).sum())
    if missing:
        typer.echo(f"warning: {missing} of {plan.n_segments * plan.n_draws * len(plan.conditions)} "
                   "draws are not finished; their points use fewer draws (see column 'draws')",
                   err=True)
    typer.echo(f"table: {table_path}\nfigure: {figure_path}")


def indices(
    ctx: typer.Context,
    segment: int = typer.Option(..., "--segment", min=0, help="The varied segment s."),
    draw: int = typer.Option(..., "--draw", min=0, help="The draw d."),
    start: Optional[str] = typer.Option(None, "--start", help="First position of the job's training "
                                        "sequence [the start of segment s]."),
    count: Optional[str] = typer.Option(None, "--count", help="Positions to print [the segment "
                                        "length, up to the end of the sequence]."),
    out: Optional[Path] = typer.Option(None, "--out", help="Read the plan of this experiment folder "
                                       "(plan.json) instead of building it from the options."),
    preset: Preset = _PRESET,
    pretrain: Pretrain = _PRETRAIN,
    segments: Optional[int] = _SEGMENTS,
    draws: Optional[int] = _DRAWS,
    test_count: Optional[int] = _TEST_COUNT,
    layers: Optional[int] = _LAYERS,
    n_hidden: Optional[int] = _N_HIDDEN,
    unsup_updates: Optional[str] = _UNSUP,
    sup_updates: Optional[str] = _SUP,
    lr: Optional[float] = _LR,
    unsup_lr: Optional[float] = _UNSUP_LR,
    corruption: Optional[float] = _CORRUPTION,
    seed: Optional[int] = _SEED,
    snapshot_every: Optional[str] = _SNAPSHOT_EVERY,
    device: Optional[str] = _DEVICE,
    kernel: Optional[str] = _KERNEL,
    mnist_dir: Optional[Path] = _MNIST_DIR,
) -> None:
    """Print, one per line, the stream indices job (segment, draw) trained on at positions
    START..START+COUNT-1 of its training sequence (to audit what each model saw)."""
    import sys

    import numpy as np

    from onlinedeep.experiments.ordering_variance import Job, load_plan

    if out is not None:
        given = {"--segments": segments, "--draws": draws, "--test-count": test_count,
                 "--layers": layers, option_name("n_hidden"): n_hidden,
                 "--unsup-updates": unsup_updates,
                 "--sup-updates": sup_updates, "--lr": lr, "--unsup-lr": unsup_lr,
                 "--corruption": corruption, "--seed": seed, "--snapshot-every": snapshot_every,
                 "--device": device, "--kernel": kernel, "--mnist-dir": mnist_dir}
        clash = [name for name, value in given.items() if value is not None]
        # options with a default: given when typed, whatever the value (the source's name: typer
        # >= 0.20 carries its own click, whose ParameterSource is not click's)
        clash += [f"--{name}" for name in ("preset", "pretrain")
                  if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"]
        if clash:  # the folder's plan decides; an option beside it would be silently ignored
            raise typer.BadParameter(f"the plan is read from {out}/plan.json; give either --out "
                                     f"or plan options, not {', '.join(clash)} with it",
                                     param_hint="--out")
        try:
            plan = load_plan(out)
        except (FileNotFoundError, ValueError) as exc:  # as `report` does
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    else:
        plan = make_plan(preset, pretrain, segments, draws, test_count, layers, n_hidden,
                         unsup_updates, sup_updates, lr, unsup_lr, corruption, seed,
                         snapshot_every, device, kernel, mnist_dir)
    try:
        job = Job(plan.conditions[0], segment, draw)
        values = plan.indices(job, _count(start, "--start"), _count(count, "--count"))
    except ValueError as exc:  # a segment, draw or position outside the plan
        raise _bad_parameter(str(exc)) from None
    np.savetxt(sys.stdout, values, fmt="%d")


def register(app: typer.Typer) -> None:
    """Add the ``ordering-variance`` sub-app (``run``, ``report``) to ``app``."""
    sub = typer.Typer(help="The example-ordering experiment (paper 8.2, Figure 13) as resumable "
                      "jobs, locally (--jobs N) or on a Dask cluster (--scheduler ADDRESS).",
                      no_args_is_help=True)
    sub.command("run")(run)
    sub.command("report")(report)
    sub.command("indices")(indices)
    app.add_typer(sub, name="ordering-variance")
