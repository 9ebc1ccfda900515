"""Schedule: a training sequence as a concatenation of segments of training examples.

Two kinds of segment:

* :class:`Range` ``(start, length)``: the training ids ``start, ..., start + length - 1`` in order
  (training id k is a deformation of training digit ``k mod 50,000`` in the protocol split);
* :class:`Sample` ``(seed, first, length)``: positions ``first, ..., first + length - 1`` of the
  random sample of the stream drawn with ``seed`` (:func:`sample_indices`): every position picks its
  base digit and its deformation at random, so two samples with different seeds share almost no
  example and present the digits in unrelated orders.

The ordering-variance experiment (Erhan et al. 2010, section 8.2) swaps one segment of a fixed
sequence for "a different set of examples" per draw: :meth:`Schedule.resample` with the seed
:func:`draw_seed` ``(seed, segment, draw)``. The sampling rule and the draw seeds are in
:mod:`infinite_mnist.sampling` (re-exported here).
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from infinite_mnist.sampling import (_FIRST_DEFORMED, _N_PROTOCOL, _N_TRAIN, MAX_SAMPLE_POSITION,
                                     SAMPLING_VERSION, SPLITS, _check_split, _check_u64, draw_seed,
                                     sample_indices)

__all__ = [
    "Schedule",
    "Range",
    "Sample",
    "SPLITS",
    "SAMPLING_VERSION",
    "training_ids_to_indices",
    "sample_indices",
    "draw_seed",
]

_INT64_MAX = np.iinfo(np.int64).max
#: Largest training id whose stream index fits in int64, per split.
MAX_ID = {
    "protocol": ((_INT64_MAX - _FIRST_DEFORMED) // _N_TRAIN) * _N_PROTOCOL - 1,
    "all": _INT64_MAX - _FIRST_DEFORMED,
}


def training_ids_to_indices(ids, split: str = "protocol") -> np.ndarray:
    """Map training ids to stream indices.

    ``split="protocol"``: id k -> 70,000 + 60,000·(k // 50,000) + k % 50,000 (deformations of training
    digits 0-49,999 only, so the validation digits 50,000-59,999 and the test digits are held out,
    paper section 5.2); ``split="all"``: k -> 70,000 + k.

    Parameters
    ----------
    ids : (n,) int64 array_like, values >= 0
    split : {"protocol", "all"}

    Returns
    -------
    (n,) int64 ndarray
    """
    k = np.asarray(ids, dtype=np.int64)
    if split == "protocol":
        return _FIRST_DEFORMED + _N_TRAIN * (k // _N_PROTOCOL) + k % _N_PROTOCOL
    if split == "all":
        return _FIRST_DEFORMED + k
    raise ValueError(f"split: expected one of {SPLITS}, found {split!r}")


# ------------------------------------------------------------------------------------------------
# Segments and the schedule
# ------------------------------------------------------------------------------------------------

class Range(NamedTuple):
    """Segment: the training ids ``start, ..., start + length - 1``, in order."""

    start: int
    length: int

    def part(self, skip: int, take: int) -> "Range":
        """Positions ``[skip, skip + take)`` of the segment."""
        return Range(self.start + skip, take)

    def continued_by(self, other) -> bool:
        return isinstance(other, Range) and self.start + self.length == other.start

    def to_json(self):
        return [self.start, self.length]


class Sample(NamedTuple):
    """Segment: positions ``first, ..., first + length - 1`` of the sample with ``seed``
    (:func:`sample_indices`)."""

    seed: int
    first: int
    length: int

    def part(self, skip: int, take: int) -> "Sample":
        """Positions ``[skip, skip + take)`` of the segment."""
        return Sample(self.seed, self.first + skip, take)

    def continued_by(self, other) -> bool:
        return (isinstance(other, Sample) and other.seed == self.seed
                and self.first + self.length == other.first)

    def to_json(self):
        return {"kind": "sample", "seed": self.seed, "first": self.first, "length": self.length}


def _as_segment(seg, k: int, split: str):
    """Validate one segment: a :class:`Sample`, or a (start, length) pair (a :class:`Range`)."""
    if isinstance(seg, Sample):
        try:
            seed = _check_u64("seed", seg.seed)
            first, length = int(seg.first), int(seg.length)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"segments[{k}]: {exc}") from None
        if first < 0 or length < 1 or first + length > MAX_SAMPLE_POSITION:
            raise ValueError(
                f"segments[{k}]: expected a sample with first >= 0, length >= 1 and first + length "
                f"<= 2**62, found {seg!r}"
            )
        return Sample(seed, first, length)
    try:
        start, length = (int(v) for v in seg)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"segments[{k}]: expected (start, length) or a Sample, found {seg!r}") from exc
    if start < 0 or length < 1 or start + length - 1 > MAX_ID[split]:
        raise ValueError(
            f"segments[{k}]: expected start >= 0, length >= 1 and ids <= "
            f"{MAX_ID[split]} (split {split!r}), found ({start}, {length})"
        )
    return Range(start, length)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A training sequence: the concatenation of segments, each a :class:`Range` of training ids or
    a :class:`Sample` of the stream.

    Position ``p`` of the sequence (0 <= p < total, in examples) is one stream index of
    :class:`~infinite_mnist.InfiniteMNIST` (:meth:`indices`): a range maps its training ids with
    :func:`training_ids_to_indices`, a sample with :func:`sample_indices`.

    Parameters
    ----------
    segments : tuple of (start, length) pairs or :class:`Sample`
        In order; a range needs ``start >= 0``, ``length >= 1``; a sample ``first >= 0``,
        ``length >= 1``. Pairs are stored as :class:`Range` (which still unpacks as
        ``start, length``).
    split : {"protocol", "all"}

    Raises
    ------
    ValueError
        Unknown split or a malformed segment (the message gives its number).
    """

    segments: tuple
    split: str = "protocol"

    def __post_init__(self):
        _check_split(self.split)
        segs = tuple(_as_segment(seg, k, self.split) for k, seg in enumerate(self.segments))
        object.__setattr__(self, "segments", segs)
        offsets = np.zeros(len(segs) + 1, dtype=np.int64)
        np.cumsum([seg.length for seg in segs], out=offsets[1:])
        object.__setattr__(self, "_offsets", offsets)

    # -------------------------------------------------------------------------------------------
    @classmethod
    def contiguous(cls, total: int, start: int = 0, split: str = "protocol") -> "Schedule":
        """The training ids ``start, ..., start + total - 1`` in order."""
        return cls((Range(int(start), int(total)),), split=split)

    @classmethod
    def sampled(cls, total: int, seed: int, split: str = "protocol") -> "Schedule":
        """Positions ``0, ..., total - 1`` of the sample with ``seed`` (:func:`sample_indices`)."""
        return cls((Sample(seed, 0, int(total)),), split=split)

    @property
    def total(self) -> int:
        """Length of the sequence in examples."""
        return int(self._offsets[-1])

    @property
    def sampling_version(self) -> int | None:
        """:data:`SAMPLING_VERSION` if the schedule holds a :class:`Sample`, else None (a schedule of
        ranges alone does not depend on the sampling rule)."""
        return SAMPLING_VERSION if any(isinstance(s, Sample) for s in self.segments) else None

    def indices(self, position: int, count: int) -> np.ndarray:
        """Stream indices of positions ``position, ..., position + count - 1`` of the sequence.

        Returns
        -------
        (count,) int64 ndarray

        Raises
        ------
        IndexError
            If the positions are not inside ``[0, total)``.
        """
        position, count = int(position), int(count)
        if position < 0 or count < 0 or position + count > self.total:
            raise IndexError(
                f"positions [{position}, {position + count}) outside the schedule [0, {self.total})"
            )
        out = np.empty(count, dtype=np.int64)
        if count == 0:
            return out
        offsets = self._offsets
        first = int(np.searchsorted(offsets, position, side="right")) - 1
        last = int(np.searchsorted(offsets, position + count - 1, side="right")) - 1
        for s in range(first, last + 1):
            lo = max(position, int(offsets[s]))
            hi = min(position + count, int(offsets[s + 1]))
            seg = self.segments[s].part(lo - int(offsets[s]), hi - lo)
            if isinstance(seg, Sample):
                part = sample_indices(seg.seed, seg.first, seg.length, self.split)
            else:
                part = training_ids_to_indices(
                    np.arange(seg.start, seg.start + seg.length, dtype=np.int64), self.split)
            out[lo - position:hi - position] = part
        return out

    def segment_bounds(self, n_segments: int) -> list[tuple[int, int]]:
        """Cut the sequence into ``n_segments`` consecutive parts of (nearly) equal length.

        Part ``s`` covers positions ``[floor(s·total/n), floor((s+1)·total/n))``.

        Returns
        -------
        list of (position, length)
            Ready for :meth:`replace` and :meth:`resample`.

        Raises
        ------
        ValueError
            If ``n_segments < 1`` or ``n_segments > total``.
        """
        n = int(n_segments)
        if n < 1 or n > self.total:
            raise ValueError(f"n_segments: expected 1 to {self.total}, found {n_segments}")
        cuts = [(s * self.total) // n for s in range(n + 1)]
        return [(cuts[s], cuts[s + 1] - cuts[s]) for s in range(n)]

    def head(self, position: int) -> "Schedule":
        """The first ``position`` positions, in the shortest form: two schedules present the same
        examples in positions ``[0, position)`` iff their heads are equal.

        Raises
        ------
        IndexError
            If ``position`` is not in ``[0, total]``.
        """
        position = int(position)
        if not 0 <= position <= self.total:
            raise IndexError(f"head: position {position} outside [0, {self.total}]")
        return Schedule(tuple(_coalesce(self._cut(0, position))), split=self.split)

    def replace(self, segment_start: int, length: int, new_start: int) -> "Schedule":
        """The same sequence with positions ``[segment_start, segment_start + length)`` replaced by
        training ids ``new_start, ..., new_start + length - 1``.

        Raises
        ------
        IndexError
            If the positions are not inside ``[0, total)``.
        ValueError
            If ``length < 1`` or ``new_start < 0``.
        """
        segment_start, length, new_start = int(segment_start), int(length), int(new_start)
        if length < 1 or new_start < 0:
            raise ValueError(
                f"replace: expected length >= 1 and new_start >= 0, found {length}, {new_start}"
            )
        return self._splice("replace", segment_start, length, Range(new_start, length))

    def resample(self, segment_start: int, length: int, seed: int) -> "Schedule":
        """The same sequence with positions ``[segment_start, segment_start + length)`` replaced by
        positions ``0, ..., length - 1`` of the sample with ``seed`` (:func:`sample_indices`).

        This is how the ordering-variance experiment (paper section 8.2) varies one segment: "by
        resampling ... a different set of examples each time"; take ``seed`` from
        :func:`draw_seed` ``(experiment seed, segment, draw)``. The positions outside the stretch
        keep their examples.

        Raises
        ------
        IndexError
            If the positions are not inside ``[0, total)``.
        ValueError
            If ``length < 1`` or ``seed`` is not in [0, 2**64 - 1].
        """
        segment_start, length = int(segment_start), int(length)
        if length < 1:
            raise ValueError(f"resample: expected length >= 1, found {length}")
        return self._splice("resample", segment_start, length, Sample(_check_u64("seed", seed), 0, length))

    def _splice(self, what: str, position: int, length: int, piece) -> "Schedule":
        end = position + length
        if position < 0 or end > self.total:
            raise IndexError(f"{what}: positions [{position}, {end}) outside [0, {self.total})")
        pieces = self._cut(0, position) + [piece] + self._cut(end, self.total)
        return Schedule(tuple(_coalesce(pieces)), split=self.split)

    def _cut(self, lo: int, hi: int) -> list:
        """The segments covering positions ``[lo, hi)``, trimmed."""
        out = []
        for seg, off in zip(self.segments, self._offsets[:-1].tolist()):
            a, b = max(lo, off), min(hi, off + seg.length)
            if a < b:
                out.append(seg.part(a - off, b - a))
        return out

    # -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-able form.

        ``{"split": str, "segments": [...]}`` with a range as ``[start, length]`` and a sample as
        ``{"kind": "sample", "seed": int, "first": int, "length": int}``; plus
        ``"sampling_version": int`` when the schedule holds a sample.
        """
        out = {"split": self.split, "segments": [seg.to_json() for seg in self.segments]}
        if self.sampling_version is not None:
            out["sampling_version"] = self.sampling_version
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Schedule":
        """Inverse of :meth:`to_dict` (dicts written before samples existed read the same).

        Raises
        ------
        ValueError
            If a key is missing, a segment is malformed, or the dict holds samples of another
            sampling version than :data:`SAMPLING_VERSION` (or of none).
        """
        if not isinstance(data, dict) or "segments" not in data or "split" not in data:
            raise ValueError(f"schedule: expected a dict with 'split' and 'segments', found {data!r}")
        if not isinstance(data["segments"], (list, tuple)):
            raise ValueError(f"schedule: 'segments': expected a list, found {data['segments']!r}")
        segs, has_sample = [], False
        for k, seg in enumerate(data["segments"]):
            if isinstance(seg, dict):
                if seg.get("kind") != "sample" or set(seg) != {"kind", "seed", "first", "length"}:
                    raise ValueError(
                        f"schedule: segments[{k}]: expected [start, length] or {{'kind': 'sample', "
                        f"'seed', 'first', 'length'}}, found {seg!r}"
                    )
                segs.append(Sample(seg["seed"], seg["first"], seg["length"]))
                has_sample = True
            else:
                segs.append(seg)
        version = data.get("sampling_version")
        if (has_sample or version is not None) and version != SAMPLING_VERSION:
            raise ValueError(
                f"schedule: sampling_version: expected {SAMPLING_VERSION} (the sampling rule of this "
                f"infinite_mnist), found {version!r}"
            )
        return cls(tuple(segs), split=data["split"])


def _coalesce(segments):
    """Merge segments that continue each other (equal sequences, shorter description)."""
    out = []
    for seg in segments:
        if out and out[-1].continued_by(seg):
            out[-1] = out[-1].part(0, out[-1].length + seg.length)
        else:
            out.append(seg)
    return out
