"""What the section-8 reports show of a network (:class:`NetworkStatus`) and the files they write
(CSV tables, ``command.txt``, the report folder)."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onlinedeep.config import RunConfig, format_count
from onlinedeep.experiments.section8.jobs import has_train_error
from onlinedeep.experiments.section8.networks import PRESETS, key_config
from onlinedeep.run_folder import RunFolder


@dataclass
class NetworkStatus:
    """What a report shows of one network (from its newest snapshot and run folder).

    Attributes
    ----------
    key : str
    config : RunConfig
        The stored configuration (the wanted one when nothing is trained yet).
    position, total : int
        Updates done (newest snapshot) and planned.
    series : onlinedeep.metrics.Series or None
        Metrics records up to ``position`` (None: no snapshot yet).
    snapshot : Path or None
    online_error_last : float
        Mean 0/1 online error over the last ``last_examples`` supervised examples before
        ``position`` (NaN when fewer were seen); ``last_exact`` whether it is exact (an average
        of non-overlapping windowed records that tile the span) or the mean of the windowed
        records inside the span.
    final_online_error : float
        The last record's windowed online error.
    test_error_percent : float
        Recorded test error (%) of the network at ``position`` (NaN if not evaluated).
    train_error : dict or None
        The Figure 12 blocks of the final snapshot.
    """

    key: str
    config: RunConfig
    position: int
    total: int
    series: Any
    snapshot: Path | None
    last_examples: int
    online_error_last: float
    last_exact: bool
    final_online_error: float
    test_error_percent: float
    train_error: dict | None = None

    @property
    def complete(self) -> bool:
        return self.position >= self.total

    @property
    def status(self) -> str:
        """``complete`` or ``partial, N of M`` (counts with suffixes)."""
        if self.complete:
            return "complete"
        return f"partial, {format_count(self.position)} of {format_count(self.total)}"


def online_error_last(series, *, window: int, span: int, start: int, end: int) -> tuple[float, bool]:
    """Mean 0/1 online error over the supervised examples ``[end - span, end)``, from records.

    A record at position p holds the mean error of the ``window`` examples before p. If records
    exist at ``end, end - window, ..., end - span + window`` (span a multiple of the window, all
    windows supervised) their average is the exact mean over the span; otherwise the mean of the
    records whose window lies inside the span is returned, marked inexact.

    Parameters
    ----------
    series : Series
        Supervised records (``series.supervised()``).
    window, span : int
        Examples.
    start : int
        First supervised position (``unsup_updates``).
    end : int
        Position the span ends at.

    Returns
    -------
    (float, bool)
        The mean (NaN if fewer than ``span`` supervised examples precede ``end`` or no record lies
        inside) and whether it is exact.
    """
    if end - span < start or not len(series):
        return float("nan"), False
    by_position = dict(zip(series.position.tolist(), series.online_error.tolist()))
    if span % window == 0:
        wanted = [end - j * window for j in range(span // window)]
        if all(p in by_position for p in wanted):
            return float(np.mean([by_position[p] for p in wanted])), True
    inside = (series.position - window >= end - span) & (series.position <= end)
    values = series.online_error[inside]
    values = values[np.isfinite(values)]
    return (float(values.mean()) if len(values) else float("nan")), False


def network_status(out: str | os.PathLike, key: str, preset: str = "paper") -> NetworkStatus:
    """The state of network ``key`` in ``out``, for reports (works on partial runs).

    Raises
    ------
    SnapshotError
        If the newest snapshot cannot be read.
    """
    from onlinedeep import snapshot as snapshots
    from onlinedeep.evaluate import EvaluationError, recorded

    wanted = key_config(key, preset=preset, out=out)
    folder = RunFolder(Path(out) / key)
    held = folder.snapshots()
    span = PRESETS[preset]["last_examples"]
    if not held:
        return NetworkStatus(key, wanted, 0, wanted.total_updates, None, None, span, float("nan"),
                             False, float("nan"), float("nan"))
    position, _, path = held[-1]
    config, series = snapshots.read_series(path)
    sup = series.supervised()
    last, exact = online_error_last(sup, window=config.window, span=span,
                                    start=config.unsup_updates, end=position)
    finals = sup.online_error[np.isfinite(sup.online_error)]
    try:
        entry = recorded(folder.path, "test", position=position)
    except (EvaluationError, OSError):
        entry = None
    train_error = None
    if position >= config.total_updates and has_train_error(path):
        train_error = snapshots.load(path).train_error
    return NetworkStatus(key, config, position, config.total_updates, series, path, span, last,
                         exact, float(finals[-1]) if len(finals) else float("nan"),
                         float(entry["error_percent"]) if entry else float("nan"), train_error)


def train_command(config: RunConfig, preset: str) -> str:
    """The ``onlinedeep train`` command that trains the network of ``config`` alone (the same run
    folder, so the experiment adopts it)."""
    base = RunConfig.preset("paper", layers=config.layers, pretrain=config.pretrain)
    flags = [f"--out {config.out}", f"--name {config.name}", f"--layers {config.layers}",
             f"--pretrain {config.pretrain}"]
    for field, (value, default) in config.diff(base).items():
        if field in ("name", "out", "threads", "layers", "pretrain"):
            continue
        flag = "--" + field.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else f"--no-{field.replace('_', '-')}")
        else:
            flags.append(f"{flag} {value}")
    return "onlinedeep train " + " ".join(flags) + " --threads 1"


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    """Write a CSV file atomically (floats with up to 6 significant digits, NaN as empty)."""
    import csv
    import io

    from onlinedeep.atomic import atomic_file

    def cell(v):
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.6g}"
        return "" if v is None else v

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[cell(v) for v in row] for row in rows])
    with atomic_file(path) as tmp:
        Path(tmp).write_text(buf.getvalue())
    return path


def write_text(path: Path, text: str) -> Path:
    """Write a text file atomically."""
    from onlinedeep.atomic import atomic_file

    with atomic_file(path) as tmp:
        Path(tmp).write_text(text)
    return path


def report_folder(out: str | os.PathLike, figure: str, results: str | os.PathLike | None = None,
                  statuses: list | None = None) -> Path:
    """``out/reports/<figure>/``, or ``<results>/<figure>/`` (created).

    Raises
    ------
    RunDirError
        If ``statuses`` are given and none of their networks has a snapshot yet (a mistyped
        ``--out``, or a folder where nothing was trained): nothing is created.
    """
    from onlinedeep.atomic import make_folder
    from onlinedeep.run_folder import RunDirError

    if statuses is not None and all(st.snapshot is None for st in statuses):
        raise RunDirError(
            f"{out}: holds no run of {figure}'s networks ({', '.join(st.key for st in statuses)}) "
            f"with a snapshot; train them first: onlinedeep experiment run {figure} --out {out}")

    path = (Path(results) if results is not None else Path(out) / "reports") / figure
    make_folder(path, "the report folder")
    return path


def subsample(n: int, limit: int = 2_000) -> np.ndarray:
    """Indices of at most ``limit`` evenly spaced records of ``n``, the first and last included."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def series_rows(statuses: list[NetworkStatus], limit: int = 2_000) -> tuple[list[str], list[list]]:
    """The wide CSV of online-error curves: ``position`` and one column per network (empty where
    a network has no record), each curve subsampled to at most ``limit`` records."""
    curves = {}
    for st in statuses:
        if st.series is None:
            curves[st.key] = {}
            continue
        sup = st.series.supervised()
        keep = np.isfinite(sup.online_error)
        pos, err = sup.position[keep], sup.online_error[keep]
        pick = subsample(len(pos), limit)
        curves[st.key] = dict(zip(pos[pick].tolist(), err[pick].tolist()))
    positions = sorted(set().union(*[c.keys() for c in curves.values()]))
    rows = [[p] + [curves[k].get(p, float("nan")) for k in curves] for p in positions]
    return ["position"] + [f"online_error_{k}" for k in curves], rows
