"""The order of the examples in an epoch: a seeded permutation (paper 5.3, purely stochastic
updates over a fixed training set).

Each epoch of each phase gets its own permutation, a pure function of ``(seed, phase, epoch)``, so
a run is reproducible and a rerun of any epoch presents the same order.
"""
from __future__ import annotations

import numpy as np

__all__ = ["epoch_order", "SUPERVISED"]

#: ``phase`` of the supervised epochs; pre-training epochs of layer k use ``k``.
SUPERVISED = -1
_TAG = 0x4F52444552  # "ORDER": keeps these streams apart from other uses of the seed


def epoch_order(seed: int, phase: int, epoch: int, n: int) -> np.ndarray:
    """The presentation order of epoch ``epoch`` of ``phase``.

    Parameters
    ----------
    seed : int
        The run's seed, in [0, 2⁶³).
    phase : int
        :data:`SUPERVISED` (-1), or the pre-trained layer 0-4.
    epoch : int
        0-based epoch within the phase.
    n : int
        Training examples.

    Returns
    -------
    (n,) int64 ndarray
        A permutation of ``0..n-1`` (NumPy PCG64 seeded with ``SeedSequence([seed, tag, phase + 1,
        epoch])``).
    """
    if phase < SUPERVISED or epoch < 0 or n < 0:
        raise ValueError(f"epoch_order: expected phase >= -1, epoch >= 0, n >= 0; found "
                         f"phase={phase}, epoch={epoch}, n={n}")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(
        [int(seed), _TAG, int(phase) + 1, int(epoch)])))
    return rng.permutation(int(n)).astype(np.int64)
