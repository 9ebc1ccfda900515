"""Aggregating the example-ordering experiment: output variance per segment, its table, Figure 13.

See :mod:`onlinedeep.experiments.ordering_variance` for the protocol and the files.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import h5py
import numpy as np

from onlinedeep.atomic import atomic_file, write_bytes
from onlinedeep.experiments.ordering_variance.jobs import are_probabilities, output_path
from onlinedeep.experiments.ordering_variance.plan import (OUTPUT_FORMAT, SAMPLING_VERSION,
                                                           TABLE_FORMAT, Job, OrderingPlan)
from onlinedeep.experiments.ordering_variance.plan_file import load_plan
from onlinedeep.run_folder import JobFolder
from onlinedeep.snapshot import h5_image

__all__ = ["output_variance", "aggregate", "load_table", "plot_figure13", "report"]

TABLE_FILE = "ordering_variance.h5"
FIGURE_FILE = "figure13.png"


def output_variance(probabilities: np.ndarray) -> float:
    """Variance across networks of their outputs, averaged over test examples and classes.

    Parameters
    ----------
    probabilities : (D, n, k) float array_like
        Softmax outputs of D networks on the same n test examples (k classes), D ≥ 2.

    Returns
    -------
    float
        ``mean over (n, k) of var over D`` with the unbiased estimator (ddof = 1), computed in
        float64: the variance "in function space" of paper section 8.2.

    Raises
    ------
    ValueError
        If the array is not 3-D or has fewer than 2 networks.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 3 or p.shape[0] < 2:
        raise ValueError(f"probabilities: expected shape (D >= 2, n, k), found {p.shape}")
    return float(p.var(axis=0, ddof=1).mean())


@contextlib.contextmanager
def _read_h5(path, fmt: str, what: str):
    """Open an HDF5 output of this module whose ``format`` attribute must be ``fmt``.

    Any failure inside the block (missing file, damaged file, wrong format, missing dataset or
    attribute) becomes a ValueError naming the file and ``what`` it should have been.
    """
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != fmt:
                raise ValueError(f"attribute 'format': expected {fmt!r}, found {f.attrs.get('format')!r}")
            yield f
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable {what} ({exc})") from None


def _read_job_output(path: Path, plan: OrderingPlan) -> tuple[np.ndarray, float]:
    with _read_h5(path, OUTPUT_FORMAT, "ordering-variance job output") as f:
        probs = f["probabilities"][...]
        online_error = float(f.attrs["online_error"])
        version = f.attrs.get("sampling_version")
    if version is None or int(version) != SAMPLING_VERSION:
        raise ValueError(f"{path}: made with sampling version {version}, not {SAMPLING_VERSION} "
                         f"(results of two sampling versions are never mixed)")
    n_classes = next(iter(plan.configs.values())).n_classes
    if probs.shape != (plan.test_count, n_classes) or not are_probabilities(probs):
        raise ValueError(
            f"{path}: dataset 'probabilities': expected rows of probabilities (finite, in [0, 1], "
            f"summing to 1) of shape ({plan.test_count}, {n_classes}), found shape {probs.shape}"
            f"{'' if probs.shape != (plan.test_count, n_classes) else ' with other values'}; "
            f"delete the file and rerun the experiment to produce it again"
        )
    return probs, online_error


def aggregate(out: str | os.PathLike) -> dict[str, np.ndarray]:
    """Collect the finished jobs of an experiment folder into one table and write it.

    Parameters
    ----------
    out : path
        Experiment folder (holds ``plan.json``).

    Returns
    -------
    dict of str to ndarray
        Columns, one row per (condition, segment): ``condition`` (str), ``segment`` int64,
        ``fraction`` float64 (s/S), ``n_draws`` int64 (finished draws used), ``variance`` float64
        (:func:`output_variance`; NaN with fewer than 2 finished draws), ``online_error_mean``
        float64 (mean final online error of the draws). Also written to ``out/ordering_variance.h5``
        as the compound dataset ``table`` with the plan as attribute ``plan`` (JSON).

    Raises
    ------
    FileNotFoundError
        If ``out`` holds no plan.
    ValueError
        If a job output is unreadable or malformed (names the file).
    """
    out = Path(out)
    plan = load_plan(out)
    rows = []
    for condition in plan.conditions:
        for s in range(plan.n_segments):
            probs, errors = [], []
            for d in range(plan.n_draws):
                path = output_path(plan, out, Job(condition, s, d))
                if path.exists():
                    p, e = _read_job_output(path, plan)
                    probs.append(p)
                    errors.append(e)
            variance = output_variance(np.stack(probs)) if len(probs) >= 2 else float("nan")
            rows.append((condition, s, plan.fraction(s), len(probs), variance,
                         float(np.mean(errors)) if errors else float("nan")))
    table = {
        "condition": np.array([r[0] for r in rows], dtype=object),
        "segment": np.array([r[1] for r in rows], dtype=np.int64),
        "fraction": np.array([r[2] for r in rows], dtype=np.float64),
        "n_draws": np.array([r[3] for r in rows], dtype=np.int64),
        "variance": np.array([r[4] for r in rows], dtype=np.float64),
        "online_error_mean": np.array([r[5] for r in rows], dtype=np.float64),
    }
    width = max(len(c) for c in plan.conditions)
    dtype = np.dtype([("condition", f"S{width}"), ("segment", "<i8"), ("fraction", "<f8"),
                      ("n_draws", "<i8"), ("variance", "<f8"), ("online_error_mean", "<f8")])
    records = np.array([(r[0].encode(), *r[1:]) for r in rows], dtype=dtype)

    def fill(f: h5py.File) -> None:
        dset = f.create_dataset("table", data=records)
        dset.attrs["variance"] = ("variance across draws of the softmax outputs on the test set, "
                                  "unbiased (ddof=1), averaged over test examples and classes")
        f.attrs["format"] = TABLE_FORMAT
        f.attrs["plan"] = json.dumps(plan.to_dict(), sort_keys=True)

    write_bytes(JobFolder(out).file(TABLE_FILE), h5_image(fill), what="the table")
    return table


def load_table(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a table written by :func:`aggregate` (same columns as it returns).

    Raises
    ------
    ValueError
        If the file is not such a table (names the file and what is wrong).
    """
    with _read_h5(path, TABLE_FORMAT, "ordering-variance table") as f:
        records = f["table"][...]
    table = {name: records[name] for name in records.dtype.names}
    table["condition"] = np.array([c.decode() for c in records["condition"]], dtype=object)
    return table


_LABELS = {"dae": "with pre-training (SDAE)", "rbm": "with pre-training (DBN)",
           "none": "without pre-training"}


def plot_figure13(table: dict[str, np.ndarray], path: str | os.PathLike, *,
                  unsup_fraction: dict[str, float] | None = None, title: str | None = None,
                  n_draws: int | None = None) -> None:
    """Draw Figure 13: output variance against the position of the replaced segment.

    With ``n_draws`` (the plan's D), a segment with fewer finished draws (a run still going) is
    drawn as an open marker off the line, its legend entry saying so; without it every point is
    on the line.

    Parameters
    ----------
    table : dict
        Columns as returned by :func:`aggregate`.
    path : path
        PNG file to write (atomically).
    unsup_fraction : dict of str to float, optional
        Per condition, the fraction of training spent pre-training (drawn as a dotted line; the
        paper's 0.25 mark).
    title : str, optional
    n_draws : int, optional
        Draws per segment in the plan.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.0), dpi=120)
    for condition in dict.fromkeys(table["condition"]):
        rows = table["condition"] == condition
        full = rows if n_draws is None else rows & (table["n_draws"] >= n_draws)
        label = _LABELS.get(condition, condition)
        line, = ax.plot(table["fraction"][full], table["variance"][full], marker="o", label=label)
        part = rows & ~full & (table["n_draws"] >= 2)
        if part.any():
            ax.plot(table["fraction"][part], table["variance"][part], marker="o", linestyle="none",
                    markerfacecolor="none", color=line.get_color(),
                    label=f"{label}: segments with 2-{n_draws - 1} of {n_draws} draws so far")
        frac = (unsup_fraction or {}).get(condition, 0.0)
        if frac > 0:
            ax.axvline(frac, color=line.get_color(), linestyle=":", linewidth=1,
                       label=f"end of pre-training ({condition})")
    ax.set_xlabel("position of the replaced segment (fraction of training)")
    ax.set_ylabel("variance of the output on the test set")
    ax.set_title(title or "Figure 13: influence of example ordering")
    # Below the axes: inside, the legend (up to six entries) covered points of the curves.
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1)
    ax.grid(alpha=0.3)
    try:
        with atomic_file(path) as tmp:
            fig.savefig(tmp, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)


def report(out: str | os.PathLike) -> tuple[dict[str, np.ndarray], Path, Path]:
    """Aggregate an experiment folder and draw its figure.

    Returns
    -------
    (table, table_path, figure_path)
        See :func:`aggregate`; the files are ``out/ordering_variance.h5`` and ``out/figure13.png``.
    """
    out = Path(out)
    table = aggregate(out)
    plan = load_plan(out)
    fractions = {name: cfg.unsup_updates / plan.n_examples for name, cfg in plan.configs.items()}
    plot_figure13(table, JobFolder(out).file(FIGURE_FILE), unsup_fraction=fractions,
                  title=f"Figure 13 (N={plan.n_examples:,}, S={plan.n_segments}, D={plan.n_draws})",
                  n_draws=plan.n_draws)
    return table, JobFolder(out).file(TABLE_FILE), JobFolder(out).file(FIGURE_FILE)
