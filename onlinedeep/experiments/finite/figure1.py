"""Figures 1 and 2 (paper 6.1): test error against depth (1-5 hidden layers) without and with
pre-training over many seeds: box plots (Figure 1) and histograms for 1 and 4 layers (Figure 2).

Paper: with pre-training the error falls from 1 to 4 layers; without, it rises after 2, with a
spread and bad outliers that grow with depth; 5 layers fail without pre-training.
"""
from __future__ import annotations

from onlinedeep.experiments.finite import plots
from onlinedeep.experiments.finite.common import Cell, preset_config

NAME = "figure1"
DEPTHS = (1, 2, 3, 4, 5)
PANELS = {"uniform": "without pre-training", "pretrained": "with pre-training"}


def cells(preset: str, dataset: str) -> list[Cell]:
    """The cells of Figures 1-2: one per depth, without and with pre-training.

    ``preset``: "paper" or "smoke"; ``dataset``: "mnist" or "shapeset" (see the module
    docstring for the protocol)."""
    return [Cell(f"layers{layers}-{init}",
                 preset_config(preset, dataset, layers=layers, init=init, snapshots="none"),
                 {"layers": layers, "init": init})
            for init in PANELS for layers in DEPTHS]


def draw(plan, results, path):
    """Draw Figures 1-2 as a PNG at ``path`` from ``results`` (list of
    ``common.JobResult``, the finished jobs) and ``plan`` (the folder's ``plan.json`` dict)."""
    groups = plots.by_labels(results, lambda r: PANELS[r.labels["init"]],
                             lambda r: str(r.labels["layers"]), lambda r: 100 * r.best["test_error"])
    plots.boxplots(groups, path, xlabel="hidden layers",
                   title=f"Figure 1 ({plan['dataset']}): test error by depth")
    depths = sorted({r.labels["layers"] for r in results})
    shown = [d for d in (1, 4) if d in depths] or depths[:2]
    hist = {f"{d} hidden layer(s)": plots.by_labels(
                [r for r in results if r.labels["layers"] == d], lambda r: 0,
                lambda r: r.labels["init"], lambda r: 100 * r.best["test_error"]).get(0, {})
            for d in shown}
    plots.histograms(hist, path.with_name("figure2.png"),
                     title=f"Figure 2 ({plan['dataset']}): test errors over seeds")
