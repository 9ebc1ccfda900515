"""Counter-based sampling of the stream: the random sample of a seed (:func:`sample_indices`) and the
seed of one draw of one segment (:func:`draw_seed`), with no generator state: every value is a
SplitMix64 hash of its coordinates (Steele, Lea & Flood 2014), so any process computes any part
alone. The stream layout constants the rule depends on live here too.
"""
from __future__ import annotations

import numpy as np

__all__ = ["SPLITS", "SAMPLING_VERSION", "MAX_SAMPLE_POSITION", "sample_indices", "draw_seed"]

SPLITS = ("protocol", "all")

#: Version of the rule of :func:`sample_indices`; written in :meth:`Schedule.to_dict` when a schedule
#: holds a :class:`Sample`, and checked by :meth:`Schedule.from_dict`. A change of the rule (which
#: would give other examples for the same seed) must increment it.
SAMPLING_VERSION = 1

_FIRST_DEFORMED = 70_000  # stream index of the first deformation (10,000 test + 60,000 training)
_N_TRAIN = 60_000
_N_PROTOCOL = 50_000  # the protocol split trains on deformations of training digits 0-49,999
_N_DIGITS = {"protocol": _N_PROTOCOL, "all": _N_TRAIN}
#: Positions of a sample are ``0 <= t < MAX_SAMPLE_POSITION`` (word ``2t + 1`` of its key stays below
#: 2**63).
MAX_SAMPLE_POSITION = 2**62
#: A sample's deformation number is 47 random bits: ``70,000 + 60,000·(2**47 - 1) + 59,999`` < 2**63.
_CYCLE_BITS = 47
_CHUNK = 1 << 16

_MASK64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
# Domain tags: the keys of samples and of draw seeds never coincide with other uses of the same seed.
_SAMPLE_TAG = 0x5A3F1E0D2C4B6978
_DRAW_TAG = 0x1D8E4E27C47D124F


def _mix_int(z: int) -> int:
    """One SplitMix64 step on a Python int: ``finalise(z + γ)`` mod 2**64 (Steele, Lea & Flood 2014)."""
    z = (z + _GAMMA) & _MASK64
    z = ((z ^ (z >> 30)) * _M1) & _MASK64
    z = ((z ^ (z >> 27)) * _M2) & _MASK64
    return z ^ (z >> 31)


def _mix_array(z: np.ndarray) -> np.ndarray:
    """:func:`_mix_int` on a uint64 array (wrapping arithmetic)."""
    z = z + np.uint64(_GAMMA)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_M1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_M2)
    return z ^ (z >> np.uint64(31))


def _check_u64(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: expected an integer in [0, 2**64 - 1], found {value!r}")
    value = int(value)
    if not 0 <= value <= _MASK64:
        raise ValueError(f"{name}: expected an integer in [0, 2**64 - 1], found {value}")
    return value


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, found {split!r}")
    return split


def draw_seed(seed: int, segment: int, draw: int) -> int:
    """The sample seed of one draw of one segment: ``mix(mix(mix(seed ^ tag) ^ segment) ^ draw)``.

    A pure function, so any job of an experiment can compute the seed of its draw alone, in any
    order, on any machine. ``mix`` is one step of SplitMix64 (Steele, Lea & Flood 2014); each stage
    is a bijection of its first argument, so distinct ``(segment, draw)`` under one experiment seed
    collide with probability about 2**-64.

    Parameters
    ----------
    seed : int
        Experiment seed, in [0, 2**64 - 1].
    segment : int
        Index of the segment that is resampled, in [0, 2**64 - 1].
    draw : int
        Index of the draw, in [0, 2**64 - 1].

    Returns
    -------
    int
        In [0, 2**64 - 1]; pass it to :meth:`Schedule.resample`.

    Raises
    ------
    ValueError
        If an argument is not an integer in [0, 2**64 - 1].
    """
    h = _mix_int(_check_u64("seed", seed) ^ _DRAW_TAG)
    h = _mix_int(h ^ _check_u64("segment", segment))
    return _mix_int(h ^ _check_u64("draw", draw))


def sample_indices(seed: int, first: int, count: int, split: str = "protocol") -> np.ndarray:
    """Stream indices of positions ``first, ..., first + count - 1`` of the sample drawn with ``seed``.

    Sampling rule (version :data:`SAMPLING_VERSION`): with ``key = mix(seed ^ tag)`` and
    ``w_j = mix(key + j·γ)`` (the SplitMix64 sequence from ``key``, addressed by ``j``), position
    ``t`` takes the base training digit ``d = w_{2t} mod D`` (D = 50,000 for ``"protocol"``, 60,000
    for ``"all"``) and the deformation number ``c = w_{2t+1} >> 17`` (47 bits), i.e. stream index
    ``70,000 + 60,000·c + d``, the c-th deformation of training digit d. Positions are independent
    and uniform (a sample with replacement from the stream of the split); the chance that two
    positions, of one sample or of two, give the same example is ``1 / (D·2**47)``, that they share
    the base digit ``1 / D``.

    Parameters
    ----------
    seed : int
        In [0, 2**64 - 1].
    first : int
        First position, >= 0.
    count : int
        Number of positions, >= 0; ``first + count <= 2**62``.
    split : {"protocol", "all"}

    Returns
    -------
    (count,) int64 ndarray
        Stream indices, all >= 70,000 (deformations only); in the protocol split never a
        deformation of the validation digits 50,000-59,999.

    Raises
    ------
    ValueError
        Bad seed, split, or positions outside ``[0, 2**62)``.
    """
    seed = _check_u64("seed", seed)
    _check_split(split)
    first, count = int(first), int(count)
    if first < 0 or count < 0 or first + count > MAX_SAMPLE_POSITION:
        raise ValueError(
            f"sample positions: expected 0 <= first and first + count <= 2**62, found first={first}, "
            f"count={count}"
        )
    key = np.uint64(_mix_int(seed ^ _SAMPLE_TAG))
    out = np.empty(count, dtype=np.int64)
    for lo in range(0, count, _CHUNK):  # chunks keep the temporaries in cache
        n = min(_CHUNK, count - lo)
        with np.errstate(over="ignore"):
            j = np.arange(first + lo, first + lo + n, dtype=np.uint64) * np.uint64(2)
            base = key + j * np.uint64(_GAMMA)
            digit = _mix_array(base) % np.uint64(_N_DIGITS[split])
            cycle = _mix_array(base + np.uint64(_GAMMA)) >> np.uint64(64 - _CYCLE_BITS)
        part = out[lo:lo + n]
        np.multiply(cycle.astype(np.int64), _N_TRAIN, out=part)
        part += digit.astype(np.int64)
        part += _FIRST_DEFORMED
    return out
