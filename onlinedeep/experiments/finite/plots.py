"""The figures of the finite-data experiments (matplotlib, Agg): box plots and histograms
(Figures 1-2), NLL trajectories (Figures 8, 10, 14 left), error bars (Figure 9, Table 1, L1/L2)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["boxplots", "histograms", "trajectories", "errorbars"]

COLOURS = {"uniform": "tab:blue", "pretrained": "tab:red", "histogram": "tab:green",
           "dae": "tab:red", "rbm": "tab:orange"}


def _figure(n_panels: int, width: float = 4.2, height: float = 3.6):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, n_panels, figsize=(width * n_panels, height), squeeze=False)
    return plt, fig, axes[0]


def _save(plt, fig, path: Path, title: str) -> Path:
    from onlinedeep.atomic import atomic_file

    import textwrap

    # one narrow panel cannot hold a long title on one line: wrap it to the figure's width
    chars = max(30, int(fig.get_figwidth() * 10))
    fig.suptitle("\n".join(textwrap.wrap(title, chars)))
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def _colour(label: str, i: int) -> str:
    return COLOURS.get(label, f"C{i % 10}")


def boxplots(groups: dict[str, dict[str, list[float]]], path: Path, *, xlabel: str, title: str
             ) -> Path:
    """One panel per group (``{panel: {x label: values}}``), a box per x label (test error %)."""
    plt, fig, axes = _figure(len(groups))
    for ax, (panel, by_x) in zip(axes, groups.items()):
        labels = list(by_x)
        ax.boxplot([by_x[k] for k in labels], whis=1.5)
        ax.set_xticks(range(1, len(labels) + 1), labels)
        ax.set_title(panel)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test error (%)")
    return _save(plt, fig, path, title)


def histograms(groups: dict[str, dict[str, list[float]]], path: Path, *, title: str) -> Path:
    """One panel per group, overlaid histograms of each series (test error %)."""
    plt, fig, axes = _figure(len(groups))
    for ax, (panel, series) in zip(axes, groups.items()):
        values = [v for vs in series.values() for v in vs]
        bins = np.linspace(min(values), max(values) + 1e-9, 20) if values else 10
        for i, (name, vs) in enumerate(series.items()):
            ax.hist(vs, bins=bins, alpha=0.5, label=f"{name} ({len(vs)})", color=_colour(name, i))
        ax.set_title(panel)
        ax.set_xlabel("test error (%)")
        ax.set_ylabel("seeds")
        ax.legend(fontsize=8)
    return _save(plt, fig, path, title)


def trajectories(groups: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]], path: Path, *,
                 title: str) -> Path:
    """One panel per group; for each series, one line per run through its epochs' ``(train NLL,
    test NLL)``, log-log, the first epoch marked (the paper's Figures 8, 10, 14 left)."""
    plt, fig, axes = _figure(len(groups))
    for ax, (panel, series) in zip(axes, groups.items()):
        for i, (name, runs) in enumerate(series.items()):
            colour = _colour(name, i)
            for j, (train_nll, test_nll) in enumerate(runs):
                ax.plot(np.log(train_nll), np.log(test_nll), color=colour, alpha=0.6, lw=0.8,
                        label=f"{name} ({len(runs)})" if j == 0 else None)
                ax.plot(np.log(train_nll[:1]), np.log(test_nll[:1]), "o", color=colour, ms=2.5)
        ax.set_title(panel)
        ax.set_xlabel("log(train NLL)")
        ax.set_ylabel("log(test NLL)")
        ax.legend(fontsize=8)
    return _save(plt, fig, path, title)


def errorbars(groups: dict[str, dict[str, tuple[list, list[list[float]]]]], path: Path, *,
              xlabel: str, title: str, sds: float = 2.0, logx: bool = False,
              categorical: bool = False) -> Path:
    """One panel per group; per series, the mean test error (%) at each x with bars of ``sds``
    standard deviations over seeds (the paper's Figure 9: 2 sd)."""
    plt, fig, axes = _figure(len(groups))
    for ax, (panel, series) in zip(axes, groups.items()):
        for i, (name, (xs, values)) in enumerate(series.items()):
            means = [np.mean(v) if v else math.nan for v in values]
            err = [sds * np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in values]
            pos = np.arange(len(xs)) + 0.08 * i if categorical else np.asarray(xs, dtype=float)
            # categories are not a sequence: points only, no line between them
            ax.errorbar(pos, means, yerr=err, marker="o", capsize=3, label=name,
                        color=_colour(name, i), linestyle="none" if categorical else "-")
            if categorical:
                labels = [str(x) for x in xs]
                ax.set_xticks(np.arange(len(xs)), labels,
                              rotation=45 if max(map(len, labels)) > 4 else 0, ha="right"
                              if max(map(len, labels)) > 4 else "center")
        if logx:  # ticks at the measured sizes, plain numbers (no 3 x 10^1 minor labels)
            ax.set_xscale("log")
            ticks = sorted({float(x) for _, (xs, _) in series.items() for x in xs})
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_title(panel)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"test error (%), bars ±{sds:g} sd")
        ax.legend(fontsize=8)
    return _save(plt, fig, path, title)


def by_labels(results, panel: Callable, series: Callable, value: Callable) -> dict:
    """``{panel(r): {series(r): [value(r), ...]}}`` of job results, in first-seen order."""
    out: dict = {}
    for r in results:
        out.setdefault(panel(r), {}).setdefault(series(r), []).append(value(r))
    return out
