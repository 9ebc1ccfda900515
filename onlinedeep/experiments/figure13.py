"""Figure 13 inside the section-8 folder: the ordering-variance experiment in ``OUT/figure13/``.

The experiment itself is :mod:`onlinedeep.experiments.ordering_variance` (paper 8.2); this module
places it in the section-8 folder (``onlinedeep experiment run figure13 --out OUT`` is
``onlinedeep ordering-variance run --out OUT/figure13``) and writes its report beside the other
figures' (``OUT/reports/figure13/``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from onlinedeep.experiments import section8

__all__ = ["plan", "Report", "report"]

TABLE_HEADER = ["condition", "segment", "fraction", "n_draws", "variance", "online_error_mean"]


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


def report(out: str | os.PathLike = section8.DEFAULT_OUT, *,
           results: str | os.PathLike | None = None) -> Report:
    """Aggregate ``OUT/figure13`` (also its own ``ordering_variance.h5`` and ``figure13.png``) and
    write ``table.csv`` (one row per condition and segment: the output variance across the
    finished draws), ``figure13.png`` and ``command.txt`` into the report folder.

    Raises
    ------
    FileNotFoundError
        If ``OUT/figure13`` holds no plan yet.
    ValueError
        If a job output is unreadable or of another sampling version.
    """
    from onlinedeep.experiments import ordering_variance as ov

    job_folder = section8.figure13_folder(out)
    table, _, _ = ov.report(job_folder)
    the_plan = ov.load_plan(job_folder)
    folder = section8.report_folder(out, "figure13", results)
    rows = [[table[c][i] for c in TABLE_HEADER] for i in range(len(table["segment"]))]
    rows = [[r[0], int(r[1]), float(r[2]), int(r[3]), float(r[4]), float(r[5])] for r in rows]
    table_csv = section8.write_csv(folder / "table.csv", TABLE_HEADER, rows)
    fractions = {n: c.unsup_updates / the_plan.n_examples for n, c in the_plan.configs.items()}
    png = folder / "figure13.png"
    ov.plot_figure13(table, png, unsup_fraction=fractions,
                     title=f"Figure 13 (N={the_plan.n_examples:,}, S={the_plan.n_segments}, "
                           f"D={the_plan.n_draws})", n_draws=the_plan.n_draws)
    preset = next((name for name in ("paper", "smoke")
                   if not the_plan.differences(plan(name, pretrain=the_plan.conditions[0]))), None)
    opt = {"paper": "", "smoke": " --preset smoke"}.get(preset, " (options: see plan.json)")
    res = "" if results is None else f" --results {results}"
    text = (f"onlinedeep experiment run figure13 --out {out}{opt}\n"
            f"onlinedeep experiment report figure13 --out {out}{res}\n\n"
            f"# the same experiment under its own name:\n"
            f"onlinedeep ordering-variance run --out {job_folder}{opt}\n"
            f"onlinedeep ordering-variance report --out {job_folder}\n"
            f"# what job (segment S, draw D) trained on in its varied segment:\n"
            f"onlinedeep ordering-variance indices --out {job_folder} --segment S --draw D\n")
    command = section8.write_text(folder / "command.txt", text)
    return Report(table, table_csv, png, command)
