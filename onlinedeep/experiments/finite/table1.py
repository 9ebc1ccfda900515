"""Table 1 (paper 7.1): uniform initialisation, initialisation from the marginal histograms of the
pre-trained weights and biases, and unsupervised pre-training, for 1 and 2 hidden layers.

Paper (MNIST test error %, mean ± sd over seeds): uniform 1.81 ± 0.07 / 1.77 ± 0.10, histogram
1.94 ± 0.09 / 1.69 ± 0.11, pre-trained 1.41 ± 0.07 / 1.37 ± 0.09. A histogram run of seed s draws
from the pre-trained network of the same seed (the ``pretrained`` cell's snapshot at the end of
its pre-training), so it runs after that job.
"""
from __future__ import annotations

from onlinedeep.experiments.finite import plots
from onlinedeep.experiments.finite.common import Cell, preset_config

NAME = "table1"
LAYERS = (1, 2)
INITS = ("uniform", "histogram", "pretrained")


def cells(preset: str, dataset: str) -> list[Cell]:
    """The cells of Table 1: uniform, histogram and pre-trained initialisation for 1 and 2
    hidden layers; a histogram cell runs after the pre-trained cell of its seed.

    ``preset``: "paper" or "smoke"; ``dataset``: "mnist" or "shapeset" (see the module
    docstring for the protocol)."""
    out = []
    for layers in LAYERS:
        pre = f"layers{layers}-pretrained"
        out.append(Cell(pre, preset_config(preset, dataset, layers=layers, init="pretrained"),
                        {"layers": layers, "init": "pretrained"}))
        for init in ("uniform", "histogram"):
            out.append(Cell(f"layers{layers}-{init}",
                            preset_config(preset, dataset, layers=layers, init=init,
                                          snapshots="none"),
                            {"layers": layers, "init": init},
                            after=pre if init == "histogram" else None))
    return out


def draw(plan, results, path):
    """Draw Table 1 as a PNG at ``path`` from ``results`` (list of
    ``common.JobResult``, the finished jobs) and ``plan`` (the folder's ``plan.json`` dict)."""
    groups = plots.by_labels(results, lambda r: "Table 1", lambda r: r.labels["init"],
                             lambda r: (r.labels["layers"], 100 * r.best["test_error"]))
    series = {}
    for init in INITS:
        pairs = groups.get("Table 1", {}).get(init, [])
        values = [[v for layer, v in pairs if layer == L] for L in LAYERS]
        series[init] = (list(LAYERS), values)
    plots.errorbars({"Table 1": series}, path, xlabel="hidden layers", categorical=True, sds=1.0,
                    title=f"{plan['dataset']}: initialisation (mean ± 1 sd over seeds)")
