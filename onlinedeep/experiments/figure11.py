"""Figure 11: online error of 1- and 3-layer networks, with SDAE, DBN or no pre-training.

Erhan et al. (2010), section 8.1: six networks trained on InfiniteMNIST, one example per update;
the online error (the mean of the last 100,000 0/1 errors, each scored before the update on that
example) against the examples seen. The networks are the section-8 jobs ``layers{1,3}-{none,dae,
rbm}`` (:mod:`onlinedeep.experiments.section8`); :func:`report` overlays their curves and tabulates,
per network, the error over the last 1M examples (the paper's selection criterion, footnote 14),
the final online error, the test error and the updates done. It works on partial results: a
network still training is drawn up to its newest snapshot and marked partial.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from onlinedeep.config import format_count
from onlinedeep.experiments import section8

__all__ = ["LABELS", "Report", "curve_report", "report"]

LABELS = {
    "layers1-none": "1 layer, no pre-training",
    "layers1-dae": "1-layer SDAE",
    "layers1-rbm": "1-layer DBN",
    "layers3-none": "3 layers, no pre-training",
    "layers3-dae": "3-layer SDAE",
    "layers3-rbm": "3-layer DBN",
}
TABLE_HEADER = ["network", "label", "status", "updates_done", "total_updates", "last_examples",
                "online_error_last", "online_error_last_exact", "final_online_error",
                "test_error_percent"]


@dataclass
class Report:
    """What a report wrote: ``statuses`` (one :class:`section8.NetworkStatus` per network) and the
    files ``series_csv``, ``table_csv``, ``figure`` (PNG), ``command`` (``command.txt``)."""

    statuses: list
    series_csv: Path
    table_csv: Path
    figure: Path
    command: Path


def _legend(label: str, st) -> str:
    text = label
    if st.test_error_percent == st.test_error_percent:  # not NaN
        text += f", test error {st.test_error_percent:.2f}%"
    if not st.complete:
        text += f" ({st.status})"
    return text


def commands(figure: str, out, preset: str, results=None, keys=()) -> str:
    """The text of ``command.txt``: the commands that make and report a figure, and the
    equivalent ``onlinedeep train`` command of each network."""
    opt = "" if preset == "paper" else f" --preset {preset}"
    res = "" if results is None else f" --results {results}"
    lines = [f"onlinedeep experiment run {figure} --out {out}{opt}",
             f"onlinedeep experiment report {figure} --out {out}{res}"]
    if keys:
        lines += ["", "# each network alone (the experiment adopts these run folders):"]
        lines += [section8.train_command(section8.key_config(k, preset=preset, out=out), preset)
                  for k in keys]
    return "\n".join(lines) + "\n"


def curve_report(figure: str, out, keys, labels: dict[str, str], *, title: str,
                 preset: str | None = None, results=None) -> Report:
    """The report of an online-error figure (11 or 14) of the networks ``keys`` in ``out``.

    Writes into :func:`section8.report_folder`: ``online_error.csv`` (``position`` and
    ``online_error_<key>`` per network, each curve subsampled to at most 2,000 records),
    ``table.csv`` (:data:`TABLE_HEADER`, one row per network), ``<figure>.png`` and
    ``command.txt``.

    Raises
    ------
    SnapshotError
        If a network's newest snapshot cannot be read.
    """
    preset = preset or section8.load_preset(out)
    statuses = [section8.network_status(out, key, preset) for key in keys]
    folder = section8.report_folder(out, figure, results, statuses)
    if results is not None:  # networks trained on another machine keep their committed results
        from onlinedeep.experiments.section8.earlier import with_earlier_results

        statuses = with_earlier_results(folder, statuses)
    header, rows = section8.series_rows(statuses)
    series_csv = section8.write_csv(folder / "online_error.csv", header, rows)
    table = [[st.key, labels[st.key], st.status, st.position, st.total, st.last_examples,
              st.online_error_last, int(st.last_exact), st.final_online_error,
              st.test_error_percent] for st in statuses]
    table_csv = section8.write_csv(folder / "table.csv", TABLE_HEADER, table)
    from onlinedeep.plots import plot_curves

    curves = []
    for st in statuses:
        sup = st.series.supervised() if st.series is not None else None
        keep = sup.online_error == sup.online_error if sup is not None else None
        curves.append({"label": _legend(labels[st.key], st),
                       "x": sup.position[keep] if sup is not None else [],
                       "y": sup.online_error[keep] if sup is not None else [],
                       "mark": st.config.unsup_updates})
    window = format_count(statuses[0].config.window) if statuses else "?"
    png = plot_curves(curves, folder / f"{figure}.png", title=title,
                      ylabel=f"online error (mean of the last {window} 0/1 errors)")
    command = section8.write_text(folder / "command.txt",
                                  commands(figure, out, preset, results, keys))
    return Report(statuses, series_csv, table_csv, png, command)


def report(out: str | os.PathLike = section8.DEFAULT_OUT, *, preset: str | None = None,
           results: str | os.PathLike | None = None) -> Report:
    """Figure 11's report (see :func:`curve_report`)."""
    return curve_report("figure11", out, section8.FIGURE_KEYS["figure11"], LABELS,
                        title="Figure 11: 1 and 3 layers on InfiniteMNIST (Erhan et al. 2010)",
                        preset=preset, results=results)
