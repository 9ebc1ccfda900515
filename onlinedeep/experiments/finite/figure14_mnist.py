"""Figure 14, left (paper 8.3 on finite MNIST): 3 hidden layers, RBM pre-training of the bottom
k = 0..3 layers (the others uniform), log test NLL against log train NLL after every epoch. Paper:
the more layers pre-trained, the worse the final training NLL and the better the test NLL."""
from __future__ import annotations

from onlinedeep.experiments.finite import plots
from onlinedeep.experiments.finite.common import Cell, preset_config
from onlinedeep.experiments.finite.figure8 import nll_path

NAME = "figure14-mnist"
LAYERS = 3


def cells(preset: str, dataset: str) -> list[Cell]:
    """The cells of Figure 14 left: one per k = 0..3 pre-trained bottom layers of 3.

    ``preset``: "paper" or "smoke"; ``dataset``: "mnist" or "shapeset" (see the module
    docstring for the protocol)."""
    return [Cell(f"rbm-k{k}", preset_config(preset, dataset, layers=LAYERS, pretrain="rbm",
                                            pretrain_layers=k,
                                            init="pretrained" if k else "uniform"),
                 {"layers": LAYERS, "pretrained_layers": k, "init": f"k={k}"})
            for k in range(LAYERS + 1)]


def draw(plan, results, path):
    """Draw Figure 14 left as a PNG at ``path`` from ``results`` (list of
    ``common.JobResult``, the finished jobs) and ``plan`` (the folder's ``plan.json`` dict)."""
    groups = plots.by_labels(results, lambda r: "3 hidden layers", lambda r: r.labels["init"],
                             nll_path)
    plots.trajectories(groups, path, title=f"Figure 14 left ({plan['dataset']}): RBM pre-training "
                       "of the bottom k layers")
