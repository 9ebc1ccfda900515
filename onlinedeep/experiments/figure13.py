"""Figure 13 inside the section-8 folder: the ordering-variance experiment in ``OUT/figure13/``.

The experiment itself is :mod:`onlinedeep.experiments.ordering_variance` (paper 8.2); this module
places it in the section-8 folder (``onlinedeep experiment run figure13 --out OUT`` is
``onlinedeep ordering-variance run --out OUT/figure13``) and writes its report beside the other
figures' (``OUT/reports/figure13/``).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from onlinedeep.experiments import section8
from onlinedeep.experiments.ordering_variance.plan import segment_ranges

__all__ = ["plan", "Report", "report"]

TABLE_HEADER = ["condition", "segment", "fraction", "n_draws", "variance", "online_error_mean",
                "source"]
PLAN_COPY = "plan.json"
HERE, EARLIER = "this folder", "earlier report"


def plan(preset: str = "paper", **options):
    """The ordering-variance plan of a preset (:meth:`OrderingPlan.preset`)."""
    from onlinedeep.experiments.ordering_variance import OrderingPlan

    return OrderingPlan.preset(preset, **options)


@dataclass
class Report:
    """What :func:`report` wrote: the ``table`` (columns of :func:`ordering_variance.aggregate`),
    ``table_csv``, ``figure`` (PNG) and ``command``."""

    table: dict
    table_csv: Path
    figure: Path
    command: Path


def _earlier_rows(folder: Path, the_plan) -> dict[tuple[str, int], dict[str, str]]:
    """The rows with finished draws of the earlier report in ``folder`` (its ``table.csv``
    beside its copy of the plan), by (condition, segment); none if ``folder`` holds no report.

    Raises
    ------
    ValueError
        If the plan copy or the table is there but cannot be read or is incomplete, the table is
        there without the plan copy, or the plan is another one: a report of another experiment
        is not overwritten.
    """
    import csv
    import math

    from onlinedeep.experiments.ordering_variance import OrderingPlan

    where = f"{folder}: the earlier report there"
    if not (folder / PLAN_COPY).exists():
        if (folder / "table.csv").exists():  # its plan is unknown: never overwritten unread
            raise ValueError(f"{where} has a table.csv but no {PLAN_COPY}, so its plan is "
                             f"unknown; restore {PLAN_COPY} (e.g. from git) or remove table.csv")
        return {}
    try:
        earlier = OrderingPlan.from_dict(json.loads((folder / PLAN_COPY).read_text()))
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"{where} cannot be read ({exc}); restore its {PLAN_COPY} and table.csv "
                         f"(e.g. from git) or remove them") from None
    diffs = earlier.differences(the_plan)
    if diffs:
        raise ValueError(f"{where} is of another plan (earlier vs now: {'; '.join(diffs)}); "
                         f"report into another --results folder, or remove {folder} first")
    try:
        with open(folder / "table.csv", newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not set(TABLE_HEADER[:6]) <= set(reader.fieldnames):
                raise ValueError(f"table.csv: expected the columns {TABLE_HEADER}, found "
                                 f"{reader.fieldnames}")
            rows = {}
            for r in reader:
                key = (r["condition"], int(r["segment"]))
                n_draws = int(r["n_draws"])
                numbers = [float(r[c]) if r[c] else math.nan
                           for c in ("fraction", "variance", "online_error_mean")]
                if (key[0] not in earlier.conditions or not 0 <= key[1] < earlier.n_segments
                        or not 0 <= n_draws <= earlier.n_draws or key in rows
                        or (n_draws >= 2 and not numbers[1] >= 0)):
                    raise ValueError(f"table.csv: row {dict(r)} does not fit the plan")
                rows[key] = r
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"{where} cannot be read ({exc}); restore its {PLAN_COPY} and table.csv "
                         f"(e.g. from git) or remove them") from None
    if len(rows) != len(earlier.conditions) * earlier.n_segments:
        raise ValueError(f"{where} cannot be read (table.csv: {len(rows)} rows, the plan has "
                         f"{len(earlier.conditions) * earlier.n_segments}); restore it (e.g. from "
                         f"git) or remove it")
    return {k: r for k, r in rows.items() if int(r["n_draws"]) > 0}


def _merge_earlier(table: dict, earlier: dict) -> None:
    """Fill in place the (condition, segment) rows of ``table`` that have fewer finished draws
    here than in ``earlier`` (:func:`_earlier_rows`); ``table["source"]`` says where each row is
    from. (Draw d of a segment is the same training run in every folder of the plan, so the row
    of more draws is the better estimate; draws of two folders are never pooled.)"""
    source = []
    for i, (condition, segment) in enumerate(zip(table["condition"], table["segment"])):
        row = earlier.get((str(condition), int(segment)))
        if row is None or int(row["n_draws"]) <= table["n_draws"][i]:
            source.append(HERE if table["n_draws"][i] > 0 else "")
            continue
        table["n_draws"][i] = int(row["n_draws"])
        for column in ("variance", "online_error_mean"):
            table[column][i] = float(row[column]) if row[column] else float("nan")
        source.append(EARLIER)
    table["source"] = source


MEASURED_BY = "# which run measured which rows of table.csv (condition segments: the command):"


def _rows_text(rows) -> str:
    """``{("dae", 0), ("dae", 1), ("none", 3)}`` → ``"dae 0-1; none 3"``."""
    conditions = sorted({c for c, _ in rows})
    return "; ".join(f"{c} {segment_ranges([s for k, s in rows if k == c])}" for c in conditions)


def _parse_rows(text: str) -> set[tuple[str, int]] | None:
    """The inverse of :func:`_rows_text`; None if ``text`` is not of that form."""
    import re

    rows = set()
    for part in text.split("; "):
        m = re.fullmatch(r"([a-z0-9_]+) ([0-9]+(?:-[0-9]+)?(?:,[0-9]+(?:-[0-9]+)?)*)", part)
        if m is None:
            return None
        for piece in m.group(2).split(","):
            a, _, b = piece.partition("-")
            rows.update((m.group(1), s) for s in range(int(a), int(b or a) + 1))
    return rows


def _earlier_provenance(folder: Path, rows: set) -> list[tuple[set, str]]:
    """(rows, command) pairs of the earlier report's ``command.txt`` in ``folder``: which run
    measured which of its ``rows``. A ``command.txt`` of the older form (no such list) credits
    all of them to its ``run`` command; rows no line accounts for get "(command not recorded)"."""
    try:
        lines = (folder / "command.txt").read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        lines = []
    pairs = []
    if MEASURED_BY in lines:
        for line in lines[lines.index(MEASURED_BY) + 1:]:
            if not line.startswith("#   "):
                break
            head, sep, command = line[4:].partition(": ")
            measured = _parse_rows(head) if sep else None
            if measured:
                pairs.append((measured & rows, command))
    else:
        runs = [line for line in lines if line.startswith("onlinedeep experiment run figure13")]
        if runs:
            pairs.append((set(rows), runs[0]))
    unaccounted = set(rows) - set().union(*(r for r, _ in pairs))
    if unaccounted:
        pairs.append((unaccounted, "(command not recorded)"))
    return [(r, c) for r, c in pairs if r]


def report(out: str | os.PathLike = section8.DEFAULT_OUT, *,
           results: str | os.PathLike | None = None) -> Report:
    """Aggregate ``OUT/figure13`` (also its own ``ordering_variance.h5`` and ``figure13.png``) and
    write ``table.csv`` (one row per condition and segment: the output variance across the
    finished draws), ``figure13.png``, ``command.txt`` and a copy of the plan (``plan.json``)
    into the report folder.

    Across machines: with ``results``, a (condition, segment) with fewer finished draws in
    ``OUT`` than the earlier report of the same plan in ``RESULTS/figure13/`` had keeps that
    report's row (``source`` = ``earlier report``), so segments run on different machines
    (``run --only-segments``) add up to one table. Variances are never pooled across folders.

    Raises
    ------
    FileNotFoundError
        If ``OUT/figure13`` holds no plan yet.
    ValueError
        If a job output is unreadable or of another sampling version, or ``RESULTS/figure13``
        holds an unreadable report or one of another plan (nothing is written then).
    """
    from onlinedeep.experiments import ordering_variance as ov

    job_folder = section8.figure13_folder(out)
    table, _, _ = ov.report(job_folder)
    the_plan = ov.load_plan(job_folder)
    folder = section8.report_folder(out, "figure13", results)
    earlier = _earlier_rows(folder, the_plan) if results is not None else {}
    _merge_earlier(table, earlier)
    earlier_provenance = _earlier_provenance(folder, set(earlier)) if earlier else []
    rows = [[table[c][i] for c in TABLE_HEADER] for i in range(len(table["segment"]))]
    rows = [[r[0], int(r[1]), float(r[2]), int(r[3]), float(r[4]), float(r[5]), r[6]]
            for r in rows]
    table_csv = section8.write_csv(folder / "table.csv", TABLE_HEADER, rows)
    section8.write_text(folder / PLAN_COPY, json.dumps(the_plan.to_dict(), indent=2,
                                                       sort_keys=True) + "\n")
    fractions = {n: c.unsup_updates / the_plan.n_examples for n, c in the_plan.configs.items()}
    png = folder / "figure13.png"
    ov.plot_figure13(table, png, unsup_fraction=fractions,
                     title=f"Figure 13 (N={the_plan.n_examples:,}, S={the_plan.n_segments}, "
                           f"D={the_plan.n_draws})", n_draws=the_plan.n_draws)
    preset = next((name for name in ("paper", "smoke")
                   if not the_plan.differences(plan(name, pretrain=the_plan.conditions[0]))), None)
    opt = {"paper": "", "smoke": " --preset smoke"}.get(preset, " (options: see plan.json)")
    res = "" if results is None else f" --results {results}"
    keys = list(zip(map(str, table["condition"]), map(int, table["segment"])))
    here = {k for k, src in zip(keys, table["source"]) if src == HERE}
    kept = {k for k, src in zip(keys, table["source"]) if src == EARLIER}
    segments_here = sorted({s for _, s in here})
    only = ("" if not here or len(segments_here) == the_plan.n_segments
            else f" --only-segments {segment_ranges(segments_here)}")
    run_here = f"onlinedeep experiment run figure13 --out {out}{opt}{only}"
    measured = ([(here, run_here)] if here else []) + (
        [(r & kept, c) for r, c in earlier_provenance if r & kept] if kept else [])
    text = ""
    if measured:
        text = (MEASURED_BY + "\n"
                + "".join(f"#   {_rows_text(r)}: {c}\n" for r, c in measured) + "\n")
    text += (f"{run_here}\n"
             f"onlinedeep experiment report figure13 --out {out}{res}\n\n"
             f"# the same experiment under its own name:\n"
             f"onlinedeep ordering-variance run --out {job_folder}{opt}{only}\n"
             f"onlinedeep ordering-variance report --out {job_folder}\n"
             f"# what job (segment S, draw D) trained on in its varied segment:\n"
             f"onlinedeep ordering-variance indices --out {job_folder} --segment S --draw D\n")
    command = section8.write_text(folder / "command.txt", text)
    return Report(table, table_csv, png, command)
