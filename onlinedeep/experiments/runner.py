"""Run an experiment's jobs: idempotent, with dependencies, on local processes or a Dask cluster.

An experiment describes its work as :class:`JobSpec` objects: a key, the jobs it depends on, an
importable function with picklable arguments, and the output the job writes last. A job whose
output exists (and passes the experiment's check) is finished and not run again, so rerunning an
experiment runs only what is left, and a job interrupted half-way resumes from its run folder.

:func:`run_jobs` runs the unfinished jobs through :func:`onlinedeep.experiments.executors.run_tasks`
on the Dask client ``connect()`` yields (``executors.local_client(n)`` for local worker processes,
``executors.remote_client(address)`` for a cluster), holding the job folder's lock, and records
every outcome in the folder's ``last_run.json``.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onlinedeep.experiments.executors import Outcome, Task, run_tasks
from onlinedeep.run_folder import JobFolder

__all__ = ["JobSpec", "finished", "pending", "run_jobs"]


@dataclass(frozen=True)
class JobSpec:
    """One job of an experiment.

    Attributes
    ----------
    key : str
        Unique name (also where its run folder lives in the job folder).
    fn : callable
        Importable module-level function, called as ``fn(*args)`` on a worker.
    args : tuple
        Picklable arguments.
    depends_on : tuple of str
        Keys of the jobs that must finish first.
    output : Path
        What the job writes last; its presence means the job has finished.
    check : callable ``(Path) -> bool``, optional
        Whether an existing output is sound (a damaged one is produced again).
    """

    key: str
    fn: Callable[..., Any]
    args: tuple
    output: Path
    depends_on: tuple[str, ...] = ()
    check: Callable[[Path], bool] | None = None


def finished(job: JobSpec) -> bool:
    """Whether ``job``'s output exists (and passes its check)."""
    return job.output.exists() and (job.check is None or job.check(job.output))


def pending(jobs: list[JobSpec]) -> list[JobSpec]:
    """The jobs not finished, in the order given."""
    return [job for job in jobs if not finished(job)]


def run_jobs(
    folder: JobFolder,
    jobs: list[JobSpec],
    connect: Callable[[], ContextManager[Any]],
    *,
    prepare: Callable[[], None] | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> dict[str, Outcome]:
    """Run the unfinished jobs, each as soon as the jobs it depends on have finished.

    Parameters
    ----------
    folder : JobFolder
    jobs : list of JobSpec
    connect : callable
        Returns a context manager yielding a ``distributed.Client``; called only if some job is
        left to run, before the first file is written.
    prepare : callable, optional
        Called under the folder's lock before any job runs (e.g. to write the plan).
    on_outcome : callable, optional
        Called with each job's :class:`Outcome` as it arrives.

    Returns
    -------
    dict of str to Outcome
        One per job, in the order given: finished before this call → ``done`` with value
        ``{"key": ..., "status": "already finished"}``; otherwise what ``run_tasks`` reports
        (``failed`` with the error, ``skipped`` when a dependency failed). Also written to the
        folder's ``last_run.json`` (with tracebacks), unless every job had finished before this
        call: then no file is written.

    Raises
    ------
    RunDirError
        If another process runs jobs in this folder.
    OSError
        If ``connect`` fails; then nothing is written.
    """
    todo = pending(jobs)
    todo_keys = {job.key for job in todo}
    outcomes = {job.key: Outcome(job.key, "done", value={"key": job.key, "status": "already finished"})
                for job in jobs}
    tasks = [Task(job.key, job.fn, job.args, tuple(d for d in job.depends_on if d in todo_keys))
             for job in todo]
    if not tasks and folder.last_run_path.exists():
        return outcomes  # a finished experiment: nothing runs and no file changes
    with connect() if tasks else contextlib.nullcontext() as client, folder.session():
        if prepare is not None:
            prepare()
        if tasks:
            outcomes.update(run_tasks(client, tasks, on_outcome=on_outcome))
        folder.write_json(folder.last_run_path, {
            key: {"status": o.status, "value": o.value, "error": o.error, "traceback": o.traceback}
            for key, o in outcomes.items()
        })
    return outcomes

