"""Run a graph of long, independent jobs on a Dask cluster: a local one, or any existing one.

Experiments made of many training runs (the ordering-variance experiment, paper section 8.2) describe
their work as :class:`Task` objects with dependencies and hand them to :func:`run_tasks`. Both
executors are Dask clients, so one code path schedules the jobs:

- :func:`local_client` starts a ``distributed.LocalCluster`` of ``n_workers`` processes with one task
  slot each (``--jobs N``). A worker process that dies (killed, out of memory) is restarted by its
  nanny and only the task it was running is affected.
- :func:`remote_client` connects to an existing scheduler (``--scheduler ADDRESS``), for example one
  started by ``dask-jobqueue`` on Slurm, PBS or SGE, or by ``dask scheduler`` by hand.

A task that raises is reported with its error (:class:`Outcome`) and does not stop the others; the
tasks that depend on it are not started and are reported as skipped, naming the failed dependency.
"""
from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Task", "Outcome", "local_client", "remote_client", "run_tasks"]

#: Tries to start a local cluster before giving up (a nanny can fail to start on a loaded machine).
START_ATTEMPTS = 3


@dataclass(frozen=True)
class Task:
    """One job of a task graph.

    Parameters
    ----------
    key : str
        Unique name of the task (used in reports and by ``depends_on``).
    fn : callable
        Importable module-level function (it is pickled to the workers); called as ``fn(*args)``.
    args : tuple
        Picklable arguments.
    depends_on : tuple of str
        Keys of the tasks that must finish successfully before this one starts.
    """

    key: str
    fn: Callable[..., Any]
    args: tuple = ()
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """What became of one task.

    ``status`` is ``"done"`` (``value`` holds the return value), ``"failed"`` (``error`` is the
    one-line ``Type: message`` and ``traceback`` the full text) or ``"skipped"`` (a dependency
    failed or was skipped; ``error`` names it).
    """

    key: str
    status: Literal["done", "failed", "skipped"]
    value: Any = None
    error: str = ""
    traceback: str = field(default="", repr=False)


@contextlib.contextmanager
def local_client(n_workers: int) -> Iterator[Any]:
    """Start a local Dask cluster of ``n_workers`` processes, one task at a time each.

    Parameters
    ----------
    n_workers : int
        Number of worker processes (``--jobs``), at least 1.

    Yields
    ------
    distributed.Client
        Closed, with its cluster, when the context exits.

    Raises
    ------
    ValueError
        If ``n_workers < 1``.
    OSError
        If the workers do not start: a failed start (a nanny whose worker process does not come up)
        is retried :data:`START_ATTEMPTS` times first, and all workers are waited for.
    """
    if n_workers < 1:
        raise ValueError(f"n_workers must be at least 1, got {n_workers}")
    with _started_cluster(n_workers) as cluster, _client(cluster, n_workers) as client:
        yield client


def _start_cluster(n_workers: int):
    from distributed import LocalCluster

    # One thread per worker: a training job is one long sequential loop; parallelism comes from
    # running several jobs. No dashboard, and the scheduler's small HTTP server on a free port
    # (its default 8787 is often taken: a warning per start).
    # No worker time-to-live: a job runner stopped as a whole (Ctrl-Z, a suspended laptop, SIGSTOP)
    # wakes up with its scheduler seeing no heartbeat for that long; with the default 5 minutes it
    # dropped the worker and lost the job in progress (seen here after a 41-minute SIGSTOP). The
    # nanny already restarts a worker process that dies.
    import dask

    with dask.config.set({"distributed.scheduler.worker-ttl": None}):
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                            dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"},
                            silence_logs=logging.CRITICAL)


@contextlib.contextmanager
def _started_cluster(n_workers: int, attempts: int = START_ATTEMPTS) -> Iterator[Any]:
    """A LocalCluster whose workers all started; a failed start (a nanny whose worker process
    did not come up in time on a loaded machine) is retried, then is one OSError."""
    for attempt in range(1, attempts + 1):
        try:
            with _workers_ignore_sigint():
                cluster = _start_cluster(n_workers)
        except (OSError, RuntimeError, TimeoutError) as exc:
            if attempt == attempts:
                raise OSError(f"could not start {n_workers} local Dask worker process(es) in "
                              f"{attempts} attempts ({type(exc).__name__}: {exc}); try fewer "
                              f"--jobs") from exc
            continue
        with cluster:
            yield cluster
        return


@contextlib.contextmanager
def _workers_ignore_sigint() -> Iterator[None]:
    """Start processes with SIGINT ignored (inherited through exec, and Python then leaves it so):
    a Ctrl-C in the terminal reaches the whole process group, and it is the driver's to handle
    (it shuts the cluster down), not each worker's (a KeyboardInterrupt traceback apiece)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _client(cluster, n_workers: int, timeout: float = 120.0) -> Iterator[Any]:
    from distributed import Client

    with Client(cluster) as client:
        try:
            client.wait_for_workers(n_workers, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise OSError(f"only {len(client.scheduler_info().get('workers', {}))} of "
                          f"{n_workers} local Dask workers came up within {timeout:g} s; try "
                          f"fewer --jobs") from exc
        yield client


@contextlib.contextmanager
def remote_client(address: str, *, timeout: float = 30.0) -> Iterator[Any]:
    """Connect to an existing Dask scheduler.

    Parameters
    ----------
    address : str
        Scheduler address, e.g. ``tcp://10.0.0.5:8786`` (``--scheduler``).
    timeout : float
        Seconds to wait for the connection.

    Yields
    ------
    distributed.Client

    Raises
    ------
    OSError
        If the scheduler cannot be reached within ``timeout`` seconds.
    """
    from distributed import Client

    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise OSError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s "
                      f"({type(exc).__name__}: {exc}); check --scheduler and that the scheduler "
                      f"runs") from exc
    with client:
        yield client


def _check_graph(tasks: Sequence[Task]) -> dict[str, Task]:
    by_key: dict[str, Task] = {}
    for task in tasks:
        if task.key in by_key:
            raise ValueError(f"duplicate task key {task.key!r}")
        by_key[task.key] = task
    for task in tasks:
        for dep in task.depends_on:
            if dep not in by_key:
                raise ValueError(f"task {task.key!r} depends on {dep!r}, which is not in the graph")
    # Kahn's algorithm: a cycle would leave tasks that never become ready.
    indegree = {key: len(set(task.depends_on)) for key, task in by_key.items()}
    dependents = _dependents(by_key)
    ready = [key for key, n in indegree.items() if n == 0]
    seen = 0
    while ready:
        key = ready.pop()
        seen += 1
        for child in dependents[key]:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    if seen != len(by_key):
        cyclic = sorted(key for key, n in indegree.items() if n > 0)
        raise ValueError(f"task graph has a cycle through {cyclic}")
    return by_key


def _dependents(by_key: dict[str, Task]) -> dict[str, list[str]]:
    dependents: dict[str, list[str]] = {key: [] for key in by_key}
    for task in by_key.values():
        for dep in set(task.depends_on):
            dependents[dep].append(task.key)
    return dependents


def _format_error(exc: BaseException, tb: Any) -> tuple[str, str]:
    short = f"{type(exc).__name__}: {exc}"
    return short, "".join(traceback.format_exception(type(exc), exc, tb))


def run_tasks(
    client: Any,
    tasks: Iterable[Task],
    *,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> dict[str, Outcome]:
    """Run a task graph on a Dask client, each task once its dependencies are done, in the order
    listed.

    The tasks are handed to the cluster as it can take them: at most as many at a time as its
    worker threads (asked again after each task ends; at least one), and each time a slot frees,
    the first task in the list whose dependencies are done. So the list order is the start order
    among the tasks that can run, whatever the cluster's own heuristics: a chain of dependent jobs
    listed first runs link after link, not held up by independent jobs listed after it. (Handing
    Dask everything at once, its scheduler started independent jobs ahead of a chain's next link
    when that link became ready on a busy worker.) An adaptive cluster therefore sees at most as
    many tasks as it has threads: scale it to the size you want, as ``cluster.scale(jobs=N)`` does.

    Parameters
    ----------
    client : distributed.Client
        From :func:`local_client`, :func:`remote_client` or your own.
    tasks : iterable of Task
        Keys unique, dependencies inside the graph, no cycles.
    on_outcome : callable, optional
        Called in the calling thread with each :class:`Outcome` as it becomes known (progress bars,
        logs).

    Returns
    -------
    dict of str to Outcome
        One entry per task, in the order given.

    Raises
    ------
    ValueError
        If the graph is malformed (duplicate key, unknown dependency, cycle). A task's own exception
        is never raised here: it becomes a ``"failed"`` outcome, and the tasks that depend on it
        (directly or not) become ``"skipped"``.
    """
    from distributed import as_completed

    tasks = list(tasks)
    by_key = _check_graph(tasks)
    dependents = _dependents(by_key)
    waiting = {key: set(task.depends_on) for key, task in by_key.items()}
    outcomes: dict[str, Outcome] = {}

    def record(outcome: Outcome) -> None:
        outcomes[outcome.key] = outcome
        if on_outcome is not None:
            on_outcome(outcome)

    def skip_dependents(key: str, reason: str) -> None:
        for child in dependents[key]:
            if child not in outcomes:
                record(Outcome(child, "skipped", error=reason))
                skip_dependents(child, reason)

    # pure=False: every submission is a new computation, even if a long-lived scheduler has seen the
    # same function and arguments before (a rerun must really run the job again).
    key_of: dict[Any, str] = {}
    submitted: set[str] = set()
    queue = as_completed()

    def fill() -> None:
        slots = max(1, sum(client.nthreads().values())) - queue.count()
        for task in tasks:
            if slots <= 0:
                return
            key = task.key
            if not waiting[key] and key not in outcomes and key not in submitted:
                future = client.submit(task.fn, *task.args, pure=False)
                key_of[future] = key
                submitted.add(key)
                queue.add(future)
                slots -= 1

    fill()
    for future in queue:
        key = key_of[future]
        if future.status == "finished":
            record(Outcome(key, "done", value=future.result()))
            for child in dependents[key]:
                waiting[child].discard(key)
        else:
            if future.status == "cancelled":  # e.g. the scheduler went away
                short = full = "cancelled: the Dask scheduler dropped the task"
            else:
                short, full = _format_error(future.exception(), future.traceback())
            record(Outcome(key, "failed", error=short, traceback=full))
            skip_dependents(key, f"dependency {key!r} failed: {short}")
        future.release()
        fill()
    return {task.key: outcomes[task.key] for task in tasks}
