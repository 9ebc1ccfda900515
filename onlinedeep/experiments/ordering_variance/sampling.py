"""Which examples each job of the ordering-variance experiment sees: the base training sequence
and, for draw d of segment s, that sequence with segment s resampled (paper 8.2: "sampling a
different set of 1 million examples each time").

:class:`PlanDraws` is a base of :class:`~onlinedeep.experiments.ordering_variance.plan.OrderingPlan`
(it uses the plan's ``configs``, ``seed``, ``n_segments``, ``n_draws`` and segment geometry).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onlinedeep.experiments.ordering_variance.plan import Job

__all__ = ["PlanDraws"]


class PlanDraws:
    """The draws of an :class:`OrderingPlan` (see there); not used alone."""

    def draw_seed(self, segment: int, draw: int) -> int:
        """Sample seed of job (segment, draw): ``infinite_mnist.draw_seed(seed, segment, draw)``.

        Raises
        ------
        ValueError
            If ``segment`` or ``draw`` is out of range.
        """
        from infinite_mnist import draw_seed

        self._check_segment_draw(segment, draw)
        return draw_seed(self.seed, segment, draw)

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
        """The training sequence of ``job``: the base one, with segment s resampled for draw d.

        Returns
        -------
        infinite_mnist.Schedule
            Total N; positions outside segment s keep the base sequence's examples; position
            → stream index is a pure function (nothing is generated here).
        """
        base = self.base_schedule()
        if job.is_base:
            return base
        return base.resample(self.boundary(job.segment), self.segment_length,
                             self.draw_seed(job.segment, job.draw))

    def indices(self, job: Job, start: int | None = None, count: int | None = None):
        """Stream indices ``job`` trains on at positions ``start .. start + count - 1``.

        Parameters
        ----------
        job : Job
        start, count : int, optional
            Default: the positions of the job's varied segment (the whole sequence for a base job).

        Returns
        -------
        (count,) int64 ndarray

        Raises
        ------
        ValueError
            If the segment or draw is out of range, or the positions are outside ``[0, N)``.
        """
        if not job.is_base:
            self._check_segment_draw(job.segment, job.draw)
        first, length = (0, self.n_examples) if job.is_base else (self.boundary(job.segment),
                                                                  self.segment_length)
        if start is None:
            start = first
        if count is None:
            count = length if start == first else max(0, min(length, self.n_examples - start))
        if start < 0 or count < 0 or start + count > self.n_examples or (
                count == 0 and start >= self.n_examples):
            raise ValueError(f"positions: expected [start, start + count) inside [0, {self.n_examples}), "
                             f"found start={start}, count={count}")
        return self.schedule(job).indices(start, count)
