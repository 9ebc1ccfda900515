"""Figure 9 (paper 7.3): test error against layer size (25-800 units), 1-3 hidden layers, without
pre-training, with denoising auto-encoders and with RBMs; error bars of 2 sd over seeds. Paper:
pre-training hurts small layers and helps large ones."""
from __future__ import annotations

from onlinedeep.experiments.finite import plots
from onlinedeep.experiments.finite.common import Cell, preset_config

NAME = "figure9"
SIZES = {"paper": (25, 50, 100, 200, 400, 800), "smoke": (8, 16)}
DEPTHS = {"paper": (1, 2, 3), "smoke": (1, 2)}
MODES = ("uniform", "dae", "rbm")


def cells(preset: str, dataset: str) -> list[Cell]:
    """The cells of Figure 9: one per layer size, depth and pre-training (none, DAE, RBM).

    ``preset``: "paper" or "smoke"; ``dataset``: "mnist" or "shapeset" (see the module
    docstring for the protocol)."""
    out = []
    for layers in DEPTHS[preset]:
        for units in SIZES[preset]:
            for mode in MODES:
                init = "uniform" if mode == "uniform" else "pretrained"
                fields = {"pretrain": mode} if mode != "uniform" else {}
                config = preset_config(preset, dataset, layers=layers, n_hidden=units, init=init,
                                       snapshots="none", **fields)
                out.append(Cell(f"layers{layers}-units{units}-{mode}", config,
                                {"layers": layers, "units": units, "init": mode}))
    return out


def draw(plan, results, path):
    """Draw Figure 9 as a PNG at ``path`` from ``results`` (list of
    ``common.JobResult``, the finished jobs) and ``plan`` (the folder's ``plan.json`` dict)."""
    groups = plots.by_labels(results, lambda r: f"{r.labels['layers']} hidden layer(s)",
                             lambda r: r.labels["init"],
                             lambda r: (r.labels["units"], 100 * r.best["test_error"]))
    panels = {}
    for panel, series in groups.items():
        panels[panel] = {}
        for mode, pairs in series.items():
            xs = sorted({u for u, _ in pairs})
            panels[panel][mode] = (xs, [[v for u, v in pairs if u == x] for x in xs])
    plots.errorbars(panels, path, xlabel="units per layer", logx=True, sds=2.0,
                    title=f"Figure 9 ({plan['dataset']}): layer size")
