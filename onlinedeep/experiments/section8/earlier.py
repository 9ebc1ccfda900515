"""Networks trained elsewhere: an earlier report's results stand in for a missing run folder.

Run folders do not move between machines (snapshots stay out of git); a figure's results folder
(``table.csv``, ``online_error.csv``, committed under ``docs/results/``) does. When a report is
written into a results folder that an earlier report filled, each network with nothing trained in
this section-8 folder keeps what that report recorded of it, marked ``(earlier report)``, so a
figure can be completed a few networks at a time on different machines.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onlinedeep.experiments.section8.report import NetworkStatus

__all__ = ["EarlierStatus", "with_earlier_results"]


@dataclass
class EarlierSeries:
    """Supervised online-error records read back from ``online_error.csv``: ``position (n,)
    int64`` (examples seen) and ``online_error (n,) float64``; the same attributes as
    :meth:`onlinedeep.metrics.Series.supervised` gives."""

    position: np.ndarray
    online_error: np.ndarray

    def supervised(self) -> "EarlierSeries":
        return self  # the CSV holds supervised records only

    def __len__(self) -> int:
        return len(self.position)


@dataclass
class EarlierStatus(NetworkStatus):
    """A :class:`NetworkStatus` read from an earlier report's ``table.csv`` row."""

    earlier_status: str = ""

    @property
    def status(self) -> str:
        return f"{self.earlier_status} (earlier report)"


def _number(text: str, kind=float):
    return kind(text) if text not in ("", None) else (float("nan") if kind is float else 0)


def with_earlier_results(folder: Path, statuses: list[NetworkStatus]) -> list[NetworkStatus]:
    """``statuses`` with each network that has no snapshot here replaced by what the earlier
    report in ``folder`` recorded of it (when it recorded updates done); the others unchanged.

    Raises
    ------
    ValueError
        If ``folder``'s ``table.csv`` or ``online_error.csv`` lacks a column a report writes (the
        file and column are named).
    """
    table, series = Path(folder) / "table.csv", Path(folder) / "online_error.csv"
    if not (table.is_file() and series.is_file()):
        return statuses
    with open(table, newline="") as f:
        rows = {r["network"]: r for r in csv.DictReader(f)}
    with open(series, newline="") as f:
        records = list(csv.DictReader(f))
    out = []
    for st in statuses:
        row = rows.get(st.key)
        if st.snapshot is not None or row is None or not _number(row.get("updates_done"), int):
            out.append(st)
            continue
        column = f"online_error_{st.key}"
        try:
            pairs = [(int(r["position"]), float(r[column])) for r in records if r[column]]
            position = int(row["updates_done"])
            values = {k: _number(row[k]) for k in ("online_error_last", "final_online_error",
                                                 "test_error_percent")}
            total, span = int(row["total_updates"]), int(row["last_examples"])
        except KeyError as exc:
            raise ValueError(f"{table if exc.args[0] in row else series}: no column "
                             f"{exc.args[0]!r} (not a figure report's file)") from None
        pos, err = (np.array(v) for v in zip(*pairs)) if pairs else (np.zeros(0, np.int64),
                                                                    np.zeros(0))
        out.append(EarlierStatus(
            st.key, st.config, position, total, EarlierSeries(pos, err), None,
            span, values["online_error_last"],
            row.get("online_error_last_exact") == "1", values["final_online_error"],
            values["test_error_percent"], None,
            earlier_status=row["status"].removesuffix(" (earlier report)")))
    return out
