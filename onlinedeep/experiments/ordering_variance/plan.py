"""The design of the example-ordering experiment: its jobs and its plan.

See :mod:`onlinedeep.experiments.ordering_variance` for the protocol; the draws of a plan are in
:mod:`.sampling`, its file ``plan.json`` in :mod:`.plan_file`.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from collections.abc import Iterable
from typing import Any

from infinite_mnist.schedule import SAMPLING_VERSION
from onlinedeep.config import BRANCH_MUTABLE, ConfigError, RunConfig
from onlinedeep.experiments.ordering_variance.sampling import PlanDraws

__all__ = ["Job", "OrderingPlan", "PLAN_PRESETS", "SAMPLING_VERSION", "segment_ranges"]

# The MNIST test digits are stream indices 0..9,999 (infinite_mnist.stream.N_TEST).
N_TEST_DIGITS = 10_000
PLAN_FORMAT = "onlinedeep.ordering_variance.plan/2"
OUTPUT_FORMAT = "onlinedeep.ordering_variance.job/1"
TABLE_FORMAT = "onlinedeep.ordering_variance.table/1"
# The sampling rule of the draws (infinite_mnist.SAMPLING_VERSION when the rule was written into this
# module); a plan, output or table records it, and results of another version are never mixed.
# Plans without it (format /1) drew each segment as a range of consecutive training ids, which in
# the paper preset presented the same base digits in the same order in every draw.

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
class OrderingPlan(PlanDraws):
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
    seed : int or None
        Experiment seed of the draws, in [0, 2**63); default the ``seed`` of the first condition.
        Draw d of segment s replaces positions ``s·L .. (s+1)·L - 1`` by the random sample
        ``Schedule.resample(s·L, L, draw_seed(seed, s, d))`` (paper 8.2: "sampling a different set
        of 1 million examples each time"): which base digits, in what order, and their
        deformations all differ between draws. The same samples serve every condition (paired
        comparison: the conditions see the same examples).

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
    seed: int | None = None

    def __post_init__(self) -> None:
        _validate(self)

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

    # ------------------------------------------------------------------ jobs (draws: PlanDraws)
    def config(self, job: Job) -> RunConfig:
        """The RunConfig of ``job``'s condition (a copy)."""
        if job.condition not in self.configs:
            raise ValueError(f"condition: expected one of {self.conditions}, found {job.condition!r}")
        return dataclasses.replace(self.configs[job.condition])

    def jobs(self, segments: Iterable[int] | None = None) -> list[Job]:
        """All jobs, in the order they should start: the base stages s = 1..S-1 and the base job
        of every condition (the chains every later segment's draws wait for), then the draw jobs
        (s, d), d = 0..D-1, of both conditions segment by segment from the last segment (the
        cheapest: L·1 updates a draw) to the first (L·S). So a run stopped part way has whole
        segments, each with every condition and draw, for ``report``; the total time is the same.
        The executor starts ready jobs in this order
        (:func:`onlinedeep.experiments.executors.run_tasks`).

        With ``segments`` (e.g. the segments another machine has not run), only the draw jobs of
        those segments and the base stages they branch from (1..max of them); the base job, which
        no segment's variance uses, runs only with every segment.

        Raises
        ------
        ConfigError
            If ``segments`` is empty or names a segment outside 0..S-1.
        """
        conditions = list(self.configs)
        chosen = self.check_segments(segments)
        last_stage = max(chosen) if segments is not None else self.n_segments - 1
        out = [Job(c, s) for s in range(1, last_stage + 1) for c in conditions]
        if segments is None:
            out.extend(Job(c) for c in conditions)
        out.extend(Job(c, s, d) for s in reversed(chosen) for c in conditions
                   for d in range(self.n_draws))
        return out

    def check_segments(self, segments: Iterable[int] | None) -> list[int]:
        """``segments`` sorted without repeats (every segment if None).

        Raises
        ------
        ConfigError
            If ``segments`` is empty or names a segment outside 0..S-1.
        """
        if segments is None:
            return list(range(self.n_segments))
        chosen = sorted(set(int(s) for s in segments))
        if not chosen:
            raise ConfigError("segments: none chosen")
        wrong = [s for s in chosen if not 0 <= s < self.n_segments]
        if wrong:
            raise ConfigError(f"segments: {segment_ranges(wrong)} not in 0..{self.n_segments - 1} "
                              f"(the plan has {self.n_segments} segments)")
        return chosen

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
            "format": PLAN_FORMAT,
            "sampling_version": SAMPLING_VERSION,
            "n_segments": self.n_segments,
            "n_draws": self.n_draws,
            "test_start": self.test_start,
            "test_count": self.test_count,
            "seed": self.seed,
            "configs": {name: cfg.to_dict() for name, cfg in self.configs.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "plan") -> "OrderingPlan":
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        ConfigError
            If a field is missing or invalid, or the plan was made with another sampling version
            (its results cannot be reused); the message starts with ``where``.
        """
        version = data.get("sampling_version") if isinstance(data, dict) else None
        if version != SAMPLING_VERSION:
            raise ConfigError(
                f"{where}: made with sampling version {version} (this program draws segments with "
                f"version {SAMPLING_VERSION}: {_VERSION_TEXT}); its results cannot be reused: "
                f"use another --out"
            )
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
                seed=data["seed"],
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
        for field in ("n_segments", "n_draws", "test_start", "test_count", "seed"):
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


def _validate(plan: "OrderingPlan") -> None:
    """Check a plan's fields and fill in ``seed`` (raises ConfigError, see OrderingPlan)."""
    if not plan.configs:
        raise ConfigError("configs: expected at least one condition, found none")
    for name, cfg in plan.configs.items():
        if not isinstance(cfg, RunConfig):
            raise ConfigError(f"configs[{name!r}]: expected a RunConfig, found {type(cfg).__name__}")
        if not name or "/" in name or name in (".", ".."):
            raise ConfigError(f"condition name: expected a folder name without '/', found {name!r}")
    first_name, first = next(iter(plan.configs.items()))
    for name, cfg in plan.configs.items():
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
    if not isinstance(plan.n_segments, int) or not 1 <= plan.n_segments <= n:
        raise ConfigError(f"n_segments: expected an integer in 1..N={n}, found {plan.n_segments!r}")
    if n % plan.n_segments:
        raise ConfigError(
            f"n_segments: expected a divisor of N={n} (equal segments), found {plan.n_segments}"
        )
    if plan.segment_length % first.chunk_size:
        raise ConfigError(
            f"n_segments: the segment length N/S = {plan.segment_length} must be a multiple of "
            f"chunk_size={first.chunk_size} (branch points are chunk boundaries)"
        )
    if not isinstance(plan.n_draws, int) or plan.n_draws < 2:
        raise ConfigError(f"n_draws: expected an integer >= 2 (a variance needs two draws), "
                          f"found {plan.n_draws!r}")
    if not isinstance(plan.test_start, int) or plan.test_start < 0:
        raise ConfigError(f"test_start: expected a stream index >= 0, found {plan.test_start!r}")
    if not isinstance(plan.test_count, int) or plan.test_count < 1:
        raise ConfigError(f"test_count: expected an integer >= 1, found {plan.test_count!r}")
    if plan.test_start + plan.test_count > N_TEST_DIGITS:
        # indices from 10,000 on are training digits, whose deformations are trained on
        raise ConfigError(
            f"test_count: expected test_start + test_count <= {N_TEST_DIGITS:,} (the test set "
            f"must be MNIST test digits, stream indices 0-{N_TEST_DIGITS - 1}), found "
            f"{plan.test_start} + {plan.test_count}"
        )
    if plan.seed is None:
        plan.seed = first.seed
    if isinstance(plan.seed, bool) or not isinstance(plan.seed, int) or not 0 <= plan.seed < 2**63:
        raise ConfigError(f"seed: expected an integer in [0, 2**63), found {plan.seed!r}")


_VERSION_TEXT = {1: "each draw is an independent random sample of base digits, order and "
                    "deformations"}.get(SAMPLING_VERSION, "")


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


def segment_ranges(segments: Iterable[int]) -> str:
    """``[0, 1, 2, 5]`` → ``"0-2,5"``: segment numbers as ``--only-segments`` reads them."""
    parts: list[list[int]] = []
    for s in sorted(set(int(s) for s in segments)):
        if parts and s == parts[-1][1] + 1:
            parts[-1][1] = s
        else:
            parts.append([s, s])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in parts)
