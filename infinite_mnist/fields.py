"""A bank of smooth random displacement fields (Simard, Steinkraus & Platt 2003, section 2.1).

Each field is a 28 x 28 array of per-pixel uniform(-1, 1) values convolved with a normalised
Gaussian of standard deviation ``sigma`` pixels. The stream multiplies a field by ``alpha`` to get a
displacement in pixels, so ``alpha`` and ``sigma`` mean what they mean in Simard et al. (who use
sigma = 4 and alpha = 34 for the full elastic warp).

The bank is a pure function of ``(seed, n_fields, sigma)``: the uniforms come from a counter-based
hash (SplitMix64) and the convolution is computed in a fixed order in float64, so every machine builds
the same bytes. To avoid any border effect (a zero-padded convolution shrinks the field near the
edges), each field is smoothed on a larger canvas and the centre 28 x 28 is kept.
"""
from __future__ import annotations

import functools

import numpy as np

__all__ = ["field_bank", "DEFAULT_N_FIELDS", "DEFAULT_SIGMA"]

#: Number of fields in the bank: 256 x 784 float32 = 784 KiB, which stays in a 1 MiB L2 cache,
#: and gives 256 x 255 ordered pairs x 9 translations = 587,520 deformations per digit.
DEFAULT_N_FIELDS = 256
#: Smoothing of the fields in pixels (Simard et al. 2003).
DEFAULT_SIGMA = 4.0

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser of uint64 values (Steele, Lea & Flood 2014); wraps modulo 2^64."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _uniforms(seed: int, n: int, size: int) -> np.ndarray:
    """(n, size) float64 uniform(-1, 1) values, a pure function of (seed, position)."""
    with np.errstate(over="ignore"):
        base = splitmix64(np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * _GOLDEN + np.uint64(1))
        counters = np.arange(n * size, dtype=np.uint64) * _GOLDEN + base
    bits = splitmix64(counters) >> np.uint64(11)  # 53 random bits
    u = bits.astype(np.float64) * (1.0 / (1 << 53))
    return (2.0 * u - 1.0).reshape(n, size)


@functools.lru_cache(maxsize=8)
def _bank(seed: int, n_fields: int, sigma: float) -> np.ndarray:
    radius = max(1, int(np.ceil(4.0 * sigma)))
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    weights /= weights.sum()
    side = 28 + 2 * radius
    u = _uniforms(seed, n_fields, side * side).reshape(n_fields, side, side)
    # Separable convolution, each output computed in the same fixed order on every machine.
    rows = np.zeros((n_fields, side, 28), dtype=np.float64)
    for k, w in enumerate(weights):
        rows += w * u[:, :, k:k + 28]
    out = np.zeros((n_fields, 28, 28), dtype=np.float64)
    for k, w in enumerate(weights):
        out += w * rows[:, k:k + 28, :]
    bank = out.astype(np.float32).reshape(n_fields, 784)
    bank.flags.writeable = False
    return bank


def field_bank(seed: int = 0, n_fields: int = DEFAULT_N_FIELDS, sigma: float = DEFAULT_SIGMA) -> np.ndarray:
    """The displacement-field bank.

    Parameters
    ----------
    seed : int
        Any integer; the bank is a pure function of ``(seed, n_fields, sigma)``.
    n_fields : int
        At least 2.
    sigma : float
        Gaussian smoothing in pixels, > 0.

    Returns
    -------
    (n_fields, 784) float32 ndarray, read-only
        Field k, row-major 28 x 28, unscaled (multiply by ``alpha`` for pixels). For sigma = 4 the
        standard deviation of a field is about 0.041.

    Raises
    ------
    ValueError
        If ``n_fields < 2`` or ``sigma <= 0``.

    Notes
    -----
    Simard, Steinkraus & Platt (2003), "Best practices for convolutional neural networks applied to
    visual document analysis", section 2.1.
    """
    if int(n_fields) < 2:
        raise ValueError(f"n_fields: expected at least 2, found {n_fields}")
    if not float(sigma) > 0:
        raise ValueError(f"sigma: expected > 0 pixels, found {sigma}")
    return _bank(int(seed), int(n_fields), float(sigma))
