"""Figure 12: the error of the final network on its own training sequence, in presentation order.

Erhan et al. (2010), section 8.1: after online training, the supervised examples are re-read in the
order they were presented and classified by the final network; the error per block of consecutive
examples shows how much the network still fits the early examples. ``onlinedeep train
--train-error-blocks K`` computes it after the run (:func:`record`) and stores it in the run's final
snapshot (``/train_error``).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from onlinedeep import model
from onlinedeep.training.loop import Trainer
from onlinedeep.training.producer import Producer, stream_fetcher

__all__ = ["training_sequence_error", "record", "report"]


def training_sequence_error(trainer: Trainer, n_blocks: int, *, block_chunk: int = 10_000,
                            progress: bool = False) -> dict:
    """Error of the trainer's network on the supervised examples it was trained on.

    Parameters
    ----------
    trainer : Trainer
        Its network, schedule and stream; positions ``[unsup_updates, position)`` are re-read.
    n_blocks : int
        Number of blocks (≥ 1, at most the number of supervised examples seen).
    block_chunk : int
        Examples generated and classified at a time (bounds memory).
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    dict
        ``block_start``, ``block_stop`` ``(n_blocks,) int64`` stream positions and ``error``
        ``(n_blocks,) float64`` 0/1 error rate of each block.

    Raises
    ------
    ValueError
        If there are fewer supervised examples than blocks.
    """
    first, position = trainer.config.unsup_updates, trainer.position
    n_sup = position - first
    if n_blocks < 1 or n_sup < n_blocks:
        raise ValueError(
            f"n_blocks: expected 1..{max(n_sup, 0)} (supervised examples seen), found {n_blocks}"
        )
    cuts = first + (np.arange(n_blocks + 1, dtype=np.int64) * n_sup) // n_blocks
    wrong = np.zeros(n_blocks, dtype=np.int64)
    ranges = [(int(a), int(min(a + block_chunk, position)))
              for a in range(first, position, block_chunk)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_sup, desc="training-sequence error", unit="ex", unit_scale=True,
                   file=sys.stderr)
    fetch = stream_fetcher(trainer.stream, trainer.schedule, n_inputs=trainer.config.n_inputs)
    try:
        with Producer(fetch, ranges, maxsize=trainer.config.queue_size) as producer:
            for chunk in producer:
                pred = model.predict(trainer.params, torch.from_numpy(chunk.x)).cpu().numpy()
                bad = (pred != chunk.labels.astype(np.int64)).astype(np.int64)
                block = np.searchsorted(cuts, chunk.positions, side="right") - 1
                np.add.at(wrong, block, bad)
                if bar is not None:
                    bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return {"block_start": cuts[:-1], "block_stop": cuts[1:],
            "error": wrong / np.diff(cuts).astype(np.float64)}


def record(trainer: Trainer, *, progress: bool = False) -> Path | None:
    """After a complete run with ``train_error_blocks > 0``: compute the blocks (once), keep them in
    ``trainer.train_error`` and rewrite the run folder's final snapshot with them.

    Returns
    -------
    Path or None
        The rewritten snapshot, or None when nothing was to do (run incomplete, blocks off or
        already computed, no run folder).
    """
    blocks = trainer.config.train_error_blocks
    if not blocks or trainer.position != trainer.config.total_updates or trainer.train_error is not None:
        return None
    trainer.train_error = training_sequence_error(trainer, blocks, progress=progress)
    if trainer.folder is None:
        return None
    return trainer.save_to_run_folder(pinned=True)


LABELS = {"layers1-rbm": "1 layer, RBM pre-training", "layers1-none": "1 layer, no pre-training"}
TABLE_HEADER = ["network", "label", "status", "updates_done", "total_updates", "n_blocks",
                "train_error_mean", "train_error_first_block", "train_error_last_block",
                "final_online_error", "test_error_percent"]


def report(out=None, *, preset: str | None = None, results=None):
    """Figure 12's report from the section-8 folder ``out`` (``layers1-rbm``, ``layers1-none``).

    Writes into ``out/reports/figure12/`` (or ``results/figure12/``): ``train_error.csv``
    (``block``, ``block_start``, ``block_stop`` and ``train_error_<key>`` per network: the 0/1
    error of the final network on each block of its supervised training sequence),
    ``table.csv`` (:data:`TABLE_HEADER`), ``figure12.png`` and ``command.txt``. A network without
    blocks yet (still training) is marked partial and left out of the plot's bars.

    Returns
    -------
    figure11.Report
    """
    from onlinedeep.experiments import section8
    from onlinedeep.experiments.figure11 import Report, commands, _legend
    from onlinedeep.plots import plot_blocks

    out = section8.DEFAULT_OUT if out is None else out
    preset = preset or section8.load_preset(out)
    keys = section8.FIGURE_KEYS["figure12"]
    statuses = [section8.network_status(out, key, preset) for key in keys]
    folder = section8.report_folder(out, "figure12", results)
    blocks = {st.key: st.train_error for st in statuses if st.train_error is not None}
    grid = next(iter(blocks.values()), None)
    rows = []
    if grid is not None:
        for i in range(len(grid["error"])):
            row = [i + 1, int(grid["block_start"][i]), int(grid["block_stop"][i])]
            for st in statuses:
                te = blocks.get(st.key)
                row.append(float(te["error"][i]) if te is not None and len(te["error"]) > i
                           else float("nan"))
            rows.append(row)
    series_csv = section8.write_csv(folder / "train_error.csv",
                                    ["block", "block_start", "block_stop"]
                                    + [f"train_error_{st.key}" for st in statuses], rows)
    nan = float("nan")
    table = []
    for st in statuses:
        te = blocks.get(st.key)
        err = np.asarray(te["error"]) if te is not None else np.zeros(0)
        status = st.status if te is not None or not st.complete else "complete, no blocks yet"
        table.append([st.key, LABELS[st.key], status, st.position, st.total, len(err),
                      float(err.mean()) if len(err) else nan, float(err[0]) if len(err) else nan,
                      float(err[-1]) if len(err) else nan, st.final_online_error,
                      st.test_error_percent])
    table_csv = section8.write_csv(folder / "table.csv", TABLE_HEADER, table)
    png = plot_blocks([{"label": _legend(LABELS[st.key], st),
                        "error": blocks[st.key]["error"] if st.key in blocks else []}
                       for st in statuses], folder / "figure12.png",
                      title="Figure 12: error on the training sequence, in presentation order")
    command = section8.write_text(folder / "command.txt",
                                  commands("figure12", out, preset, results, keys))
    return Report(statuses, series_csv, table_csv, png, command)
