"""The example-ordering experiment (Erhan et al. 2010, section 8.2, Figure 13) as resumable jobs.

Protocol
--------
A fixed training sequence of N examples (the base :class:`infinite_mnist.Schedule`) is cut into S
segments. For each segment s and draw d, a job trains the same network (same initial weights, same
configuration) on the base sequence with segment s replaced by a fresh range of the stream; the
ranges of all draws are disjoint from the base sequence and from each other. For each s, the
*output variance* is the variance across the D trained networks of their softmax outputs on a fixed
test set (the 10,000 MNIST test digits, stream indices 0-9,999), averaged over test examples and
classes. One curve per *condition* (with pre-training, without), plotted against s/S.

Cost
----
Job (s, d) shares its first s segments with the base sequence, so the base sequence is trained once
per condition with a snapshot (a *branch point*) at every segment boundary, and job (s, d) starts
from the branch point at s: Σ_s (S - s) segments per draw instead of S·S (:meth:`OrderingPlan.costs`).
The base run is cut into stages (one per boundary) so that the draws of segment s start as soon as
its branch point exists: on many workers the experiment takes about one base run of wall time, not
nearly two.

Files (``out`` = the experiment folder, on a filesystem every worker sees)
--------------------------------------------------------------------------
=====================================  =============================================================
``plan.json``                          the :class:`OrderingPlan`; a rerun must match it
``COND/base/``, ``COND/sSS-dDD/``      trainer run folders (``snapshots/``, ``log.txt``, ...) of the
                                       base run (all its stages) and of each draw job
``COND/base/snapshots/*.pinned.h5``    among them, at positions s·L: the branch points
``COND/base.h5``, ``COND/sSS-dDD.h5``  each job's output (:func:`run_job`), written atomically last:
                                       its presence means "finished"
``last_run.json``                      outcome of every job of the latest ``run`` (errors included)
``ordering_variance.h5``               the aggregate table (:func:`aggregate`)
``figure13.png``                       the figure (:func:`plot_figure13`)
=====================================  =============================================================

A rerun skips finished jobs, resumes interrupted ones from the last snapshot in their run folder,
and starts the others; a job that fails is reported with its error and does not stop the others.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from onlinedeep.config import BRANCH_MUTABLE, ConfigError, RunConfig
from onlinedeep.experiments.executors import Outcome, Task, run_tasks
from onlinedeep.snapshot import atomic_file, snapshot_name

__all__ = [
    "Job",
    "OrderingPlan",
    "PLAN_PRESETS",
    "run_job",
    "run_experiment",
    "pending_jobs",
    "load_plan",
    "save_or_check_plan",
    "check_plan",
    "report",
    "output_variance",
    "aggregate",
    "plot_figure13",
    "load_table",
]

# The MNIST test digits are stream indices 0..9,999 (infinite_mnist.stream.N_TEST).
N_TEST_DIGITS = 10_000
PLAN_FILE = "plan.json"
LAST_RUN_FILE = "last_run.json"
TABLE_FILE = "ordering_variance.h5"
FIGURE_FILE = "figure13.png"
OUTPUT_FORMAT = "onlinedeep.experiments.ordering_variance.job/1"
TABLE_FORMAT = "onlinedeep.experiments.ordering_variance.table/1"

# Fields of a condition's RunConfig that may change between two `run` calls on the same folder: they
# change where and how jobs execute or report, never the updates. sup_updates is *not* among them
# here (unlike a trainer resume): it changes N and thus every segment.
_PLAN_MUTABLE = BRANCH_MUTABLE - {"sup_updates"}
# Fields that define the examples of the training sequence: all conditions must agree on them, so the
# conditions differ only by how they train, never by what they see.
_STREAM_FIELDS = ("split", "stream_start", "deformation", "stream_seed", "chunk_size")


@dataclass(frozen=True)
class Job:
    """One job of the experiment.

    Three kinds, by ``(segment, draw)``:

    - ``(s, d)``, d ≥ 0: a *draw job*, segment s replaced by draw d's range (``COND/sSS-dDD``);
    - ``(s, -1)``, s ≥ 1: a *base stage*, trains the base sequence up to the start of segment s and
      pins the branch point there (``COND/base-sSS``); stage s continues stage s - 1 in the same run
      folder, so the draw jobs of segment s start as soon as stage s is done, not after the whole
      base run;
    - ``(-1, -1)``: the *base job*, finishes the base run (``COND/base``).

    Attributes
    ----------
    condition : str
        Condition name (the pre-training mode: ``"dae"``, ``"rbm"`` or ``"none"``).
    segment : int
        Replaced segment s in ``0 .. S-1`` (draw job), the stage's boundary s ≥ 1, or -1.
    draw : int
        Draw d in ``0 .. D-1``, or -1 for the base sequence.
    """

    condition: str
    segment: int = -1
    draw: int = -1

    @property
    def is_base(self) -> bool:
        """Whether this job trains the base sequence (a base stage or the base job)."""
        return self.draw < 0

    @property
    def is_stage(self) -> bool:
        """Whether this job is a base stage (its product is a branch point, no output file)."""
        return self.draw < 0 and self.segment >= 1

    @property
    def name(self) -> str:
        """Name inside the condition's folder: ``base``, ``base-s03`` or ``s03-d07``."""
        if self.is_stage:
            return f"base-s{self.segment:02d}"
        return "base" if self.is_base else f"s{self.segment:02d}-d{self.draw:02d}"

    @property
    def key(self) -> str:
        """Unique key, ``condition/name``."""
        return f"{self.condition}/{self.name}"

    @classmethod
    def from_key(cls, key: str) -> "Job":
        """Inverse of :attr:`key`.

        Raises
        ------
        ValueError
            If ``key`` is not ``COND/base``, ``COND/base-sSS`` or ``COND/sSS-dDD``.
        """
        condition, _, name = key.partition("/")
        match = re.fullmatch(r"base|base-s(\d+)|s(\d+)-d(\d+)", name)
        if not condition or match is None:
            raise ValueError(f"job key: expected 'CONDITION/base', 'CONDITION/base-sSS' or "
                             f"'CONDITION/sSS-dDD', found {key!r}")
        stage, segment, draw = match.groups()
        if stage is not None:
            return cls(condition, int(stage))
        if segment is not None:
            return cls(condition, int(segment), int(draw))
        return cls(condition)


@dataclass
class OrderingPlan:
    """Everything that defines the experiment; stored as ``plan.json`` in its folder.

    Parameters
    ----------
    configs : dict of str to RunConfig
        One training configuration per condition, keyed by condition name. All have the same
        ``total_updates`` (N, examples, unsupervised included) and the same stream fields
        (``split``, ``stream_start``, ``deformation``, ``stream_seed``, ``chunk_size``).
    n_segments : int
        S; N must be a multiple of S, and the segment length a multiple of ``chunk_size`` (branch
        points are chunk boundaries, so a branched run feeds the kernels the same chunks).
    n_draws : int
        D ≥ 2 draws per segment.
    test_start, test_count : int
        Test set = stream indices ``[test_start, test_start + test_count)``; default the 10,000
        MNIST test digits (indices 0-9,999).
    draw_start : int or None
        Training id of the first fresh range; default right after the base sequence
        (``stream_start + N``). Draw (s, d) uses training ids
        ``draw_start + (s·D + d)·L .. + L`` (L the segment length). The same ranges serve every
        condition (paired comparison: the conditions see the same examples).

    Raises
    ------
    ConfigError
        On any inconsistency, naming the field, what was expected and what was found.
    """

    configs: dict[str, RunConfig]
    n_segments: int
    n_draws: int
    test_start: int = 0
    test_count: int = 10_000
    draw_start: int | None = None

    def __post_init__(self) -> None:
        if not self.configs:
            raise ConfigError("configs: expected at least one condition, found none")
        for name, cfg in self.configs.items():
            if not isinstance(cfg, RunConfig):
                raise ConfigError(f"configs[{name!r}]: expected a RunConfig, found {type(cfg).__name__}")
            if not name or "/" in name or name in (".", ".."):
                raise ConfigError(f"condition name: expected a folder name without '/', found {name!r}")
        first_name, first = next(iter(self.configs.items()))
        for name, cfg in self.configs.items():
            if cfg.total_updates != first.total_updates:
                raise ConfigError(
                    f"configs[{name!r}]: expected the same N = unsup_updates + sup_updates as "
                    f"{first_name!r} ({first.total_updates}), found {cfg.total_updates}"
                )
            for field in _STREAM_FIELDS:
                if getattr(cfg, field) != getattr(first, field):
                    raise ConfigError(
                        f"configs[{name!r}].{field}: expected the same value as {first_name!r} "
                        f"({getattr(first, field)!r}), found {getattr(cfg, field)!r}"
                    )
        n = first.total_updates
        if not isinstance(self.n_segments, int) or not 1 <= self.n_segments <= n:
            raise ConfigError(f"n_segments: expected an integer in 1..N={n}, found {self.n_segments!r}")
        if n % self.n_segments:
            raise ConfigError(
                f"n_segments: expected a divisor of N={n} (equal segments), found {self.n_segments}"
            )
        if self.segment_length % first.chunk_size:
            raise ConfigError(
                f"n_segments: the segment length N/S = {self.segment_length} must be a multiple of "
                f"chunk_size={first.chunk_size} (branch points are chunk boundaries)"
            )
        if not isinstance(self.n_draws, int) or self.n_draws < 2:
            raise ConfigError(f"n_draws: expected an integer >= 2 (a variance needs two draws), "
                              f"found {self.n_draws!r}")
        if not isinstance(self.test_start, int) or self.test_start < 0:
            raise ConfigError(f"test_start: expected a stream index >= 0, found {self.test_start!r}")
        if not isinstance(self.test_count, int) or self.test_count < 1:
            raise ConfigError(f"test_count: expected an integer >= 1, found {self.test_count!r}")
        if self.test_start + self.test_count > N_TEST_DIGITS:
            # indices from 10,000 on are training digits, whose deformations are trained on
            raise ConfigError(
                f"test_count: expected test_start + test_count <= {N_TEST_DIGITS:,} (the test set "
                f"must be MNIST test digits, stream indices 0-{N_TEST_DIGITS - 1}), found "
                f"{self.test_start} + {self.test_count}"
            )
        if self.draw_start is None:
            self.draw_start = first.stream_start + n
        base_stop = first.stream_start + n
        draws_stop = self.draw_start + self.n_segments * self.n_draws * self.segment_length
        if not isinstance(self.draw_start, int) or (
            self.draw_start < base_stop and draws_stop > first.stream_start
        ):
            raise ConfigError(
                f"draw_start: the fresh ranges [{self.draw_start}, {draws_stop}) must not overlap "
                f"the base sequence [{first.stream_start}, {base_stop}) (training ids)"
            )

    # ------------------------------------------------------------------ geometry
    @property
    def conditions(self) -> list[str]:
        """Condition names, in plan order."""
        return list(self.configs)

    @property
    def n_examples(self) -> int:
        """N: examples (= updates) of every job's training sequence, unsupervised included."""
        return next(iter(self.configs.values())).total_updates

    @property
    def segment_length(self) -> int:
        """L = N / S, examples per segment."""
        return self.n_examples // self.n_segments

    @property
    def split(self) -> str:
        """The Schedule split of every condition (``protocol`` or ``all``)."""
        return next(iter(self.configs.values())).split

    def boundary(self, segment: int) -> int:
        """Stream position where segment ``segment`` starts (``segment · L``)."""
        return segment * self.segment_length

    def fraction(self, segment: int) -> float:
        """Position of segment ``segment`` as a fraction of training (``s / S``; Figure 13's x)."""
        return segment / self.n_segments

    def draw_range(self, segment: int, draw: int) -> tuple[int, int]:
        """Fresh range ``(start, length)`` of training ids swapped in by job (segment, draw).

        Raises
        ------
        ValueError
            If ``segment`` or ``draw`` is out of range.
        """
        self._check_segment_draw(segment, draw)
        index = segment * self.n_draws + draw
        return self.draw_start + index * self.segment_length, self.segment_length

    def _check_segment_draw(self, segment: int, draw: int) -> None:
        if not 0 <= segment < self.n_segments:
            raise ValueError(f"segment: expected 0..{self.n_segments - 1}, found {segment}")
        if not 0 <= draw < self.n_draws:
            raise ValueError(f"draw: expected 0..{self.n_draws - 1}, found {draw}")

    def base_schedule(self):
        """The base training sequence: ``Schedule.contiguous(N, start=stream_start, split=split)``."""
        from infinite_mnist import Schedule

        first = next(iter(self.configs.values()))
        return Schedule.contiguous(self.n_examples, start=first.stream_start, split=first.split)

    def schedule(self, job: Job):
        """The training sequence of ``job``: the base one, with segment s swapped for its range.

        Returns
        -------
        infinite_mnist.Schedule
            Total N; only indices, nothing is generated here.
        """
        base = self.base_schedule()
        if job.is_base:
            return base
        new_start, length = self.draw_range(job.segment, job.draw)
        return base.replace(self.boundary(job.segment), length, new_start)

    def config(self, job: Job) -> RunConfig:
        """The RunConfig of ``job``'s condition (a copy)."""
        if job.condition not in self.configs:
            raise ValueError(f"condition: expected one of {self.conditions}, found {job.condition!r}")
        return dataclasses.replace(self.configs[job.condition])

    def jobs(self) -> list[Job]:
        """All jobs: per condition the base stages s = 1..S-1, the base job, then the draw jobs
        (s, d) for s = 0..S-1, d = 0..D-1."""
        out = []
        for condition in self.configs:
            out.extend(Job(condition, s) for s in range(1, self.n_segments))
            out.append(Job(condition))
            out.extend(Job(condition, s, d) for s in range(self.n_segments) for d in range(self.n_draws))
        return out

    def depends_on(self, job: Job) -> tuple[Job, ...]:
        """Jobs that must finish first (all of the same condition).

        Draw job (s, d), s ≥ 1, needs base stage s (its branch point); draw job (0, d) differs from
        the base sequence from its first example, so it starts from the initial weights and needs
        nothing. Base stage s needs stage s - 1, and the base job the last stage.
        """
        c = job.condition
        if not job.is_base:
            return (Job(c, job.segment),) if job.segment >= 1 else ()
        previous = job.segment - 1 if job.is_stage else self.n_segments - 1
        return (Job(c, previous),) if previous >= 1 else ()

    # ------------------------------------------------------------------ files
    def run_dir(self, out: str | os.PathLike, job: Job) -> Path:
        """Trainer run folder of ``job``: ``out/COND/NAME/`` (``out/COND/base/`` for every stage)."""
        return Path(out) / job.condition / ("base" if job.is_base else job.name)

    def branch_point(self, out: str | os.PathLike, condition: str, segment: int) -> Path:
        """Snapshot of the base run of ``condition`` at the start of ``segment`` (s ≥ 1, position
        s·L): the pinned snapshot its trainer writes there."""
        from onlinedeep.training.loop import SNAPSHOT_DIR

        return (self.run_dir(out, Job(condition)) / SNAPSHOT_DIR
                / snapshot_name(self.boundary(segment), pinned=True))

    def output_path(self, out: str | os.PathLike, job: Job) -> Path:
        """What ``job`` produces, written last, so it exists iff the job has finished:
        ``out/COND/NAME.h5``, or for a base stage its branch point."""
        if job.is_stage:
            return self.branch_point(out, job.condition, job.segment)
        return Path(out) / job.condition / f"{job.name}.h5"

    def costs(self) -> dict[str, int]:
        """Training-run, job and update counts of the whole experiment, with and without prefix
        sharing.

        Returns
        -------
        dict of str to int
            ``runs_shared`` (C·(1 + S·D) training runs, the base runs included), ``jobs_shared``
            (C·(S + S·D) = ``len(jobs())``: each base run is cut into S stages), ``updates_shared``
            (C·(N + D·L·Σ_{s<S}(S - s))), ``jobs_unshared`` (C·S·D runs, each from scratch, no base
            run), ``updates_unshared`` (C·S·D·N); C the number of conditions, updates = examples.
        """
        c, s, d, n, seg = (len(self.configs), self.n_segments, self.n_draws, self.n_examples,
                           self.segment_length)
        return {
            "runs_shared": c * (1 + s * d),
            "jobs_shared": c * (s + s * d),
            "updates_shared": c * (n + d * seg * sum(s - k for k in range(s))),
            "jobs_unshared": c * s * d,
            "updates_unshared": c * s * d * n,
        }

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (what ``plan.json`` holds)."""
        return {
            "format": "onlinedeep.experiments.ordering_variance.plan/1",
            "n_segments": self.n_segments,
            "n_draws": self.n_draws,
            "test_start": self.test_start,
            "test_count": self.test_count,
            "draw_start": self.draw_start,
            "configs": {name: cfg.to_dict() for name, cfg in self.configs.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "plan") -> "OrderingPlan":
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        ConfigError
            If a field is missing or invalid; the message starts with ``where``.
        """
        try:
            configs = {
                name: RunConfig.from_dict(cfg, where=f"{where}: configs[{name!r}]")
                for name, cfg in data["configs"].items()
            }
            return cls(
                configs=configs,
                n_segments=data["n_segments"],
                n_draws=data["n_draws"],
                test_start=data["test_start"],
                test_count=data["test_count"],
                draw_start=data["draw_start"],
            )
        except KeyError as exc:
            raise ConfigError(f"{where}: missing field {exc.args[0]!r}") from None
        except (TypeError, AttributeError) as exc:
            raise ConfigError(f"{where}: malformed ({exc})") from None

    def differences(self, other: "OrderingPlan") -> list[str]:
        """Human-readable differences that matter (ignoring execution-only config fields).

        Returns
        -------
        list of str
            Empty if both plans define the same jobs on the same data.
        """
        diffs = []
        for field in ("n_segments", "n_draws", "test_start", "test_count", "draw_start"):
            if getattr(self, field) != getattr(other, field):
                diffs.append(f"{field}: {getattr(self, field)!r} vs {getattr(other, field)!r}")
        if self.conditions != other.conditions:
            diffs.append(f"conditions: {self.conditions} vs {other.conditions}")
        else:
            for name in self.conditions:
                for field, (a, b) in self.configs[name].diff(other.configs[name]).items():
                    if field not in _PLAN_MUTABLE:
                        diffs.append(f"configs[{name!r}].{field}: {a!r} vs {b!r}")
        return diffs

    @classmethod
    def preset(
        cls,
        name: str,
        *,
        pretrain: str = "dae",
        n_segments: int | None = None,
        n_draws: int | None = None,
        test_count: int | None = None,
        **config_overrides: Any,
    ) -> "OrderingPlan":
        """A plan from a preset: conditions ``pretrain`` and ``"none"``.

        Parameters
        ----------
        name : {"paper", "smoke"}
            ``paper``: N = 10M (2.5M unsupervised + 7.5M supervised with pre-training), S = 10,
            D = 10, one hidden layer of 2,000 units (paper 8.2). ``smoke``: N = 4,000 (1,000
            unsupervised), S = 4, D = 3, 32 hidden units, the reference kernel (for CI: the whole
            pipeline in well under a minute on 2 cores).
        pretrain : {"dae", "rbm"}
            Pre-training of the pre-trained condition.
        n_segments, n_draws, test_count : int, optional
            Override the preset's S, D and test-set size.
        **config_overrides
            :class:`RunConfig` fields applied to both conditions (``None`` = not given). Setting
            ``unsup_updates``/``sup_updates`` sets the pre-trained condition's phases; the condition
            without pre-training gets their sum, all supervised (paper 5.3).

        Raises
        ------
        ConfigError
            On an unknown preset, a bad ``pretrain``, or an invalid value.
        """
        if name not in PLAN_PRESETS:
            raise ConfigError(f"preset: expected one of {sorted(PLAN_PRESETS)}, found {name!r}")
        if pretrain not in ("dae", "rbm"):
            raise ConfigError(f"pretrain: expected 'dae' or 'rbm' (the other condition is 'none'), "
                              f"found {pretrain!r}")
        preset = PLAN_PRESETS[name]
        overrides = {**preset["config"], **{k: v for k, v in config_overrides.items() if v is not None}}
        with_pretraining = RunConfig.preset(preset["run_preset"], **{**overrides, "pretrain": pretrain})
        n = with_pretraining.total_updates
        without = RunConfig.preset(
            preset["run_preset"],
            **{**overrides, "pretrain": "none", "pretrain_layers": None,
               "unsup_updates": 0, "sup_updates": n},
        )
        return cls(
            configs={pretrain: with_pretraining, "none": without},
            n_segments=n_segments or preset["n_segments"],
            n_draws=n_draws or preset["n_draws"],
            test_count=test_count or preset["test_count"],
        )


PLAN_PRESETS: dict[str, dict[str, Any]] = {
    # Paper 8.2: 10M examples, 10 segments of 1M, 10 draws, 1 hidden layer (2,000 units).
    "paper": {"run_preset": "paper", "n_segments": 10, "n_draws": 10, "test_count": 10_000,
              "config": {"layers": 1}},
    # CI-sized: the same pipeline on a few thousand examples of a small net. The reference kernel:
    # compiling the Numba kernels in every fresh worker process costs more than a smoke job trains.
    "smoke": {"run_preset": "smoke", "n_segments": 4, "n_draws": 3, "test_count": 10_000,
              "config": {"layers": 1, "n_hidden": 32, "unsup_updates": 1_000, "sup_updates": 3_000,
                         "chunk_size": 250, "snapshot_every": 500, "window": 1_000,
                         "log_every": 250, "keep_snapshots": 2, "kernel": "reference"}},
}


# ---------------------------------------------------------------------- small I/O helpers
def _write_json_atomic(path: Path, data: Any) -> None:
    with atomic_file(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def load_plan(out: str | os.PathLike) -> OrderingPlan:
    """Read ``out/plan.json``.

    Raises
    ------
    FileNotFoundError
        If there is no plan (``run`` was never started on this folder).
    ConfigError
        If the file is not a valid plan.
    """
    path = Path(out) / PLAN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no experiment plan here (run `onlinedeep ordering-variance "
                                f"run --out {out}` first)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    return OrderingPlan.from_dict(data, where=str(path))


def check_plan(plan: OrderingPlan, out: str | os.PathLike) -> None:
    """Check that ``out`` holds no experiment, or the same one as ``plan``; writes nothing.

    Execution-only fields (device, kernel, mnist_dir, logging and snapshot cadence) may differ.

    Raises
    ------
    ConfigError
        If the folder holds a different experiment (the message lists the differences).
    """
    path = Path(out) / PLAN_FILE
    if path.exists():
        old = load_plan(out)
        diffs = old.differences(plan)
        if diffs:
            raise ConfigError(
                f"{path}: this folder holds a different experiment (stored vs requested): "
                + "; ".join(diffs) + ". Use another --out, or the same options as before."
            )


def save_or_check_plan(plan: OrderingPlan, out: str | os.PathLike) -> None:
    """:func:`check_plan`, then write ``out/plan.json`` (with the new execution-only values).

    Raises
    ------
    ConfigError
        If the folder holds a different experiment (the message lists the differences).
    """
    check_plan(plan, out)
    _write_json_atomic(Path(out) / PLAN_FILE, plan.to_dict())


# ---------------------------------------------------------------------- one job
_STREAMS: dict[tuple, Any] = {}


def _stream_for(config: RunConfig):
    # One stream per worker process and data source: loading and checking MNIST takes a moment, and
    # the generator is stateless (safe to share between the threads of a Dask worker).
    from onlinedeep.training.loop import make_stream

    key = (config.mnist_dir, config.deformation, config.stream_seed)
    if key not in _STREAMS:
        _STREAMS[key] = make_stream(config)
    return _STREAMS[key]


def _set_threads(threads: int | None) -> None:
    if threads is None:
        return
    import numba
    import torch

    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


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
    (HDF5, written atomically, last): dataset ``probabilities`` (test_count, 10)
    float32, the softmax outputs on the test set; attributes ``format``, ``key``, ``condition``,
    ``segment``, ``draw``, ``config`` (RunConfig JSON), ``schedule`` (Schedule JSON),
    ``test_start``, ``test_count``, ``position`` (examples trained), ``online_error``,
    ``started_from``, ``start_position``, ``seconds`` (wall time of this call) and ``network``: the
    trained network's final snapshot, relative to the output's folder (:mod:`onlinedeep.snapshot`).
    """
    from onlinedeep.model import predict_proba
    from onlinedeep.training.loop import Trainer

    plan = OrderingPlan.from_dict(plan_data)
    job = Job.from_key(key)
    output = plan.output_path(out, job)
    if output.exists():
        return {"key": key, "status": "already finished"}
    _set_threads(threads)
    t0 = time.perf_counter()
    config = plan.config(job)
    schedule = plan.schedule(job)
    stream = _stream_for(config)
    run_dir = plan.run_dir(out, job)
    # Execution-only fields (device, kernel, mnist_dir, ...) follow the current plan on resume.
    mutable = {k: v for k, v in config.to_dict().items() if k in _PLAN_MUTABLE - {"name", "out"}}

    if Trainer.has_snapshot(run_dir):
        trainer = Trainer.resume(run_dir, stream=stream, **mutable)
        started_from = "resumed"
    elif job.is_base or job.segment == 0:  # (a base stage has no snapshot only at stage 1)
        trainer = Trainer(config, schedule=schedule, stream=stream, run_dir=run_dir)
        started_from = "initial weights"
    else:
        point = plan.branch_point(out, job.condition, job.segment)
        if not point.is_file():
            raise FileNotFoundError(
                f"{point}: branch point of segment {job.segment} missing; base stage "
                f"{Job(job.condition, job.segment).key!r} writes it (rerun the experiment)"
            )
        trainer = Trainer.from_snapshot(point, schedule=schedule, run_dir=run_dir, stream=stream,
                                        **mutable)
        started_from = "branch point"
    if trainer.schedule.to_dict() != schedule.to_dict():
        raise RuntimeError(f"{run_dir}: holds a run of another training sequence than job {key!r}; "
                           f"delete the folder to restart the job")
    start_position = trainer.position

    stop = plan.boundary(job.segment) if job.is_stage else plan.n_examples
    pins = []  # the missing branch points this call passes (existing ones are not rewritten)
    for s in range(1, plan.n_segments):
        point, position = plan.branch_point(out, job.condition, s), plan.boundary(s)
        if not job.is_base or position > stop or point.is_file():
            continue
        if position < start_position:
            raise RuntimeError(
                f"{point}: branch point missing, but the base run in {run_dir} is already at "
                f"position {start_position} > {position}; delete {run_dir} to retrain the base "
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
    with atomic_file(output) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("probabilities", data=probabilities)
        for name, value in attrs.items():
            f.attrs[name] = value
    return summary


# ---------------------------------------------------------------------- the whole experiment
def pending_jobs(plan: OrderingPlan, out: str | os.PathLike) -> list[Job]:
    """Jobs of ``plan`` without an output file in ``out`` (not finished), in plan order."""
    return [job for job in plan.jobs() if not plan.output_path(out, job).exists()]


def run_experiment(
    plan: OrderingPlan,
    out: str | os.PathLike,
    connect: Callable[[], ContextManager[Any]],
    *,
    threads: int | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> dict[str, Outcome]:
    """Run every unfinished job of ``plan`` on a Dask cluster; finished jobs are not submitted.

    Parameters
    ----------
    plan : OrderingPlan
    out : path
        Experiment folder (created; must be visible to every worker).
    connect : callable
        Returns a context manager yielding a ``distributed.Client``, e.g.
        ``lambda: executors.local_client(2)`` or ``lambda: executors.remote_client(address)``;
        called only if some job is left to run.
    threads : int, optional
        Torch/Numba threads per job.
    on_outcome : callable, optional
        Called with each submitted job's :class:`Outcome` as it arrives.

    Returns
    -------
    dict of str to Outcome
        One per job of the plan, in plan order: finished before this call → ``done`` with value
        ``{"status": "already finished"}``; otherwise what :func:`onlinedeep.experiments.executors.run_tasks`
        reports (``failed`` with the error, ``skipped`` when the base job failed). Also written to
        ``out/last_run.json`` (with tracebacks).

    Raises
    ------
    ConfigError
        If ``out`` holds a different experiment (checked before anything is written).
    OSError
        If ``connect`` fails (e.g. the scheduler cannot be reached); then nothing is written.
    """
    out = Path(out)
    check_plan(plan, out)
    plan_data = plan.to_dict()
    pending = pending_jobs(plan, out)
    outcomes = {job.key: Outcome(job.key, "done", value={"key": job.key, "status": "already finished"})
                for job in plan.jobs()}
    tasks = []
    for job in pending:
        deps = tuple(d.key for d in plan.depends_on(job) if d in pending)
        tasks.append(Task(job.key, run_job, (plan_data, str(out), job.key, threads), deps))
    if tasks:
        with connect() as client:  # connected before the first file is written
            save_or_check_plan(plan, out)
            outcomes.update(run_tasks(client, tasks, on_outcome=on_outcome))
    else:
        save_or_check_plan(plan, out)
    _write_json_atomic(out / LAST_RUN_FILE, {
        key: {"status": o.status, "value": o.value, "error": o.error, "traceback": o.traceback}
        for key, o in outcomes.items()
    })
    return outcomes


# ---------------------------------------------------------------------- aggregation
def output_variance(probabilities: np.ndarray) -> float:
    """Variance across networks of their outputs, averaged over test examples and classes.

    Parameters
    ----------
    probabilities : (D, n, k) float array_like
        Softmax outputs of D networks on the same n test examples (k classes), D ≥ 2.

    Returns
    -------
    float
        ``mean over (n, k) of var over D`` with the unbiased estimator (ddof = 1), computed in
        float64: the variance "in function space" of paper section 8.2.

    Raises
    ------
    ValueError
        If the array is not 3-D or has fewer than 2 networks.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 3 or p.shape[0] < 2:
        raise ValueError(f"probabilities: expected shape (D >= 2, n, k), found {p.shape}")
    return float(p.var(axis=0, ddof=1).mean())


@contextlib.contextmanager
def _read_h5(path, fmt: str, what: str):
    """Open an HDF5 output of this module whose ``format`` attribute must be ``fmt``.

    Any failure inside the block (missing file, damaged file, wrong format, missing dataset or
    attribute) becomes a ValueError naming the file and ``what`` it should have been.
    """
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != fmt:
                raise ValueError(f"attribute 'format': expected {fmt!r}, found {f.attrs.get('format')!r}")
            yield f
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable {what} ({exc})") from None


def _read_job_output(path: Path, plan: OrderingPlan) -> tuple[np.ndarray, float]:
    with _read_h5(path, OUTPUT_FORMAT, "ordering-variance job output") as f:
        probs = f["probabilities"][...]
        online_error = float(f.attrs["online_error"])
    if probs.shape != (plan.test_count, 10) or not np.isfinite(probs).all():
        raise ValueError(
            f"{path}: dataset 'probabilities': expected finite values of shape "
            f"({plan.test_count}, 10), found shape {probs.shape}"
        )
    return probs, online_error


def aggregate(out: str | os.PathLike) -> dict[str, np.ndarray]:
    """Collect the finished jobs of an experiment folder into one table and write it.

    Parameters
    ----------
    out : path
        Experiment folder (holds ``plan.json``).

    Returns
    -------
    dict of str to ndarray
        Columns, one row per (condition, segment): ``condition`` (str), ``segment`` int64,
        ``fraction`` float64 (s/S), ``n_draws`` int64 (finished draws used), ``variance`` float64
        (:func:`output_variance`; NaN with fewer than 2 finished draws), ``online_error_mean``
        float64 (mean final online error of the draws). Also written to ``out/ordering_variance.h5``
        as the compound dataset ``table`` with the plan as attribute ``plan`` (JSON).

    Raises
    ------
    FileNotFoundError
        If ``out`` holds no plan.
    ValueError
        If a job output is unreadable or malformed (names the file).
    """
    out = Path(out)
    plan = load_plan(out)
    rows = []
    for condition in plan.conditions:
        for s in range(plan.n_segments):
            probs, errors = [], []
            for d in range(plan.n_draws):
                path = plan.output_path(out, Job(condition, s, d))
                if path.exists():
                    p, e = _read_job_output(path, plan)
                    probs.append(p)
                    errors.append(e)
            variance = output_variance(np.stack(probs)) if len(probs) >= 2 else float("nan")
            rows.append((condition, s, plan.fraction(s), len(probs), variance,
                         float(np.mean(errors)) if errors else float("nan")))
    table = {
        "condition": np.array([r[0] for r in rows], dtype=object),
        "segment": np.array([r[1] for r in rows], dtype=np.int64),
        "fraction": np.array([r[2] for r in rows], dtype=np.float64),
        "n_draws": np.array([r[3] for r in rows], dtype=np.int64),
        "variance": np.array([r[4] for r in rows], dtype=np.float64),
        "online_error_mean": np.array([r[5] for r in rows], dtype=np.float64),
    }
    width = max(len(c) for c in plan.conditions)
    dtype = np.dtype([("condition", f"S{width}"), ("segment", "<i8"), ("fraction", "<f8"),
                      ("n_draws", "<i8"), ("variance", "<f8"), ("online_error_mean", "<f8")])
    records = np.array([(r[0].encode(), *r[1:]) for r in rows], dtype=dtype)

    with atomic_file(out / TABLE_FILE) as tmp, h5py.File(tmp, "w") as f:
        dset = f.create_dataset("table", data=records)
        dset.attrs["variance"] = ("variance across draws of the softmax outputs on the test set, "
                                  "unbiased (ddof=1), averaged over test examples and classes")
        f.attrs["format"] = TABLE_FORMAT
        f.attrs["plan"] = json.dumps(plan.to_dict(), sort_keys=True)
    return table


def load_table(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a table written by :func:`aggregate` (same columns as it returns).

    Raises
    ------
    ValueError
        If the file is not such a table (names the file and what is wrong).
    """
    with _read_h5(path, TABLE_FORMAT, "ordering-variance table") as f:
        records = f["table"][...]
    table = {name: records[name] for name in records.dtype.names}
    table["condition"] = np.array([c.decode() for c in records["condition"]], dtype=object)
    return table


_LABELS = {"dae": "with pre-training (SDAE)", "rbm": "with pre-training (DBN)",
           "none": "without pre-training"}


def plot_figure13(table: dict[str, np.ndarray], path: str | os.PathLike, *,
                  unsup_fraction: dict[str, float] | None = None, title: str | None = None) -> None:
    """Draw Figure 13: output variance against the position of the replaced segment.

    Parameters
    ----------
    table : dict
        Columns as returned by :func:`aggregate`.
    path : path
        PNG file to write (atomically).
    unsup_fraction : dict of str to float, optional
        Per condition, the fraction of training spent pre-training (drawn as a dotted line; the
        paper's 0.25 mark).
    title : str, optional
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.0), dpi=120)
    for condition in dict.fromkeys(table["condition"]):
        rows = table["condition"] == condition
        line, = ax.plot(table["fraction"][rows], table["variance"][rows], marker="o",
                        label=_LABELS.get(condition, condition))
        frac = (unsup_fraction or {}).get(condition, 0.0)
        if frac > 0:
            ax.axvline(frac, color=line.get_color(), linestyle=":", linewidth=1,
                       label=f"end of pre-training ({condition})")
    ax.set_xlabel("position of the replaced segment (fraction of training)")
    ax.set_ylabel("variance of the output on the test set")
    ax.set_title(title or "Figure 13: influence of example ordering")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        with atomic_file(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


def report(out: str | os.PathLike) -> tuple[dict[str, np.ndarray], Path, Path]:
    """Aggregate an experiment folder and draw its figure.

    Returns
    -------
    (table, table_path, figure_path)
        See :func:`aggregate`; the files are ``out/ordering_variance.h5`` and ``out/figure13.png``.
    """
    out = Path(out)
    table = aggregate(out)
    plan = load_plan(out)
    fractions = {name: cfg.unsup_updates / plan.n_examples for name, cfg in plan.configs.items()}
    plot_figure13(table, out / FIGURE_FILE, unsup_fraction=fractions,
                  title=f"Figure 13 (N={plan.n_examples:,}, S={plan.n_segments}, D={plan.n_draws})")
    return table, out / TABLE_FILE, out / FIGURE_FILE
