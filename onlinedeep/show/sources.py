"""What the pictures of :mod:`onlinedeep.show` are drawn from: runs, their snapshots, their data.

A *source* on the command line is a run folder (``onlinedeep train``, a section-8 network, a
finite-data run: any folder whose ``snapshots/`` — or the folder itself — holds snapshot files) or a
snapshot file. :func:`gather` turns sources into :class:`Run` objects: the ordered snapshots of one
training run. Snapshot files given directly are grouped by the run folder they belong to (or, outside
a run folder, by identical configuration), so ``RUN/snapshots/snapshot-0000*.h5`` is one run.

Also here: the examples a picture is computed on (:func:`test_inputs`, the test set;
:func:`training_examples`, the examples a run trained on) and the small writers shared by the
picture modules (CSV, HDF5, text; all atomic). A finite-data run (``onlinedeep experiment run
table1|figure8|...``, marked by the ``finite.json`` of its folder) is drawn on its own data set,
MNIST or the generated Shapeset: its test split, and its training split; an online run on the MNIST
test digits and the last stream examples it trained on.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import h5py
import numpy as np

from onlinedeep.atomic import atomic_file, write_bytes
from onlinedeep.config import ConfigError, RunConfig
from onlinedeep.run_folder import list_snapshots
from onlinedeep.snapshot import SnapshotError

__all__ = ["ShowError", "SkippedSnapshotWarning", "Run", "gather", "peek", "condition", "load_params", "data_name", "test_inputs",
           "training_examples", "write_csv", "write_h5", "write_text", "TRAJECTORY_HINT"]

#: How to make a run record the snapshots that trajectories and "after pre-training" pictures need.
TRAJECTORY_HINT = ("record them with `onlinedeep train --snapshot-every COUNT --keep-snapshots 0` "
                   "(COUNT a multiple of --chunk-size; --keep-snapshots 0 keeps every periodic one)"
                   ", or for a finite-data experiment with `--set snapshots=epochs`")


class ShowError(ValueError):
    """A source that lacks what a picture needs (the message names the source and the remedy)."""


class SkippedSnapshotWarning(UserWarning):
    """A snapshot file of a run that cannot be read, left out of a picture (its message names the
    file and the reason)."""


@dataclass
class Run:
    """The snapshots of one training run, oldest first, one per position.

    Attributes
    ----------
    source : Path
        The run folder, or the first snapshot file when the run was given as files.
    config : RunConfig
        The configuration of the newest snapshot.
    positions : list of int
        Stream positions (updates done, pre-training included), increasing.
    paths : list of Path
        The snapshot file of each position.
    """

    source: Path
    config: RunConfig
    positions: list[int] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    finite: Any = None
    """The run's ``FiniteConfig`` when it trained on a finite data set, else None."""

    @property
    def label(self) -> str:
        """``"<name>: <condition>, seed S"`` (the run name, else the folder name; a finite run:
        ``cell/sNNN``)."""
        name = self.config.name or self.source.name
        if self.finite is not None and self.source.is_dir():
            name = f"{self.source.parent.name}/{self.source.name}"
        return f"{name}: {condition(self.config)}, seed {self.config.seed}"

    @property
    def final(self) -> Path:
        """The newest snapshot (after fine-tuning when the run is complete)."""
        return self.paths[-1]

    def pretrain_end(self) -> Path | None:
        """The snapshot at the end of pre-training (position ``unsup_updates``), or None when the
        run has no pre-training or did not keep that snapshot."""
        cfg = self.config
        if not (cfg.pretrain_layers and cfg.unsup_updates):
            return None
        return dict(zip(self.positions, self.paths)).get(cfg.unsup_updates)

    def supervised(self) -> tuple[list[int], list[Path]]:
        """Positions and files of the snapshots of supervised training: from the end of
        pre-training (its start included) on."""
        start = self.config.unsup_updates
        keep = [i for i, p in enumerate(self.positions) if p >= start]
        return [self.positions[i] for i in keep], [self.paths[i] for i in keep]


def condition(config: RunConfig) -> str:
    """The training condition of a run: ``"no pre-training"``, ``"SDAE pre-training"`` or
    ``"DBN pre-training"`` (with ``"(K of L layers)"`` for a partly pre-trained network)."""
    if not config.pretrain_layers or config.pretrain == "none":
        return "no pre-training"
    text = {"dae": "SDAE pre-training", "rbm": "DBN pre-training"}[config.pretrain]
    if config.pretrain_layers < config.layers:
        text += f" ({config.pretrain_layers} of {config.layers} layers)"
    return text


# ---------------------------------------------------------------------------- reading sources
def peek(path: Path) -> tuple[int, RunConfig]:
    """Position and configuration of a snapshot file, from its attributes only (fast)."""
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != "onlinedeep.snapshot":
                raise SnapshotError(f"{path}: not an onlinedeep snapshot (attribute 'format')")
            position = int(f.attrs["position"])
            config = RunConfig.from_json(str(f.attrs["config"]))
    except SnapshotError:
        raise
    except (OSError, KeyError, ValueError, TypeError, ConfigError) as exc:
        raise SnapshotError(f"{path}: cannot read the snapshot ({type(exc).__name__}: {exc})"
                            ) from None
    return position, config


def _folder_files(folder: Path) -> list[tuple[int, Path]]:
    """``(position, path)`` of the snapshots of a run folder: its ``snapshots/`` (or the folder
    itself) by file name; failing that, any ``*.h5`` snapshot in it, by its position attribute."""
    inner = folder / "snapshots" if (folder / "snapshots").is_dir() else folder
    named = list_snapshots(inner)
    if named:
        return [(pos, path) for pos, _, path in named]
    found = []
    for path in sorted(inner.glob("*.h5")):
        try:
            found.append((peek(path)[0], path))
        except SnapshotError:
            continue  # another HDF5 file (a report's data): not a snapshot of this run
    return sorted(found)


def _finite_config(folder: Path):
    """The ``FiniteConfig`` of a finite-data run folder, or None for any other folder.

    Raises
    ------
    ShowError
        If the folder's ``finite.json`` cannot be read.
    """
    from onlinedeep.finite.config import FiniteConfig
    from onlinedeep.finite.train import CONFIG_FILE

    path = folder / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        return FiniteConfig.from_dict(json.loads(path.read_text()), where=str(path))
    except (OSError, ValueError) as exc:
        raise ShowError(f"{path}: cannot read the finite-data configuration ({exc})") from None


def _run_of(files: list[tuple[int, Path]], source: Path) -> Run:
    by_position: dict[int, Path] = {}
    for pos, path in sorted(files):
        by_position[pos] = path  # pinned after periodic on ties: the same network either way
    positions = sorted(by_position)
    config = peek(by_position[positions[-1]])[1]
    first = by_position[positions[0]]
    folder = first.parent.parent if first.parent.name == "snapshots" else first.parent
    return Run(source=source, config=config, positions=positions,
               paths=[by_position[p] for p in positions], finite=_finite_config(folder))


def gather(sources: Iterable[str | os.PathLike]) -> list[Run]:
    """The runs named by run folders and snapshot files, in the order first given.

    Parameters
    ----------
    sources : iterable of path-like
        Run folders (every snapshot they hold) and snapshot files (grouped by run folder, or by
        identical configuration outside one).

    Returns
    -------
    list of Run

    Raises
    ------
    ShowError
        If no source is given, or a folder holds no snapshot.
    SnapshotError
        If a path does not exist or a file is not a readable snapshot.
    """
    runs: dict[str, list] = {}
    order: list[str] = []
    for source in sources:
        path = Path(source)
        if not path.exists():
            raise SnapshotError(f"{path}: no such run folder or snapshot file")
        if path.is_dir():
            files = _folder_files(path)
            if not files:
                if (path / "finite.json").is_file():
                    raise ShowError(f"{path}: this finite-data job kept no snapshot (its cell's "
                                    "snapshots='none'); rerun the experiment into another --out "
                                    "with --set snapshots=ends (or epochs)")
                raise ShowError(f"{path}: holds no snapshot file (expected snapshots/snapshot-"
                                f"<position>.h5, as `onlinedeep train` writes)")
            key = f"dir:{path.resolve()}"
            if key in runs:
                continue
            runs[key] = [path, files]
            order.append(key)
            continue
        position, config = peek(path)
        if path.parent.name == "snapshots":
            key = f"dir:{path.parent.parent.resolve()}"
        else:
            key = "config:" + json.dumps(config.to_dict(), sort_keys=True)
        if key not in runs:
            runs[key] = [path, []]
            order.append(key)
        runs[key][1].append((position, path))
    if not order:
        raise ShowError("expected at least one run folder or snapshot file")
    return [_run_of(runs[k][1], Path(runs[k][0])) for k in order]


def load_params(path: Path) -> dict[str, Any]:
    """The network of a snapshot as float32 torch tensors on the CPU (validated by
    :func:`onlinedeep.snapshot.load`; ``SnapshotError`` names a damaged file)."""
    import torch

    from onlinedeep import snapshot

    snap = snapshot.load(path)
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in snap.params.items()}


# ---------------------------------------------------------------------------- examples
_STREAMS: dict[tuple, Any] = {}


def _stream(config: RunConfig, mnist_dir: str | None):
    from onlinedeep.training.data import make_stream

    if mnist_dir is not None:
        config = RunConfig.from_dict({**config.to_dict(), "mnist_dir": str(mnist_dir)})
    key = (config.mnist_dir, os.environ.get("ONLINEDEEP_MNIST_DIR"), config.deformation,
           config.stream_seed)
    if key not in _STREAMS:
        _STREAMS[key] = make_stream(config)
    return _STREAMS[key]


def _check_mnist(run: Run, what: str) -> None:
    cfg = run.config
    if (cfg.n_inputs, cfg.n_classes) != (784, 10):
        raise ShowError(f"{run.source}: {what} needs an MNIST network (784 inputs, 10 classes); "
                        f"this one has {cfg.n_inputs} inputs and {cfg.n_classes} classes")


def _finite_data(run: Run, mnist_dir: str | None):
    from onlinedeep.finite.data import load_dataset

    cfg = run.finite  # the splits at the sizes the run used (a reduced run: their first examples)
    return load_dataset(cfg.dataset, mnist_dir=mnist_dir or cfg.mnist_dir, seed=cfg.data_seed,
                        sizes=cfg.sizes())


def data_name(run: Run) -> str:
    """``"mnist"`` for an online run, else the finite run's data set (``"mnist"``, ``"shapeset"``):
    runs drawn in one picture must share it."""
    return "mnist" if run.finite is None else run.finite.dataset


def test_inputs(run: Run, count: int | None, *, mnist_dir: str | None = None) -> np.ndarray:
    """The first ``count`` test examples of the run's data: the MNIST test digits (stream indices
    ``0 .. count-1``, the same digits as a finite MNIST run's test split), or a finite run's test
    split (Shapeset's generated test images).

    Returns
    -------
    (count, n_inputs) float32 ndarray in [0, 1]

    Raises
    ------
    ShowError
        If an online network is not an MNIST classifier or ``count`` is not in 1..the test set's
        size (10,000). ``count`` None: the whole test set, at most 10,000.
    """
    if run.finite is not None:
        test = _finite_data(run, mnist_dir).test
        count = min(len(test), 10_000) if count is None else count
        if not 1 <= count <= len(test):
            raise ShowError(f"--examples: expected 1..{len(test):,} test examples of "
                            f"{run.finite.dataset}, found {count}")
        return test.x[:count]
    _check_mnist(run, "a function-space map on the MNIST test digits")
    count = 10_000 if count is None else count
    if not 1 <= count <= 10_000:
        raise ShowError(f"--examples: expected 1..10,000 test digits, found {count}")
    return _stream(run.config, mnist_dir).floats(np.arange(count, dtype=np.int64))


def training_examples(run: Run, snapshot_path: Path, count: int, *,
                      mnist_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The last ``count`` supervised examples an online run trained on before a snapshot; for a
    finite-data run, the first ``count`` examples of the training set it used (its ``n_train``),
    every epoch's examples.

    Parameters
    ----------
    run : Run
    snapshot_path : Path
        One of ``run.paths``.
    count : int
        Examples wanted (fewer when the run made fewer supervised updates).

    Returns
    -------
    x : (m, n_inputs) float32 ndarray in [0, 1]
    y : (m,) int64 ndarray
        Online: positions ``[position - m, position)`` of the run's schedule, ``m = min(count,
        supervised updates before the snapshot)``. Finite: ``m = min(count, n_train)``.

    Raises
    ------
    ShowError
        If the snapshot precedes supervised training, its schedule is not a stream schedule (an
        ``OnlineMLP`` snapshot) or the network is not an MNIST classifier.
    """
    from infinite_mnist import Schedule

    from onlinedeep import snapshot

    if run.finite is not None:
        train = _finite_data(run, mnist_dir).train.head(int(count))
        return train.x, train.y
    _check_mnist(run, "the training error")
    snap = snapshot.load(snapshot_path)
    m = min(int(count), snap.position - snap.config.unsup_updates)
    if m < 1:
        raise ShowError(f"{snapshot_path}: made no supervised update yet (position "
                        f"{snap.position:,}, pre-training ends at {snap.config.unsup_updates:,}); "
                        f"the training error needs a fine-tuned network")
    try:
        schedule = Schedule.from_dict(snap.schedule)
    except (KeyError, TypeError, ValueError) as exc:
        raise ShowError(f"{snapshot_path}: its schedule does not name stream examples ({exc}); "
                        f"the training error needs a run of `onlinedeep train`") from None
    idx = schedule.indices(snap.position - m, m)
    stream = _stream(snap.config, mnist_dir)
    return stream.floats(idx), stream.labels(idx).astype(np.int64)


# ---------------------------------------------------------------------------- writers
def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """A CSV file, atomically (floats with 7 significant digits, NaN as empty)."""
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "" if math.isnan(v) else f"{float(v):.7g}"
        return "" if v is None else v

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(header))
    writer.writerows([[cell(v) for v in row] for row in rows])
    with atomic_file(path) as tmp:
        Path(tmp).write_text(buf.getvalue())
    return Path(path)


def write_h5(path: Path, fill: Callable[[h5py.File], None], what: str) -> Path:
    """A small HDF5 file built in memory by ``fill(file)`` and written atomically."""
    from onlinedeep.snapshot import h5_image

    return write_bytes(path, h5_image(fill), what=what)


def write_text(path: Path, text: str) -> Path:
    """A text file, atomically."""
    with atomic_file(path) as tmp:
        Path(tmp).write_text(text)
    return Path(path)


def save_figure(fig, path: Path) -> Path:
    """Write a matplotlib figure (PNG) atomically and close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_file(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return Path(path)


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
