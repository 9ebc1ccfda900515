"""Running the example-ordering experiment: one job, and all of them on local processes or Dask.

See :mod:`onlinedeep.experiments.ordering_variance` for the protocol and the files.
"""
from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from infinite_mnist import MnistSourceWarning

from onlinedeep import threads as thread_policy
from onlinedeep.atomic import write_bytes
from onlinedeep.experiments import runner
from onlinedeep.experiments.executors import Outcome
from onlinedeep.experiments.ordering_variance.plan import (OUTPUT_FORMAT, SAMPLING_VERSION, Job,
                                                           OrderingPlan, _PLAN_MUTABLE)
from onlinedeep.experiments.ordering_variance.plan_file import check_plan, save_or_check_plan
from onlinedeep.run_folder import JobFolder
from onlinedeep.snapshot import h5_image

__all__ = ["run_dir", "branch_point", "output_path", "output_ok", "run_job", "pending_jobs",
           "run_experiment"]


def run_dir(plan: OrderingPlan, out: str | os.PathLike, job: Job) -> Path:
    """Run folder of ``job``: ``out/COND/NAME/`` (``out/COND/base/`` for every base stage)."""
    return JobFolder(out).run_folder(_folder_key(job)).path


def branch_point(plan: OrderingPlan, out: str | os.PathLike, condition: str, segment: int) -> Path:
    """Snapshot of the base run of ``condition`` at the start of ``segment`` (s ≥ 1, position
    s·L): the pinned snapshot its trainer writes there."""
    folder = JobFolder(out).run_folder(_folder_key(Job(condition)))
    return folder.snapshot_path(plan.boundary(segment), pinned=True)


def output_path(plan: OrderingPlan, out: str | os.PathLike, job: Job) -> Path:
    """What ``job`` produces, written last, so it exists iff the job has finished:
    ``out/COND/NAME.h5``, or for a base stage its branch point."""
    if job.is_stage:
        return branch_point(plan, out, job.condition, job.segment)
    return JobFolder(out).output(job.key)


def output_ok(path: str | os.PathLike) -> bool:
    """Whether a finished job's output can be used: a branch point (a stage's output) loads as a
    snapshot; an output file has its format, a finite ``probabilities`` dataset and its
    attributes. A damaged one means the job is not finished: it runs again."""
    from onlinedeep import snapshot
    from onlinedeep.run_folder import position_in_name

    path = Path(path)
    if position_in_name(path) is not None:
        try:
            snapshot.load(path)
        except snapshot.SnapshotError:
            return False
        return True
    try:
        with h5py.File(path, "r") as f:
            probabilities = f["probabilities"][...]
            return (f.attrs.get("format") == OUTPUT_FORMAT and probabilities.ndim == 2
                    and are_probabilities(probabilities)
                    and all(name in f.attrs for name in ("key", "position", "online_error")))
    except Exception:  # h5py raises OSError, KeyError, RuntimeError... on a damaged file
        return False


def are_probabilities(p: np.ndarray) -> bool:
    """Whether every row of ``p`` ((n, k) float) is a distribution: finite values in [0, 1]
    summing to 1 (to float32 rounding). Catches an output damaged where no checksum covers it."""
    p = np.asarray(p, dtype=np.float64)
    return bool(np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
                and np.allclose(p.sum(axis=-1), 1.0, atol=1e-3))


def _folder_key(job: Job) -> str:
    return f"{job.condition}/base" if job.is_base else job.key


def run_job(plan_data: dict[str, Any], out: str, key: str, threads: int | None = None) -> dict[str, Any]:
    """Run one job (or skip it if finished) and write what it produces.

    The job resumes from the latest snapshot in its run folder if there is one (the base stages and
    the base job share the base run's folder, so each continues the previous one); otherwise the
    base sequence and the draw jobs with s = 0 start from the initial weights, and a draw job with
    s ≥ 1 branches from the branch point at s·L (:meth:`OrderingPlan.branch_point`). The base run
    pins a snapshot at every segment boundary it passes; base stage s stops at its boundary.

    Parameters
    ----------
    plan_data : dict
        :meth:`OrderingPlan.to_dict` (plain data, so it pickles to any Dask worker).
    out : str
        Experiment folder (shared by all workers).
    key : str
        :attr:`Job.key`.
    threads : int, optional
        Torch and Numba threads for this job (None: leave the process's setting).

    Returns
    -------
    dict
        ``key``, ``status`` (``"finished"`` or ``"already finished"``), and when it ran
        ``started_from`` (``"initial weights"``, ``"branch point"``, ``"resumed"``),
        ``start_position`` (examples already trained when this call started), ``position`` (at the
        end) and ``online_error``.

    Raises
    ------
    Exception
        Whatever the trainer raises (damaged snapshot, non-finite loss, missing MNIST, ...), and
        FileNotFoundError if a branch point is missing: the executor reports it for this job.

    Notes
    -----
    A base stage produces its branch point. The base job and the draw jobs produce an output file
    (HDF5, written atomically, last): dataset ``probabilities`` (test_count, n_classes)
    float32, the softmax outputs on the test set; attributes ``format``, ``sampling_version``
    (of the draws, :data:`infinite_mnist.SAMPLING_VERSION`), ``key``, ``condition``,
    ``segment``, ``draw``, ``config`` (RunConfig JSON), ``schedule`` (Schedule JSON),
    ``test_start``, ``test_count``, ``position`` (examples trained), ``online_error``,
    ``started_from``, ``start_position``, ``seconds`` (wall time of this call) and ``network``: the
    trained network's final snapshot, relative to the output's folder (:mod:`onlinedeep.snapshot`).
    """
    from onlinedeep.model import predict_proba
    from onlinedeep.run_folder import RunFolder
    from onlinedeep.training import Trainer, branch, resume
    from onlinedeep.training.data import shared_stream

    plan = OrderingPlan.from_dict(plan_data)
    job = Job.from_key(key)
    output = output_path(plan, out, job)
    if output.exists():
        if output_ok(output):
            return {"key": key, "status": "already finished"}
        output.unlink()  # damaged: produced again (a draw job from its run folder's snapshots)
    thread_policy.set_job_threads(threads)
    t0 = time.perf_counter()
    config = plan.config(job)
    schedule = plan.schedule(job)
    with warnings.catch_warnings():  # the driver showed data warnings once, not once per worker
        warnings.simplefilter("ignore", MnistSourceWarning)
        stream = shared_stream(config)
    job_dir = run_dir(plan, out, job)
    # Execution-only fields (device, kernel, mnist_dir, ...) follow the current plan on resume.
    mutable = {k: v for k, v in config.to_dict().items() if k in _PLAN_MUTABLE - {"name", "out"}}

    if RunFolder(job_dir).has_snapshot():
        trainer = resume(job_dir, stream=stream, **mutable)
        started_from = "resumed"
    elif job.is_base or job.segment == 0:  # (a base stage has no snapshot only at stage 1)
        trainer = Trainer(config, schedule=schedule, stream=stream, run_dir=job_dir)
        started_from = "initial weights"
    else:
        point = branch_point(plan, out, job.condition, job.segment)
        if not point.is_file():
            raise FileNotFoundError(
                f"{point}: branch point of segment {job.segment} missing; base stage "
                f"{Job(job.condition, job.segment).key!r} writes it (rerun the experiment)"
            )
        trainer = branch(point, schedule=schedule, run_dir=job_dir, stream=stream, **mutable)
        started_from = "branch point"
    if trainer.schedule.to_dict() != schedule.to_dict():
        raise RuntimeError(f"{job_dir}: holds a run of another training sequence than job {key!r}; "
                           f"delete the folder to restart the job")
    start_position = trainer.position

    stop = plan.boundary(job.segment) if job.is_stage else plan.n_examples
    pins = []  # the missing branch points this call passes (existing ones are not rewritten)
    for s in range(1, plan.n_segments):
        point, position = branch_point(plan, out, job.condition, s), plan.boundary(s)
        if not job.is_base or position > stop or point.is_file():
            continue
        if position < start_position:
            raise RuntimeError(
                f"{point}: branch point missing, but the base run in {job_dir} is already at "
                f"position {start_position} > {position}; delete {job_dir} to retrain the base "
                f"sequence"
            )
        pins.append(position)
    result = trainer.run(stop=stop, snapshot_at=pins, progress=False)
    summary = {"key": key, "status": "finished", "started_from": started_from,
               "start_position": int(start_position), "position": int(result.position),
               "online_error": float(result.online_error)}
    if job.is_stage:
        return summary

    test_x = stream.floats(np.arange(plan.test_start, plan.test_start + plan.test_count, dtype=np.int64))
    probabilities = predict_proba(trainer.params, test_x).cpu().numpy()
    attrs = {
        "format": OUTPUT_FORMAT,
        "sampling_version": SAMPLING_VERSION,
        "key": job.key,
        "condition": job.condition,
        "segment": job.segment,
        "draw": job.draw,
        "config": trainer.config.to_json(),
        "schedule": json.dumps(schedule.to_dict(), sort_keys=True),
        "test_start": plan.test_start,
        "test_count": plan.test_count,
        "position": int(result.position),
        "online_error": float(result.online_error),
        "started_from": started_from,
        "start_position": int(start_position),
        "seconds": time.perf_counter() - t0,
        "network": os.path.relpath(result.snapshot, output.parent),
    }
    def fill(f: h5py.File) -> None:
        # checksummed: a flipped bit is found on reading, not averaged into a variance
        f.create_dataset("probabilities", data=probabilities, chunks=probabilities.shape,
                         fletcher32=True)
        for name, value in attrs.items():
            f.attrs[name] = value

    write_bytes(output, h5_image(fill), what="the job's output")  # a full disk: one clean error
    return summary


# ---------------------------------------------------------------------- the whole experiment
def _job_specs(plan: OrderingPlan, out: str | os.PathLike, threads: int | None = None,
               segments: Iterable[int] | None = None) -> list[runner.JobSpec]:
    plan_data = plan.to_dict()
    return [runner.JobSpec(job.key, run_job, (plan_data, str(out), job.key, threads),
                           output_path(plan, out, job), tuple(d.key for d in plan.depends_on(job)),
                           check=output_ok)
            for job in plan.jobs(segments)]


def pending_jobs(plan: OrderingPlan, out: str | os.PathLike,
                 segments: Iterable[int] | None = None) -> list[Job]:
    """Jobs of ``plan`` (of ``segments`` only, see :meth:`OrderingPlan.jobs`) without an output
    file in ``out`` (not finished), in plan order."""
    return [Job.from_key(spec.key) for spec in runner.pending(_job_specs(plan, out,
                                                                         segments=segments))]


def run_experiment(
    plan: OrderingPlan,
    out: str | os.PathLike,
    connect: Callable[[], ContextManager[Any]],
    *,
    threads: int | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    segments: Iterable[int] | None = None,
) -> dict[str, Outcome]:
    """Run every unfinished job of ``plan`` (:func:`onlinedeep.experiments.runner.run_jobs`).

    Parameters
    ----------
    plan : OrderingPlan
    out : path
        Experiment folder (created; must be visible to every worker).
    connect : callable
        Returns a context manager yielding a ``distributed.Client``, e.g.
        ``lambda: executors.local_client(2)``; called only if some job is left to run.
    threads : int, optional
        Torch/Numba threads per job.
    on_outcome : callable, optional
        Called with each submitted job's :class:`Outcome` as it arrives.
    segments : iterable of int, optional
        Run only these segments' draws and the base stages they need (:meth:`OrderingPlan.jobs`),
        e.g. the segments another machine has not run.

    Returns
    -------
    dict of str to Outcome
        One per job run or found finished, in plan order (see ``run_jobs``); also in
        ``out/last_run.json``.

    Raises
    ------
    ConfigError
        If ``out`` holds a different experiment (checked before anything is written), or
        ``segments`` names no segment of the plan.
    RunDirError
        If another process runs this experiment folder.
    OSError
        If ``connect`` fails (e.g. the scheduler cannot be reached); then nothing is written.
    """
    check_plan(plan, out)
    return runner.run_jobs(JobFolder(out), _job_specs(plan, out, threads, segments), connect,
                           prepare=lambda: save_or_check_plan(plan, out), on_outcome=on_outcome)
