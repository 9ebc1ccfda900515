"""What every long command does around its work: checks before it starts (the data can be read,
the disk has room), Ctrl-C while its jobs run, and the summary of its jobs' outcomes.

A long command (``train``, ``ordering-variance run``, ``experiment run``) that fails on missing
MNIST files or a full disk should fail at once, with one line, before any job starts or any file is
written.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable, NoReturn

import typer

__all__ = ["check_data", "check_space_for_runs", "StopOnCtrlC", "report_outcomes", "job_bar"]


def check_data(configs: Iterable) -> None:
    """Build the stream of each distinct data source of ``configs`` (``RunConfig``), so a missing
    or damaged MNIST file is one error now; a warning about the data (unofficial checksum,
    fallback sample) is shown once here.

    Raises
    ------
    infinite_mnist.MnistNotFoundError, infinite_mnist.MnistFormatError, ConfigError
    """
    from onlinedeep.training.data import make_stream

    seen = set()
    for config in configs:
        key = (config.mnist_dir, config.deformation, config.stream_seed)
        if key not in seen:  # built anew, not shared_stream's cache: $ONLINEDEEP_MNIST_DIR may
            seen.add(key)    # have changed since (it is not part of the cache key)
            make_stream(config)


def check_space_for_runs(folder: str | Path, configs: Iterable, what: str) -> None:
    """Refuse to start runs of ``configs`` in ``folder`` without the room for their snapshots
    (start, end and the periodic ones kept, each :func:`onlinedeep.snapshot.estimated_size`; an
    estimate, from the configuration: a resumed run's snapshots already on disk are counted again).

    Raises
    ------
    onlinedeep.atomic.DiskFullError
    """
    from onlinedeep.atomic import check_free_space
    from onlinedeep.snapshot import estimated_size

    def kept(c) -> int:  # periodic snapshots kept at once (keep_snapshots 0 keeps them all)
        return c.keep_snapshots or c.total_updates // c.snapshot_every

    needed = sum(estimated_size(c) * (2 + kept(c)) for c in configs)
    check_free_space(folder, needed, what)


class StopOnCtrlC:
    """SIGINT/SIGTERM while the experiment runs: the first one says what happens and stops (the
    cluster is shut down; running jobs resume from their last snapshot next time); a second one
    exits at once."""

    def __enter__(self):
        import signal
        import threading

        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._previous[s] = signal.signal(s, self._handler)
        self._received = False
        return self

    def _handler(self, signum, frame):
        import os

        if self._received:
            typer.secho("stopped at once; finished jobs are kept, the others resume from their "
                        "last snapshot", err=True, fg=typer.colors.YELLOW)
            sys.stderr.flush()
            os._exit(130)
        self._received = True
        typer.secho("\nstopping: shutting the workers down (Ctrl-C again to stop at once)",
                    err=True, fg=typer.colors.YELLOW)
        raise KeyboardInterrupt

    def __exit__(self, *exc):
        import signal

        for s, h in self._previous.items():
            signal.signal(s, h)


def duration(seconds: float) -> str:
    """``"1d 2h 03m"``, ``"2h 03m"``, ``"4m 05s"`` or ``"7s"`` (an ETA, rounded to seconds)."""
    seconds = int(round(seconds))
    d, rest = divmod(seconds, 86_400)
    h, rest = divmod(rest, 3_600)
    m, s = divmod(rest, 60)
    if d:
        return f"{d}d {h}h {m:02d}m"
    if h:
        return f"{h}h {m:02d}m"
    return f"{m}m {s:02d}s" if m else f"{s}s"


def report_outcomes(outcomes: dict, name: str, out, last_run: Path) -> None:
    """Print how the jobs of ``experiment run NAME`` ended (``runner`` outcomes by key) and what
    to do next; exit status 1 when a job failed or was not started (its tracebacks: ``last_run``).

    Raises
    ------
    typer.Exit
        With code 1 if any job failed or was skipped.
    """
    failed = [o for o in outcomes.values() if o.status == "failed"]
    skipped = [o for o in outcomes.values() if o.status == "skipped"]
    before = sum(1 for o in outcomes.values() if o.status == "done"
                 and (o.value or {}).get("status") == "already finished")
    typer.echo(f"{len(outcomes)} jobs: {before} already finished, "
               f"{len(outcomes) - before - len(failed) - len(skipped)} finished now, "
               f"{len(failed)} failed, {len(skipped)} not started (failed dependency)")
    for o in failed:
        typer.echo(f"FAILED {o.key}: {o.error}", err=True)
    for o in outcomes.values():
        if o.status == "done" and (o.value or {}).get("warning"):
            typer.secho(f"warning: {o.value['warning']}", err=True, fg=typer.colors.YELLOW)
    if failed or skipped:
        typer.echo(f"tracebacks: {last_run}; fix the cause and rerun the same "
                   "command (finished jobs are skipped).", err=True)
        raise typer.Exit(1)
    typer.echo(f"all jobs finished; next: onlinedeep experiment report {name} --out {out}")


def exit_interrupted(total: int, left: int, *, now: int | None = None,
                     others: str = "resume from their last snapshot") -> NoReturn:
    """Say, after Ctrl-C, how many of ``total`` jobs have finished (``now`` of them in this run)
    and how the ``left`` others go on, with the command that continues; exit with status 130."""
    import shlex

    typer.secho(f"interrupted: {total - left} of {total} jobs finished"
                + (f" ({now} in this run)" if now is not None else "")
                + f"; the {left} others {others}; continue with the same command: onlinedeep "
                f"{shlex.join(sys.argv[1:])}", err=True, fg=typer.colors.YELLOW)
    raise typer.Exit(130)


def job_bar(total: int, name: str):
    """A tqdm bar over ``total`` jobs and the ``on_outcome`` callback that advances it and prints
    each job that did not finish (``runner`` outcomes)."""
    from tqdm import tqdm

    bar = tqdm(total=total, unit="job", desc=name, dynamic_ncols=True)

    def on_outcome(outcome) -> None:
        bar.update(1)
        if outcome.status != "done":
            bar.write(f"{outcome.status}: {outcome.key}: {outcome.error}")

    return bar, on_outcome
