"""Figure 8 (paper 7.2): log test NLL against log train NLL after every supervised epoch, without
(blue) and with (red) pre-training, 1-3 hidden layers. Paper: at the same train NLL the pre-trained
networks have a lower test NLL (a regulariser, not merely a better optimiser)."""
from __future__ import annotations

from pathlib import Path

from onlinedeep.experiments.finite import plots
from onlinedeep.experiments.finite.common import Cell, preset_config

NAME = "figure8"
DEPTHS = (1, 2, 3)


def cells(preset: str, dataset: str) -> list[Cell]:
    """The cells of Figure 8: uniform and pre-trained initialisation for each depth.

    ``preset``: "paper" or "smoke"; ``dataset``: "mnist" or "shapeset" (see the module
    docstring for the protocol)."""
    return [Cell(f"layers{layers}-{init}", preset_config(preset, dataset, layers=layers, init=init),
                 {"layers": layers, "init": init})
            for layers in DEPTHS for init in ("uniform", "pretrained")]


def nll_path(result):
    """``(train NLL, test NLL)`` arrays over the supervised epochs of one run."""
    import numpy as np

    sup = result.records.supervised()
    return (np.array([r["train_nll"] for r in sup]), np.array([r["test_nll"] for r in sup]))


def draw(plan, results, path):
    """Draw Figure 8 as a PNG at ``path`` from ``results`` (list of
    ``common.JobResult``, the finished jobs) and ``plan`` (the folder's ``plan.json`` dict)."""
    groups = plots.by_labels(results, lambda r: f"{r.labels['layers']} hidden layer(s)",
                             lambda r: r.labels["init"], nll_path)
    plots.trajectories(groups, path, title=f"Figure 8 ({plan['dataset']}): NLL trajectories by epoch")


def matched_nll(paths: dict[str, list], bins: int = 8, min_points: int = 3) -> list[dict]:
    """The claim of Figure 8 in numbers: at the same train NLL, the test NLL of each condition.

    Parameters
    ----------
    paths : dict of str to list of (train NLL, test NLL) array pairs
        Per condition (e.g. ``"uniform"``, ``"pretrained"``), one pair per run (:func:`nll_path`).
    bins : int
        Equal-width bins of log train NLL over the range both conditions reach.
    min_points : int
        Epoch points a condition needs in a bin for the bin to count.

    Returns
    -------
    list of dict
        One row per bin where every condition has ``min_points``: ``log_train_lo``,
        ``log_train_hi``, and per condition ``<name>_log_test`` (mean log test NLL of its points in
        the bin) and ``<name>_points``.
    """
    import numpy as np

    pooled = {}
    for name, pairs in paths.items():
        tr = np.concatenate([np.log(np.asarray(t, float)) for t, _ in pairs]) if pairs else np.empty(0)
        te = np.concatenate([np.log(np.asarray(v, float)) for _, v in pairs]) if pairs else np.empty(0)
        pooled[name] = (tr, te)
    if any(len(tr) == 0 for tr, _ in pooled.values()):
        return []
    lo = max(tr.min() for tr, _ in pooled.values())
    hi = min(tr.max() for tr, _ in pooled.values())
    if not hi > lo:
        return []
    edges = np.linspace(lo, hi, bins + 1)
    rows = []
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        row: dict = {"log_train_lo": float(a), "log_train_hi": float(b)}
        for name, (tr, te) in pooled.items():
            sel = (tr >= a) & ((tr < b) if i < bins - 1 else (tr <= b))
            row[f"{name}_points"] = int(sel.sum())
            row[f"{name}_log_test"] = float(te[sel].mean()) if sel.any() else float("nan")
        if all(row[f"{name}_points"] >= min_points for name in pooled):
            rows.append(row)
    return rows


def extra(plan: dict, results: list, folder: Path) -> dict[str, Path]:
    """``matched.csv``: per depth and bin of log train NLL, the mean log test NLL of the networks
    without and with pre-training (:func:`matched_nll`), and their difference."""
    import csv
    import io

    from onlinedeep.atomic import atomic_file

    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["layers", "log_train_lo", "log_train_hi", "uniform_points", "pretrained_points",
                "uniform_log_test", "pretrained_log_test", "pretrained_minus_uniform"])
    for depth in sorted({r.labels["layers"] for r in results}):
        paths = {init: [nll_path(r) for r in results
                        if r.labels["layers"] == depth and r.labels["init"] == init]
                 for init in ("uniform", "pretrained")}
        for row in matched_nll(paths):
            w.writerow([depth, f"{row['log_train_lo']:.4f}", f"{row['log_train_hi']:.4f}",
                        row["uniform_points"], row["pretrained_points"],
                        f"{row['uniform_log_test']:.4f}", f"{row['pretrained_log_test']:.4f}",
                        f"{row['pretrained_log_test'] - row['uniform_log_test']:.4f}"])
    path = folder / "matched.csv"
    with atomic_file(path) as tmp:
        Path(tmp).write_text(out.getvalue())
    return {"matched": path}
