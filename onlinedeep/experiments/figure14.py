"""Figure 14 (right): pre-training only the bottom k of n = 3 layers with denoising auto-encoders.

Erhan et al. (2010), section 8.3: k = 0 (no pre-training) to k = 3 (all layers), the online
error on InfiniteMNIST. k = 0 and k = 3 are Figure 11's ``layers3-none`` and ``layers3-dae``
(the same run folders, never trained twice); k = 1, 2 are ``layers3-dae-k1`` and
``layers3-dae-k2`` (:mod:`onlinedeep.experiments.section8`).
"""
from __future__ import annotations

import os

from onlinedeep.experiments import section8
from onlinedeep.experiments.figure11 import Report, curve_report

__all__ = ["LABELS", "report"]

LABELS = {
    "layers3-none": "k = 0 (no pre-training)",
    "layers3-dae-k1": "k = 1 pre-trained layer",
    "layers3-dae-k2": "k = 2 pre-trained layers",
    "layers3-dae": "k = 3 (all layers pre-trained)",
}


def report(out: str | os.PathLike = section8.DEFAULT_OUT, *, preset: str | None = None,
           results: str | os.PathLike | None = None) -> Report:
    """Figure 14's report: the online-error curves of k = 0..3 (see :func:`figure11.curve_report`)."""
    return curve_report("figure14", out, section8.FIGURE_KEYS["figure14"], LABELS,
                        title="Figure 14: SDAE pre-training of the bottom k of 3 layers",
                        preset=preset, results=results)
