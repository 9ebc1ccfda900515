"""Figure 10 (paper 7.4): the top hidden layer limited to 20 units, trained without early stopping;
log test NLL against log train NLL after every epoch. Paper: the pre-trained networks end with a
higher training NLL and a lower test NLL (against the optimisation hypothesis). The paper does not
give the depth; this experiment uses 2 hidden layers (``n_hidden`` then 20 units). The table's
``last_*`` columns are the values without early stopping."""
from __future__ import annotations

from onlinedeep.experiments.finite import plots
from onlinedeep.experiments.finite.common import Cell, preset_config
from onlinedeep.experiments.finite.figure8 import nll_path

NAME = "figure10"
LAYERS = 2
TOP_UNITS = {"paper": 20, "smoke": 4}


def cells(preset: str, dataset: str) -> list[Cell]:
    """The cells of Figure 10: uniform and pre-trained initialisation, top hidden layer limited.

    ``preset``: "paper" or "smoke"; ``dataset``: "mnist" or "shapeset" (see the module
    docstring for the protocol)."""
    return [Cell(f"top{TOP_UNITS[preset]}-{init}",
                 preset_config(preset, dataset, layers=LAYERS, top_units=TOP_UNITS[preset],
                               init=init, snapshots="none"),
                 {"layers": LAYERS, "init": init})
            for init in ("uniform", "pretrained")]


def draw(plan, results, path):
    """Draw Figure 10 as a PNG at ``path`` from ``results`` (list of
    ``common.JobResult``, the finished jobs) and ``plan`` (the folder's ``plan.json`` dict)."""
    groups = plots.by_labels(results, lambda r: "top layer limited", lambda r: r.labels["init"],
                             nll_path)
    plots.trajectories(groups, path,
                       title=f"Figure 10 ({plan['dataset']}): small top layer, every epoch")
