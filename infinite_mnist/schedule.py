"""Schedule: a training sequence as a concatenation of ranges of training ids."""
from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["Schedule", "SPLITS", "training_ids_to_indices"]

SPLITS = ("protocol", "all")

_FIRST_DEFORMED = 70_000  # stream index of the first deformation (10,000 test + 60,000 training)
_N_TRAIN = 60_000
_N_PROTOCOL = 50_000  # the protocol split trains on deformations of training digits 0-49,999
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


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A training sequence: the concatenation of ranges ``(start, length)`` of training ids.

    Position ``p`` of the sequence (0 <= p < total, in examples) is a training id, which
    :func:`training_ids_to_indices` maps to a stream index of :class:`InfiniteMNIST`.

    Parameters
    ----------
    segments : tuple of (start, length)
        Training-id ranges, in order; ``start >= 0``, ``length >= 1``.
    split : {"protocol", "all"}
    """

    segments: tuple[tuple[int, int], ...]
    split: str = "protocol"

    def __post_init__(self):
        if self.split not in SPLITS:
            raise ValueError(f"split: expected one of {SPLITS}, found {self.split!r}")
        segs = []
        for k, seg in enumerate(self.segments):
            try:
                start, length = (int(v) for v in seg)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"segments[{k}]: expected (start, length), found {seg!r}") from exc
            if start < 0 or length < 1 or start + length - 1 > MAX_ID[self.split]:
                raise ValueError(
                    f"segments[{k}]: expected start >= 0, length >= 1 and ids <= "
                    f"{MAX_ID[self.split]} (split {self.split!r}), found ({start}, {length})"
                )
            segs.append((start, length))
        object.__setattr__(self, "segments", tuple(segs))
        lengths = np.array([length for _, length in segs], dtype=np.int64)
        offsets = np.zeros(len(segs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        object.__setattr__(self, "_offsets", offsets)
        object.__setattr__(self, "_starts", np.array([s for s, _ in segs], dtype=np.int64))

    # -------------------------------------------------------------------------------------------
    @classmethod
    def contiguous(cls, total: int, start: int = 0, split: str = "protocol") -> "Schedule":
        """The training ids ``start, ..., start + total - 1`` in order."""
        return cls(((int(start), int(total)),), split=split)

    @property
    def total(self) -> int:
        """Length of the sequence in examples."""
        return int(self._offsets[-1])

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
        ids = np.empty(count, dtype=np.int64)
        if count == 0:
            return ids
        offsets, starts = self._offsets, self._starts
        first = int(np.searchsorted(offsets, position, side="right")) - 1
        last = int(np.searchsorted(offsets, position + count - 1, side="right")) - 1
        for s in range(first, last + 1):
            lo = max(position, int(offsets[s]))
            hi = min(position + count, int(offsets[s + 1]))
            base = int(starts[s]) + lo - int(offsets[s])
            ids[lo - position:hi - position] = np.arange(base, base + hi - lo, dtype=np.int64)
        return training_ids_to_indices(ids, self.split)

    def segment_bounds(self, n_segments: int) -> list[tuple[int, int]]:
        """Cut the sequence into ``n_segments`` consecutive parts of (nearly) equal length.

        Part ``s`` covers positions ``[floor(s·total/n), floor((s+1)·total/n))``.

        Returns
        -------
        list of (position, length)
            Ready for :meth:`replace`.

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

    def replace(self, segment_start: int, length: int, new_start: int) -> "Schedule":
        """The same sequence with positions ``[segment_start, segment_start + length)`` replaced by
        training ids ``new_start, ..., new_start + length - 1``.

        This is how the ordering-variance experiment (paper section 8.2) swaps one segment for a
        fresh range of the stream.

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
        end = segment_start + length
        if segment_start < 0 or end > self.total:
            raise IndexError(f"replace: positions [{segment_start}, {end}) outside [0, {self.total})")
        before, after = [], []
        for (start, seg_len), off in zip(self.segments, self._offsets[:-1].tolist()):
            if off < segment_start:
                before.append((start, min(seg_len, segment_start - off)))
            if off + seg_len > end:
                skip = max(0, end - off)
                after.append((start + skip, seg_len - skip))
        pieces = before + [(new_start, length)] + after
        return Schedule(tuple(_coalesce(pieces)), split=self.split)

    # -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-able form: ``{"split": str, "segments": [[start, length], ...]}``."""
        return {"split": self.split, "segments": [[s, n] for s, n in self.segments]}

    @classmethod
    def from_dict(cls, data: dict) -> "Schedule":
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        ValueError
            If a key is missing or a segment is malformed.
        """
        if not isinstance(data, dict) or "segments" not in data or "split" not in data:
            raise ValueError(f"schedule: expected a dict with 'split' and 'segments', found {data!r}")
        return cls(tuple(tuple(seg) for seg in data["segments"]), split=data["split"])


def _coalesce(segments):
    """Merge ranges that continue each other (equal sequences, shorter description)."""
    out = []
    for start, length in segments:
        if out and out[-1][0] + out[-1][1] == start:
            out[-1] = (out[-1][0], out[-1][1] + length)
        else:
            out.append((start, length))
    return out
