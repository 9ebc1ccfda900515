"""Experiment 5 (paper 7.5): L1 and L2 penalties on the weights of networks without pre-training,
against pre-training. Paper: on MNIST a small penalty can help a little, far less than
pre-training. One hidden layer (the paper does not give the depth)."""
from __future__ import annotations

from onlinedeep.experiments.finite import plots
from onlinedeep.experiments.finite.common import Cell, preset_config

NAME = "l1l2"
PENALTIES = {"paper": (1e-6, 1e-5, 1e-4), "smoke": (1e-4,)}


def cells(preset: str, dataset: str) -> list[Cell]:
    """The cells of experiment 5 (L1/L2): no penalty, L1, L2 and pre-training, 1 hidden layer.

    ``preset``: "paper" or "smoke"; ``dataset``: "mnist" or "shapeset" (see the module
    docstring for the protocol)."""
    def cell(key, init, **fields):
        return Cell(key, preset_config(preset, dataset, layers=1, init=init, snapshots="none",
                                       **fields), {"init": init, "penalty": key})

    out = [cell("none", "uniform")]
    for kind in ("l1", "l2"):
        out += [cell(f"{kind}-{v:g}", "uniform", **{kind: v}) for v in PENALTIES[preset]]
    out.append(cell("pretrained", "pretrained"))
    return out


def draw(plan, results, path):
    """Draw experiment 5 (L1/L2) as a PNG at ``path`` from ``results`` (list of
    ``common.JobResult``, the finished jobs) and ``plan`` (the folder's ``plan.json`` dict)."""
    order = [c.key for c in cells(plan["preset"], plan["dataset"])]  # none, L1, L2, pre-training
    keys = [k for k in order if k in plan["cells"]] + [k for k in plan["cells"] if k not in order]
    values = [[100 * r.best["test_error"] for r in results if r.cell == k] for k in keys]
    plots.errorbars({"penalties": {"test error": (keys, values)}}, path, xlabel="cell",
                    categorical=True, sds=1.0,
                    title=f"L1 / L2 vs pre-training ({plan['dataset']}, ± 1 sd)")
