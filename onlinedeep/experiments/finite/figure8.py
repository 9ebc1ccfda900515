"""Figure 8 (paper 7.2): log test NLL against log train NLL after every supervised epoch, without
(blue) and with (red) pre-training, 1-3 hidden layers. Paper: at the same train NLL the pre-trained
networks have a lower test NLL (a regulariser, not merely a better optimiser)."""
from __future__ import annotations

from onlinedeep.experiments.finite import plots
from onlinedeep.experiments.finite.common import Cell, preset_config

NAME = "figure8"
DEPTHS = (1, 2, 3)


def cells(preset: str, dataset: str) -> list[Cell]:
    return [Cell(f"layers{layers}-{init}", preset_config(preset, dataset, layers=layers, init=init),
                 {"layers": layers, "init": init})
            for layers in DEPTHS for init in ("uniform", "pretrained")]


def nll_path(result):
    """``(train NLL, test NLL)`` arrays over the supervised epochs of one run."""
    import numpy as np

    sup = result.records.supervised()
    return (np.array([r["train_nll"] for r in sup]), np.array([r["test_nll"] for r in sup]))


def draw(plan, results, path):
    groups = plots.by_labels(results, lambda r: f"{r.labels['layers']} hidden layer(s)",
                             lambda r: r.labels["init"], nll_path)
    plots.trajectories(groups, path, title=f"Figure 8 ({plan['dataset']}): NLL trajectories by epoch")
