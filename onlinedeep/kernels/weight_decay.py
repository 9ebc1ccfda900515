"""Exact L2 weight decay on float32 weights: the scaled representation ``W = s·V`` of all kernels.

The penalty ``l2·Σ W²`` multiplies every weight by ``d = 1 - 2·lr·l2`` at every update, whether its
gradient is zero or not (docs/architecture.md; Erhan et al. 2010, section 5.3 and footnote 5). The
paper's grid reaches ``lr·l2 = 0.005 · 1e-6 = 5e-9``: a relative change of ``1e-8``, below half the
float32 spacing near a weight (``2⁻²⁴ ≈ 6e-8`` to ``2⁻²³``), so ``float32(d·w)`` is ``w`` and a
decay written per weight and per update is lost (``d`` itself rounds to 1.0 in float32 there).

Every kernel therefore keeps, during a supervised chunk, each weight matrix as ``W = s·V``: the
stored tensor holds ``V`` and ``s`` is one float64 scalar, the same for every matrix (each decays by
the same ``d``). An update

* computes the forward and backward passes with ``s·V`` (``h = σ(s·(h_in V) + b)``,
  ``δ_in = s·(δ Vᵀ) ⊙ h ⊙ (1-h)``), at the pre-update scale;
* sets ``s ← s·d`` (float64);
* adds the gradient step in ``V``'s units: ``V ← V - (lr/s)·(h_inᵀ δ + l1·sign(V))``, so that
  ``s·V`` becomes ``d·W - lr·(h_inᵀ δ + l1·sign(W))``, the update of the maths;

so the decay costs O(1) per update and is exact in float64, and a weight with a zero gradient (the
first-layer weights of a pixel that is zero) is not touched at all until the end of the chunk. At
the end of every kernel call (and inside it whenever ``s`` leaves ``[RESCALE_MIN, RESCALE_MAX]``,
far from the range where ``V`` could overflow) the stored tensors are brought back to ``W``:
``V ← float32(float64(V)·s)``, ``s ← 1``, one rounding to float32 per weight. Between chunks the
parameters are therefore the plain weights, as everything else (snapshots, evaluation) expects.

Consequences, tested in tests/test_kernels_weight_decay.py:

* a weight whose gradient stays zero ends a chunk of ``n`` updates at ``float32(w·dⁿ)`` (``dⁿ`` as
  ``n`` float64 products), within half a float32 spacing of the closed form, bit for bit the same
  in every kernel. Over a run that is one rounding per chunk: at ``lr·l2 = 1e-9`` a 1000-update
  chunk decays a weight by 2e-6 of its value (17 to 33 float32 spacings) and rounds it by at most
  half a spacing;
* the numba kernel's weights stay bit-identical for any thread count. Different cuts of the same
  updates into chunks agree to float32 rounding only: each chunk end rounds. No representation
  carried between chunks in float32 weights alone can do better: a one-update chunk must map a
  zero-gradient ``w`` to ``w`` (then it never decays) or to a float at least one spacing away (then
  it decays by at least ``2⁻²⁴`` of its value per update, 30 times the decay at
  ``lr·l2 = 1e-9``). The trainer cuts chunks at fixed stream positions
  (``RunConfig.chunk_ranges``), so a resumed run still repeats an uninterrupted one bit for bit;
* with ``l2 == 0`` no kernel uses this representation: the code path and the weights are those of
  a plain float32 update.

The L1 term is additive (``-lr·l1·sign(W)``, applied to every weight at every update, including
weights whose gradient is zero, in every kernel); a step smaller than half the float32 spacing of a
weight is lost in float32, e.g. below ~1.9e-9 for ``|w| ≈ 0.05``.
"""

from __future__ import annotations

import torch

__all__ = ["RESCALE_MIN", "RESCALE_MAX", "decay_factor", "must_rescale", "rescale_"]

RESCALE_MIN = 2.0 ** -20
"""Below this scale the stored ``V = W/s`` is brought back to ``W`` inside a chunk (keeps ``V``,
whose magnitude grows as ``1/s``, far from float32 overflow at large ``lr·l2``)."""

RESCALE_MAX = 2.0 ** 20
"""Above this scale (only for a negative ``l2``, which the configuration refuses) likewise."""


def decay_factor(learning_rate: float, l2: float) -> float:
    """``d = 1 - 2·learning_rate·l2`` in float64, the factor every weight decays by per update.

    Raises
    ------
    ValueError
        If ``d <= 0`` (``learning_rate · l2 >= 0.5``: the decay alone would flip the weights).
    """
    lr, l2 = float(learning_rate), float(l2)
    decay = 1.0 - 2.0 * lr * l2
    if decay <= 0.0:
        raise ValueError(f"learning_rate · l2 must be < 0.5, got {lr} · {l2}")
    return decay


def must_rescale(scale: float) -> bool:
    """Whether ``scale`` has left ``[RESCALE_MIN, RESCALE_MAX]`` (bring ``V`` back to ``W`` now)."""
    return not RESCALE_MIN <= scale <= RESCALE_MAX


@torch.no_grad()
def rescale_(V: torch.Tensor, scale: float) -> None:
    """``V ← float32(float64(V)·scale)`` in place: the weights ``W = scale·V``, rounded once.

    The product is taken in float64 (a float32 ``scale`` would carry a relative error of up to
    ``2⁻²⁵``, as large as a whole chunk's decay at the smallest ``lr·l2`` of the paper's grid).
    """
    if scale != 1.0:
        V.copy_(V.double().mul_(scale))
