"""Per-epoch records of a finite run, their files, and the best-validation choice.

After every supervised epoch the network is evaluated on the whole train, validation and test
splits (0/1 error and mean NLL); after every pre-training epoch the mean reconstruction cost of its
updates is kept. **The reported test error is the one at the supervised epoch of lowest validation
error** (the earliest on ties): early stopping chosen on the validation set, as the paper selects
on validation error (5.3); the last epoch's values stay in the records (Figure 10 uses them: no
early stopping).

Files (in a run folder): ``epochs.csv`` (rewritten after every epoch, for watching a run) and
``epochs.h5``, written once at the very end (its presence means the run is finished)::

    /            attrs: format "onlinedeep.finite-epochs", format_version 1, config (FiniteConfig
                        JSON), provenance (JSON), best_epoch (supervised epoch, 1-based),
                        elapsed_s
    /<column>    (m,) one dataset per column of :data:`COLUMNS`
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from onlinedeep.atomic import atomic_file, write_bytes
from onlinedeep.snapshot import h5_image

__all__ = ["COLUMNS", "FORMAT", "EpochRecords", "RecordsError", "best_row", "write_h5", "read_h5",
           "write_csv"]

FORMAT = "onlinedeep.finite-epochs"
FORMAT_VERSION = 1
#: Column → dtype. ``phase`` 0 = pre-training (``layer`` = the layer), 1 = supervised (layer -1);
#: ``epoch`` 1-based within its phase and layer; ``position`` = updates done after the epoch;
#: ``reconstruction`` mean cost of a pre-training epoch; ``online_error``/``online_nll`` the epoch's
#: prequential error and NLL (each example scored before its update); then the evaluations after
#: the epoch. Values that do not apply are NaN.
COLUMNS = {
    "phase": np.int8, "layer": np.int8, "epoch": np.int32, "position": np.int64,
    "reconstruction": np.float64, "online_error": np.float64, "online_nll": np.float64,
    "train_error": np.float64, "train_nll": np.float64, "valid_error": np.float64,
    "valid_nll": np.float64, "test_error": np.float64, "test_nll": np.float64,
    "elapsed_s": np.float64,
}
PRETRAIN, SUPERVISED = 0, 1


class RecordsError(ValueError):
    """A records file that cannot be read (the message names the file)."""


@dataclass
class EpochRecords:
    """The rows of a run, one per epoch, in order."""

    rows: list[dict] = field(default_factory=list)

    def add(self, **values) -> dict:
        """Append a row; missing float columns are NaN.

        Raises
        ------
        KeyError
            On a column not in :data:`COLUMNS`.
        """
        unknown = set(values) - set(COLUMNS)
        if unknown:
            raise KeyError(f"unknown record column(s) {sorted(unknown)}")
        row = {c: values.get(c, math.nan) for c in COLUMNS}
        self.rows.append(row)
        return row

    def columns(self) -> dict[str, np.ndarray]:
        """Column name → ``(m,)`` array of :data:`COLUMNS`' dtype."""
        return {c: np.array([r[c] for r in self.rows], dtype=d) for c, d in COLUMNS.items()}

    @classmethod
    def from_columns(cls, cols: dict[str, np.ndarray]) -> "EpochRecords":
        n = len(cols["epoch"])
        return cls([{c: cols[c][i].item() for c in COLUMNS} for i in range(n)])

    def supervised(self) -> list[dict]:
        """The rows of the supervised epochs."""
        return [r for r in self.rows if r["phase"] == SUPERVISED]

    def best(self) -> dict | None:
        """:func:`best_row` of the supervised rows."""
        return best_row(self.supervised())

    def last(self) -> dict | None:
        """The last supervised row (no early stopping), or None."""
        sup = self.supervised()
        return sup[-1] if sup else None


def best_row(rows: list[dict]) -> dict | None:
    """The row of lowest ``valid_error``; the earliest of equal ones (ties: fewer epochs). Rows with
    a NaN validation error are never chosen; None when no row has one."""
    best = None
    for r in rows:
        v = r["valid_error"]
        if not math.isnan(v) and (best is None or v < best["valid_error"]):
            best = r
    return best


def write_csv(path: str | os.PathLike, records: EpochRecords) -> Path:
    """``epochs.csv``: one line per row, atomically (floats with 8 significant digits)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(COLUMNS))
    for r in records.rows:
        w.writerow(["" if isinstance(v, float) and math.isnan(v) else
                    (f"{v:.8g}" if isinstance(v, float) else v) for v in r.values()])
    path = Path(path)
    with atomic_file(path) as tmp:
        Path(tmp).write_text(buf.getvalue())
    return path


def write_h5(path: str | os.PathLike, records: EpochRecords, *, config: dict, provenance: dict,
             elapsed_s: float) -> Path:
    """``epochs.h5`` (see the module docstring), written atomically."""
    best = records.best()

    def fill(f: h5py.File) -> None:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["config"] = json.dumps(config, sort_keys=True)
        f.attrs["provenance"] = json.dumps(provenance, sort_keys=True)
        f.attrs["best_epoch"] = int(best["epoch"]) if best else -1
        f.attrs["elapsed_s"] = float(elapsed_s)
        for name, a in records.columns().items():
            f.create_dataset(name, data=a)

    return write_bytes(Path(path), h5_image(fill), what="the epoch records")


def read_h5(path: str | os.PathLike) -> tuple[dict, EpochRecords]:
    """``(config dict, records)`` of an ``epochs.h5``.

    Raises
    ------
    RecordsError
        If the file is missing, not HDF5, of another format or lacks a column.
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise RecordsError(f"{path}: not an epoch-records file (attribute 'format' is "
                                   f"{f.attrs.get('format')!r}, expected {FORMAT!r})")
            missing = [c for c in COLUMNS if c not in f]
            if missing:
                raise RecordsError(f"{path}: missing dataset(s) {missing}")
            cols = {c: f[c][()] for c in COLUMNS}
            config = json.loads(f.attrs["config"])
    except RecordsError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise RecordsError(f"{path}: cannot read epoch records ({type(exc).__name__}: {exc})"
                           ) from None
    return config, EpochRecords.from_columns(cols)


def readable(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a readable records file (a job's output check)."""
    try:
        read_h5(path)
    except RecordsError:
        return False
    return True
