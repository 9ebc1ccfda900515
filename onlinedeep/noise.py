"""Counter-based random draws: every draw is a pure function of ``(seed, position, purpose, layer)``.

A run needs random numbers for the denoising auto-encoder's corruption and for the RBM's Gibbs
samples. Drawing them from a stateful generator would make resuming and branching depend on the
generator's saved state and on the order in which chunks were drawn. Here each draw is instead a
hash of its coordinates (a counter-based generator, Salmon et al. 2011, "Parallel random numbers:
as easy as 1, 2, 3"), so the draws for stream position 1,234,567 are the same whether the run got
there in one go, was resumed from a snapshot, or is a branch of another run, and whatever the chunk
size.

The hash is SplitMix64's output function (Steele, Lea & Flood 2014, "Fast splittable pseudorandom
number generators"; the finaliser of Stafford's "Mix13"). For one example the key is

    k = mix(mix(mix(seed) ^ (purpose << 32 | layer)) ^ position)

and its j-th 64-bit word is ``mix(k + j·γ)`` with γ = 0x9E3779B97F4A7C15 (the SplitMix64 sequence
started at k, addressed directly by its index).

Purpose codes (the ``purpose`` argument; distinct streams for distinct uses):

=====================  =====  ============================================================
name                   value  use
=====================  =====  ============================================================
``PURPOSE_MASKING``      1    which inputs masking noise zeroes (:func:`masking_keep`)
``PURPOSE_SALT_PEPPER``  2    which inputs salt-and-pepper noise replaces (:func:`salt_pepper`)
``PURPOSE_SALT_VALUE``   3    the Bernoulli(0.5) replacement values of salt-and-pepper noise
``PURPOSE_RBM_HIDDEN``   4    uniforms for the RBM's hidden samples (``u_hidden``)
``PURPOSE_RBM_VISIBLE``  5    uniforms for the RBM's sampled reconstructions (``u_visible``)
=====================  =====  ============================================================
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = [
    "PURPOSE_MASKING",
    "PURPOSE_SALT_PEPPER",
    "PURPOSE_SALT_VALUE",
    "PURPOSE_RBM_HIDDEN",
    "PURPOSE_RBM_VISIBLE",
    "corruption_count",
    "masking_keep",
    "salt_pepper",
    "uniforms",
]

PURPOSE_MASKING = 1
PURPOSE_SALT_PEPPER = 2
PURPOSE_SALT_VALUE = 3
PURPOSE_RBM_HIDDEN = 4
PURPOSE_RBM_VISIBLE = 5

_U64_MAX = 2**64 - 1
_MAX_LAYER = 2**32 - 1
_MAX_PURPOSE = 2**32 - 1

# All hash arithmetic stays in uint64: mixing int64 and uint64 in numba promotes to float64.
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_S40 = np.uint64(40)
_S63 = np.uint64(63)
_ONE = np.uint64(1)
_INV_2_24 = np.float32(1.0 / 16777216.0)


@njit(cache=True, nogil=True, inline="always")
def _mix(z):
    z = z + _GAMMA
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, nogil=True, inline="always")
def _word(key, j):
    return _mix(key + np.uint64(j) * _GAMMA)


@njit(cache=True, nogil=True, inline="always")
def _uniform(key, j):
    # Top 24 bits: every value k/2^24 is exact in float32, so u lies in [0, 1) and u < p is exact.
    return np.float32(_word(key, j) >> _S40) * _INV_2_24


@njit(cache=True, nogil=True)
def _row_keys(seed, positions, purpose, layer):
    base = _mix(_mix(seed) ^ ((purpose << _S32) | layer))
    keys = np.empty(positions.shape[0], dtype=np.uint64)
    for i in range(positions.shape[0]):
        keys[i] = _mix(base ^ np.uint64(positions[i]))
    return keys


@njit(cache=True, nogil=True, parallel=True)
def _uniforms_kernel(keys, size):
    out = np.empty((keys.shape[0], size), dtype=np.float32)
    for i in prange(keys.shape[0]):
        for j in range(size):
            out[i, j] = _uniform(keys[i], j)
    return out


@njit(cache=True, nogil=True, parallel=True)
def _subset_kernel(keys, n_inputs, n_corrupt):
    # Partial Fisher-Yates: after step t, perm[:t+1] is a uniform random t+1-subset (in random order).
    # j = t + floor(r·(n-t) / 2^32) with r the top 32 bits of a word: bias ≤ n/2^32, i.e. < 1e-6.
    keep = np.ones((keys.shape[0], n_inputs), dtype=np.bool_)
    for i in prange(keys.shape[0]):
        perm = np.arange(n_inputs)
        for t in range(n_corrupt):
            r = _word(keys[i], t) >> _S32
            j = t + np.int64((r * np.uint64(n_inputs - t)) >> _S32)
            perm[t], perm[j] = perm[j], perm[t]
            keep[i, perm[t]] = False
    return keep


@njit(cache=True, nogil=True, parallel=True)
def _bits_where_dropped(keys, keep):
    values = np.zeros(keep.shape, dtype=np.float32)
    for i in prange(keep.shape[0]):
        for j in range(keep.shape[1]):
            if not keep[i, j]:
                values[i, j] = np.float32(_word(keys[i], j) >> _S63)
    return values


def _check_seed(seed) -> np.uint64:
    # Always a numpy.uint64: a Python int reaching the numba functions would be typed int64 at the
    # first call (when small) and overflow for a later seed >= 2**63.
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer in [0, 2**64 - 1], got {seed!r}")
    seed = int(seed)
    if not 0 <= seed <= _U64_MAX:
        raise ValueError(f"seed must be an integer in [0, 2**64 - 1], got {seed}")
    return np.uint64(seed)


def _check_positions(positions) -> np.ndarray:
    pos = np.asarray(positions)
    if pos.ndim != 1 or not (pos.dtype.kind in "iu" or pos.size == 0):
        raise ValueError(
            f"positions must be a 1-d integer array of stream positions, got shape {pos.shape} "
            f"dtype {pos.dtype}"
        )
    pos = pos.astype(np.int64, copy=False)
    if pos.size and pos.min() < 0:
        bad = int(np.argmax(pos < 0))
        raise ValueError(f"positions must be >= 0, found {int(pos[bad])} at index {bad}")
    return np.ascontiguousarray(pos)


def _check_small(name: str, value, upper: int) -> np.uint64:
    value = int(value)
    if not 0 <= value <= upper:
        raise ValueError(f"{name} must be an integer in [0, {upper}], got {value}")
    return np.uint64(value)


def _check_subset(n_inputs, n_corrupt) -> tuple[int, int]:
    n_inputs, n_corrupt = int(n_inputs), int(n_corrupt)
    if n_inputs < 1:
        raise ValueError(f"n_inputs must be >= 1, got {n_inputs}")
    if not 0 <= n_corrupt <= n_inputs:
        raise ValueError(f"n_corrupt must be in [0, n_inputs={n_inputs}], got {n_corrupt}")
    return n_inputs, n_corrupt


def corruption_count(corruption_level: float, fan_in: int) -> int:
    """Number of inputs the corruption replaces in each example: ``round(corruption_level · fan_in)``.

    Halves round up (``floor(x + 0.5)``), unlike Python's ``round``, so the count never depends on
    banker's rounding.

    Parameters
    ----------
    corruption_level : float
        Fraction of inputs corrupted, in [0, 1] (paper 5.3, footnote 7: 0, 0.1, 0.25, 0.4).
    fan_in : int
        Number of inputs of the layer (784 for the first layer), >= 1.

    Returns
    -------
    int
        In [0, fan_in].

    Raises
    ------
    ValueError
        If ``corruption_level`` is not a finite number in [0, 1] or ``fan_in < 1``.
    """
    level = float(corruption_level)
    if not (math.isfinite(level) and 0.0 <= level <= 1.0):
        raise ValueError(f"corruption_level must be in [0, 1], got {corruption_level!r}")
    fan_in = int(fan_in)
    if fan_in < 1:
        raise ValueError(f"fan_in must be >= 1, got {fan_in}")
    return min(fan_in, int(math.floor(level * fan_in + 0.5)))


def uniforms(seed: int, positions, purpose: int, layer: int, size: int) -> np.ndarray:
    """Uniform draws in [0, 1), ``size`` of them per stream position.

    Parameters
    ----------
    seed : int
        Run seed, in [0, 2**64 - 1].
    positions : (n,) int64 array_like
        Stream positions (examples seen since the start of the run, unsupervised included), >= 0.
    purpose : int
        One of the ``PURPOSE_*`` codes of this module (any value in [0, 2**32 - 1] is accepted).
    layer : int
        Layer index, in [0, 2**32 - 1].
    size : int
        Draws per position, >= 0.

    Returns
    -------
    (n, size) float32 ndarray
        Multiples of 2**-24 in [0, 1); row i depends only on (seed, positions[i], purpose, layer).
        The RBM kernels take ``u_hidden = uniforms(..., PURPOSE_RBM_HIDDEN, layer, cd_k * n_hidden)``
        reshaped to ``(n, cd_k, n_hidden)``.

    Raises
    ------
    ValueError
        If an argument is outside the ranges above.
    """
    size = int(size)
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    keys = _row_keys(
        _check_seed(seed),
        _check_positions(positions),
        _check_small("purpose", purpose, _MAX_PURPOSE),
        _check_small("layer", layer, _MAX_LAYER),
    )
    return _uniforms_kernel(keys, size)


def masking_keep(seed: int, positions, layer: int, n_inputs: int, n_corrupt: int) -> np.ndarray:
    """Masking noise of the denoising auto-encoder: which inputs survive.

    Exactly ``n_corrupt`` inputs of each example are dropped (set to 0 by the kernel), a uniformly
    random subset of fixed size (paper 5.1.2; Vincent et al. 2008), drawn by a partial Fisher-Yates
    shuffle driven by the hash (purpose ``PURPOSE_MASKING``).

    Parameters
    ----------
    seed : int
        Run seed, in [0, 2**64 - 1].
    positions : (n,) int64 array_like
        Stream positions, >= 0.
    layer : int
        Index of the layer being pre-trained.
    n_inputs : int
        fan_in of that layer, >= 1.
    n_corrupt : int
        Inputs dropped per example, in [0, n_inputs]; see :func:`corruption_count`.

    Returns
    -------
    (n, n_inputs) bool ndarray
        False where the input is dropped; exactly ``n_corrupt`` False per row.

    Raises
    ------
    ValueError
        If an argument is outside the ranges above.
    """
    n_inputs, n_corrupt = _check_subset(n_inputs, n_corrupt)
    keys = _row_keys(
        _check_seed(seed),
        _check_positions(positions),
        np.uint64(PURPOSE_MASKING),
        _check_small("layer", layer, _MAX_LAYER),
    )
    return _subset_kernel(keys, n_inputs, n_corrupt)


def salt_pepper(
    seed: int, positions, layer: int, n_inputs: int, n_corrupt: int
) -> tuple[np.ndarray, np.ndarray]:
    """Salt-and-pepper noise of the denoising auto-encoder.

    A uniformly random subset of exactly ``n_corrupt`` inputs per example (purpose
    ``PURPOSE_SALT_PEPPER``) is replaced by independent Bernoulli(0.5) values (purpose
    ``PURPOSE_SALT_VALUE``), paper 5.1.2. The corrupted input is ``where(keep, x, values)``.

    Parameters
    ----------
    seed, positions, layer, n_inputs, n_corrupt
        As in :func:`masking_keep`.

    Returns
    -------
    keep : (n, n_inputs) bool ndarray
        False where the input is replaced; exactly ``n_corrupt`` False per row.
    values : (n, n_inputs) float32 ndarray
        The replacement, 0.0 or 1.0 where ``keep`` is False, and 0.0 where it is True (so
        ``x * keep + values`` is the corrupted input too).

    Raises
    ------
    ValueError
        If an argument is outside the ranges above.
    """
    n_inputs, n_corrupt = _check_subset(n_inputs, n_corrupt)
    seed_u = _check_seed(seed)
    pos = _check_positions(positions)
    layer_u = _check_small("layer", layer, _MAX_LAYER)
    keep = _subset_kernel(
        _row_keys(seed_u, pos, np.uint64(PURPOSE_SALT_PEPPER), layer_u), n_inputs, n_corrupt
    )
    values = _bits_where_dropped(
        _row_keys(seed_u, pos, np.uint64(PURPOSE_SALT_VALUE), layer_u), keep
    )
    return keep, values
