"""Shapeset, generated: 10 × 10 grey images of a triangle or a square (binary task).

The paper's Shapeset (section 5.2: triangles vs squares, 10 × 10, varying size, orientation and
grey level; 50,000 / 10,000 / 10,000) cannot be downloaded any more, so this module generates a data
set to that description. Each example is a pure function of ``(seed, split, index)``: row ``i`` of a
split is drawn from the ``i``-th block of 8 uniforms of a NumPy ``Generator`` (PCG64) seeded with
``SeedSequence([seed, split code])``, so the first ``m`` examples do not depend on how many are asked.

What varies, per example (u₀..u₇ its uniforms in [0, 1)):

=================  =====================================================================
label              ``u₀ < 0.5``: 1 = square, else 0 = triangle (balanced in expectation)
area               ``6 + 19·u₁`` pixels² (the same range for both classes, so the area alone
                   does not tell the class); an equilateral triangle or a square of that area
orientation        ``θ = 2π·u₂`` (the shape's vertices at angles ``θ + 2πk/3`` or ``θ + πk/2``
                   around its centre)
position           the centre uniform over the positions keeping every vertex inside the
                   image: ``x = -min_x + u₃·(10 - (max_x - min_x))``, likewise ``y`` with u₄
grey levels        background and foreground: a dark level ``0.4·u₅`` and a light level
                   ``0.6 + 0.4·u₆``; ``u₇ < 0.5``: light shape on dark ground, else dark on light
                   (contrast at least 0.2)
=================  =====================================================================

Rasterisation: pixel (r, c) covers ``[c, c+1) × [r, r+1)`` in image coordinates (x to the right, y
down); its coverage is the fraction of a 4 × 4 grid of sample points ``(c + (j+½)/4, r + (i+½)/4)``
inside the convex polygon (inside: on the inner side of every edge, counter-clockwise); the pixel's
value is ``background + coverage·(foreground - background)``, float32 in [0, 1].
"""
from __future__ import annotations

import numpy as np

__all__ = ["N_INPUTS", "SIDE", "SPLIT_SIZES", "VERSION", "generate", "shape_params", "rasterise"]

SIDE = 10
N_INPUTS = SIDE * SIDE
#: Paper 5.2: 50,000 training, 10,000 validation and 10,000 test images.
SPLIT_SIZES = {"train": 50_000, "valid": 10_000, "test": 10_000}
#: Bumped whenever the generated images change (stored in provenance).
VERSION = 1
_SPLIT_CODES = {"train": 1, "valid": 2, "test": 3}
_SUPERSAMPLE = 4
_AREA = (6.0, 25.0)
_BLOCK = 4096


def shape_params(n: int, *, seed: int = 0, split: str = "train") -> dict[str, np.ndarray]:
    """The drawn parameters of the first ``n`` examples of a split (see the module docstring).

    Returns
    -------
    dict
        ``label (n,) int64``, ``area``, ``theta``, ``cx``, ``cy``, ``background``, ``foreground``
        ``(n,) float64``, and ``vertices (n, 4, 2) float64`` (a triangle repeats its first vertex).

    Raises
    ------
    ValueError
        On a negative ``n``, a seed outside [0, 2⁶³) or an unknown split.
    """
    if split not in _SPLIT_CODES:
        raise ValueError(f"split: expected one of {tuple(_SPLIT_CODES)}, found {split!r}")
    if int(n) != n or n < 0:
        raise ValueError(f"n: expected an integer >= 0, found {n!r}")
    if int(seed) != seed or not 0 <= seed < 2**63:
        raise ValueError(f"seed: expected an integer in [0, 2**63), found {seed!r}")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), _SPLIT_CODES[split]])))
    u = rng.random((int(n), 8))
    label = (u[:, 0] < 0.5).astype(np.int64)
    area = _AREA[0] + (_AREA[1] - _AREA[0]) * u[:, 1]
    theta = 2 * np.pi * u[:, 2]
    square = label == 1
    # circumradius of the polygon of that area: square 2r², equilateral triangle (3√3/4)r²
    radius = np.where(square, np.sqrt(area / 2.0), np.sqrt(area / (3.0 * np.sqrt(3.0) / 4.0)))
    k = np.arange(4)
    step = np.where(square, np.pi / 2, 2 * np.pi / 3)[:, None]
    angles = theta[:, None] + step * np.where(square[:, None], k, np.minimum(k, 3) % 3)
    offsets = np.stack([radius[:, None] * np.cos(angles), radius[:, None] * np.sin(angles)], axis=2)
    lo, hi = offsets.min(axis=1), offsets.max(axis=1)
    cx = -lo[:, 0] + u[:, 3] * (SIDE - (hi[:, 0] - lo[:, 0]))
    cy = -lo[:, 1] + u[:, 4] * (SIDE - (hi[:, 1] - lo[:, 1]))
    dark, light = 0.4 * u[:, 5], 0.6 + 0.4 * u[:, 6]
    light_shape = u[:, 7] < 0.5
    return {
        "label": label, "area": area, "theta": theta, "cx": cx, "cy": cy,
        "background": np.where(light_shape, dark, light),
        "foreground": np.where(light_shape, light, dark),
        "vertices": offsets + np.stack([cx, cy], axis=1)[:, None, :],
    }


def _sample_points() -> np.ndarray:
    """``(SIDE², S², 2)`` sample points of every pixel, row-major pixels."""
    s = (np.arange(_SUPERSAMPLE) + 0.5) / _SUPERSAMPLE
    sy, sx = np.meshgrid(s, s, indexing="ij")
    r, c = np.meshgrid(np.arange(SIDE), np.arange(SIDE), indexing="ij")
    px = c.reshape(-1, 1) + sx.reshape(1, -1)
    py = r.reshape(-1, 1) + sy.reshape(1, -1)
    return np.stack([px, py], axis=2)


def rasterise(vertices: np.ndarray) -> np.ndarray:
    """Coverage of each pixel by convex polygons.

    Parameters
    ----------
    vertices : (n, m, 2) float64
        Each polygon's vertices in order (either orientation; a repeated vertex is a zero-length
        edge and ignored).

    Returns
    -------
    (n, SIDE²) float64
        Fraction of each pixel's 4 × 4 sample points inside the polygon, in [0, 1].
    """
    pts = _sample_points()[None]                               # (1, P, S, 2)
    v = np.asarray(vertices, dtype=np.float64)
    e = np.roll(v, -1, axis=1) - v                              # edges (n, m, 2)
    # orientation of each polygon, so "inside" is the same side of every edge
    signed = np.sum(v[:, :, 0] * np.roll(v[:, :, 1], -1, 1) - np.roll(v[:, :, 0], -1, 1) * v[:, :, 1], 1)
    orient = np.where(signed >= 0, 1.0, -1.0)
    out = np.empty((v.shape[0], SIDE * SIDE))
    for a in range(0, v.shape[0], _BLOCK):
        b = min(v.shape[0], a + _BLOCK)
        inside = np.ones((b - a, SIDE * SIDE, _SUPERSAMPLE ** 2), dtype=bool)
        for j in range(v.shape[1]):
            ex, ey = e[a:b, j, 0, None, None], e[a:b, j, 1, None, None]
            dx = pts[..., 0] - v[a:b, j, 0, None, None]
            dy = pts[..., 1] - v[a:b, j, 1, None, None]
            inside &= orient[a:b, None, None] * (ex * dy - ey * dx) >= 0
        out[a:b] = inside.mean(axis=2)
    return out


def generate(n: int, *, seed: int = 0, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` examples of a Shapeset split.

    Parameters
    ----------
    n : int
    seed : int
        In [0, 2⁶³).
    split : {"train", "valid", "test"}

    Returns
    -------
    images : (n, 100) float32 ndarray
        Row-major 10 × 10 images in [0, 1].
    labels : (n,) int64 ndarray
        0 = triangle, 1 = square.

    Raises
    ------
    ValueError
        As :func:`shape_params`.
    """
    p = shape_params(n, seed=seed, split=split)
    coverage = rasterise(p["vertices"])
    images = p["background"][:, None] + coverage * (p["foreground"] - p["background"])[:, None]
    return np.clip(images, 0.0, 1.0).astype(np.float32), p["label"]
