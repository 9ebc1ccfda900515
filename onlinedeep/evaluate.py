"""Error of a trained network on held-out MNIST digits: classification error, NLL, confusion matrix.

The online error (paper 8.1, Figure 11) is measured on the training stream, before each update;
the paper reports test errors on the MNIST test digits beside it (section 6, 8.1). Two held-out sets
of the InfiniteMNIST stream (``infinite_mnist.InfiniteMNIST`` index layout):

==============  ============================  ========================================================
split           stream indices                digits
==============  ============================  ========================================================
``test``        0 - 9,999                     the 10,000 MNIST test digits
``validation``  60,000 - 69,999               training digits 50,000-59,999, whose deformations the
                                              ``protocol`` split never trains on
==============  ============================  ========================================================

An evaluation is recorded in the run folder as ``evaluation-<split>.json`` (written atomically): one
entry per evaluated snapshot position, oldest first, so the Figure 11 report and ``onlinedeep
plot`` can show each network's test error beside its online error (:func:`recorded`).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import warnings
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from onlinedeep import model, run_folder
from onlinedeep.atomic import atomic_file, make_folder
from onlinedeep import snapshot as snapshots
from onlinedeep.inputs import check_inputs

__all__ = [
    "SPLITS",
    "Evaluation",
    "EvaluationError",
    "evaluate",
    "evaluate_stream",
    "evaluate_snapshot",
    "split_indices",
    "resolve_snapshot",
    "record",
    "recorded",
    "evaluation_path",
    "confusion_table",
]

SPLITS = ("test", "validation")
EVALUATION_FORMAT = "onlinedeep.evaluation"
# Training digits 50,000-59,999 are held out by the "protocol" split (infinite_mnist.schedule).
_VALIDATION_FIRST_DIGIT = 50_000


class EvaluationError(ValueError):
    """An evaluation that cannot be made or read as asked (the message names the file or value)."""


@dataclass
class Evaluation:
    """The error of one network on one set of labelled examples.

    Attributes
    ----------
    split : str or None
        ``"test"``, ``"validation"``, or None for arrays given by the caller.
    n_examples : int
    error : float
        Fraction of examples misclassified (argmax of the outputs, first maximum on ties, as the
        kernels score the online error), in [0, 1].
    nll : float
        Mean negative log-likelihood of the true class (nats).
    confusion : (n_classes, n_classes) int64 ndarray
        ``confusion[i, j]``: examples of class i predicted as class j.
    position : int or None
        Stream position (examples trained) of the evaluated network, when known.
    snapshot : str or None
        The snapshot file evaluated, when there is one.
    indices : (int, int) or None
        Half-open range of stream indices evaluated (for ``test`` / ``validation``).
    """

    split: str | None
    n_examples: int
    error: float
    nll: float
    confusion: np.ndarray
    position: int | None = None
    snapshot: str | None = None
    indices: tuple[int, int] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def error_percent(self) -> float:
        """Classification error in percent."""
        return 100.0 * self.error

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (what :func:`record` writes)."""
        return {
            "split": self.split,
            "n_examples": int(self.n_examples),
            "error": float(self.error),
            "error_percent": float(self.error_percent),
            "nll": float(self.nll),
            "confusion": self.confusion.astype(np.int64).tolist(),
            "position": None if self.position is None else int(self.position),
            "snapshot": self.snapshot,
            "indices": None if self.indices is None else [int(i) for i in self.indices],
            "notes": list(self.notes),
            "evaluated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }

    def summary(self) -> str:
        """One line: ``test error 1.23% (123 of 10,000), NLL 0.0412 nats``."""
        wrong = int(self.confusion.sum() - np.trace(self.confusion))
        what = self.split or "error"
        label = f"{what} error" if self.split else "error"
        return (f"{label} {self.error_percent:.2f}% ({wrong:,} of {self.n_examples:,}), "
                f"NLL {self.nll:.4f} nats")


@torch.no_grad()
def evaluate(params: dict[str, torch.Tensor], x, y, *, batch_size: int = 4096) -> Evaluation:
    """Classification error, mean NLL and confusion matrix of a network on labelled examples.

    Parameters
    ----------
    params : dict[str, torch.Tensor]
        The network (``onlinedeep.model`` layout).
    x : (n, n_inputs) float array_like
        Inputs in [0, 1].
    y : (n,) int array_like
        Class indices in ``[0, n_classes)``.
    batch_size : int
        Examples per matrix product (memory bound; the result does not depend on it beyond float
        rounding).

    Returns
    -------
    Evaluation
        With ``split=None``.

    Raises
    ------
    ValueError
        If ``x`` is not floats in [0, 1] of the network's width, ``y`` has another length or a label
        outside ``[0, n_classes)``, there is no example, or ``batch_size < 1``.
    """
    n_inputs, n_classes = model.layer_sizes(params)[0], model.layer_sizes(params)[-1]
    x = check_inputs(x, n_inputs, name="x")
    y = np.asarray(y)
    if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y: expected ({x.shape[0]},) integer labels, found shape {y.shape} "
                         f"dtype {y.dtype}")
    if x.shape[0] == 0:
        raise ValueError("x: expected at least one example, found none")
    if y.min() < 0 or y.max() >= n_classes:
        bad = int(np.flatnonzero((y < 0) | (y >= n_classes))[0])
        raise ValueError(f"y[{bad}] = {y[bad].item()} is not a class index in [0, {n_classes})")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size: expected an integer >= 1, found {batch_size!r}")
    depth = model.n_layers(params)
    device = params["W0"].device
    labels = torch.from_numpy(y.astype(np.int64)).to(device)
    wrong = 0
    nll_sum = 0.0
    confusion = torch.zeros((n_classes, n_classes), dtype=torch.int64, device=device)
    for start in range(0, x.shape[0], int(batch_size)):
        xb = torch.from_numpy(x[start:start + batch_size]).to(device)
        yb = labels[start:start + batch_size]
        h = model.hidden_forward(params, xb, depth)
        logits = torch.addmm(params["b_out"], h, params["W_out"])
        pred = logits.argmax(dim=1)
        wrong += int((pred != yb).sum())
        # the NLL in float64 so that 10,000 terms add without visible rounding
        logp = torch.log_softmax(logits.double(), dim=1)
        nll_sum += float(-logp.gather(1, yb[:, None]).sum())
        confusion.view(-1).index_add_(0, yb * n_classes + pred,
                                      torch.ones_like(yb, dtype=torch.int64))
    n = x.shape[0]
    return Evaluation(split=None, n_examples=n, error=wrong / n, nll=nll_sum / n,
                      confusion=confusion.cpu().numpy())


def split_indices(split: str, stream) -> np.ndarray:
    """Stream indices of a held-out split (see the module docstring).

    Parameters
    ----------
    split : {"test", "validation"}
    stream : infinite_mnist.InfiniteMNIST
        Gives the size of its base sets (``n_test``, ``n_train``).

    Returns
    -------
    (n,) int64 ndarray

    Raises
    ------
    EvaluationError
        On an unknown split, or a base set too small to hold it.
    """
    if split not in SPLITS:
        raise EvaluationError(f"split: expected one of {SPLITS}, found {split!r}")
    n_test = int(getattr(stream, "n_test", 10_000))
    if split == "test":
        return np.arange(0, n_test, dtype=np.int64)
    n_train = int(getattr(stream, "n_train", 60_000))
    if n_train <= _VALIDATION_FIRST_DIGIT:
        raise EvaluationError(
            f"split 'validation': the training digits {_VALIDATION_FIRST_DIGIT:,} and above are the "
            f"validation set, but the base set has only {n_train:,} training digits"
        )
    return np.arange(n_test + _VALIDATION_FIRST_DIGIT, n_test + n_train, dtype=np.int64)


def evaluate_stream(params: dict[str, torch.Tensor], stream, split: str = "test", *,
                    batch_size: int = 4096) -> Evaluation:
    """:func:`evaluate` on the ``test`` or ``validation`` digits of an InfiniteMNIST stream.

    Parameters
    ----------
    params : dict[str, torch.Tensor]
    stream : infinite_mnist.InfiniteMNIST
        Anything with ``floats(indices) -> (n, 784) float32`` and ``labels(indices) -> (n,) uint8``.
    split : {"test", "validation"}
    batch_size : int

    Returns
    -------
    Evaluation

    Raises
    ------
    EvaluationError
        On an unknown split.
    """
    idx = split_indices(split, stream)
    x = stream.floats(idx)
    y = stream.labels(idx).astype(np.int64)
    ev = evaluate(params, x, y, batch_size=batch_size)
    ev.split = split
    ev.indices = (int(idx[0]), int(idx[-1]) + 1)
    return ev


def resolve_snapshot(source: str | os.PathLike) -> tuple[Path, Path | None]:
    """The snapshot a path names, and the run folder it belongs to.

    Parameters
    ----------
    source : path-like
        A run folder (its latest snapshot) or a snapshot file.

    Returns
    -------
    snapshot : Path
    run_dir : Path or None
        The run folder (the parent of ``snapshots/``), or None for a snapshot outside one.

    Raises
    ------
    SnapshotError
        If the path is empty or does not exist, or the folder holds no snapshot.
    """
    if os.fspath(source) == "":  # Path("") is the current folder: never what was meant
        raise snapshots.SnapshotError("expected a run folder or a snapshot file, found an empty "
                                      "path")
    path = Path(source)
    if not path.exists():
        raise snapshots.SnapshotError(f"{path}: no such run folder or snapshot file")
    if path.is_dir():
        folder = path / "snapshots" if (path / "snapshots").is_dir() else path
        snap = run_folder.latest(folder)
    else:
        snap = path
    run_dir = snap.parent.parent if snap.parent.name == "snapshots" else None
    return snap, run_dir


def _load_readable(path: Path, run_dir: Path | None):
    """Load ``path``; for a run folder (``run_dir`` given), fall back to older snapshots when the
    newest cannot be read, as resume does, with a warning naming what was skipped."""
    if run_dir is None:
        return snapshots.load(path), path
    failed: list[str] = []
    for _, _, candidate in reversed(run_folder.RunFolder(run_dir).snapshots()):  # newest first
        try:
            snap = snapshots.load(candidate)
        except snapshots.SnapshotError as exc:
            failed.append(str(exc))
            continue
        if failed:
            warnings.warn(f"evaluating the older snapshot {candidate.name}: " + " | ".join(failed),
                          snapshots.SnapshotFallbackWarning, stacklevel=3)
        return snap, candidate
    raise snapshots.SnapshotError(f"{run_dir}: none of its snapshots can be read; tried, newest "
                                  f"first: " + " | ".join(failed))


def evaluate_snapshot(source: str | os.PathLike, split: str = "test", *, stream=None,
                      mnist_dir: str | None = None, device: str = "cpu") -> tuple[Evaluation, Path | None]:
    """Evaluate the network of a snapshot (or of a run folder's latest snapshot).

    Parameters
    ----------
    source : path-like
        Run folder or snapshot file.
    split : {"test", "validation"}
    stream : infinite_mnist.InfiniteMNIST, optional
        Default: the stream the run's configuration describes (its MNIST files).
    mnist_dir : str, optional
        MNIST directory, instead of the configuration's (or ``$ONLINEDEEP_MNIST_DIR``...).
    device : str
        Where to run the network.

    Returns
    -------
    evaluation : Evaluation
    run_dir : Path or None
        The snapshot's run folder, where :func:`record` writes.

    Raises
    ------
    SnapshotError
        If the snapshot cannot be read.
    EvaluationError
        If the network is not an MNIST classifier (784 inputs, 10 classes), or on an unknown split.
    """
    if split not in SPLITS:
        raise EvaluationError(f"split: expected one of {SPLITS}, found {split!r}")
    path, run_dir = resolve_snapshot(source)
    snap, path = _load_readable(path, run_dir if Path(source).is_dir() else None)
    cfg = snap.config
    if (cfg.n_inputs, cfg.n_classes) != (784, 10):
        raise EvaluationError(
            f"{path}: the network has {cfg.n_inputs} inputs and {cfg.n_classes} classes; the "
            f"test and validation digits need 784 and 10 (evaluate other data with "
            f"onlinedeep.evaluate.evaluate(params, x, y))"
        )
    if stream is None:
        from onlinedeep.training.data import make_stream

        if mnist_dir is not None:
            cfg.mnist_dir = mnist_dir
        stream = make_stream(cfg)
    params = {k: torch.from_numpy(v).to(device) for k, v in snap.params.items()}
    ev = evaluate_stream(params, stream, split)
    ev.position = snap.position
    ev.snapshot = str(path)
    if split == "validation" and cfg.split != "protocol":
        ev.notes.append(f"the run trained with split={cfg.split!r}, on deformations of these "
                        f"digits too: they are not held out")
    return ev, run_dir


def evaluation_path(run_dir: str | os.PathLike, split: str) -> Path:
    """``<run_dir>/evaluation-<split>.json``."""
    return Path(run_dir) / f"evaluation-{split}.json"


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise EvaluationError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != EVALUATION_FORMAT or not isinstance(
            data.get("evaluations"), list):
        raise EvaluationError(f"{path}: not an onlinedeep evaluation file (expected an object "
                              f"with format {EVALUATION_FORMAT!r} and a list 'evaluations')")
    return data


@contextlib.contextmanager
def _folder_locked(folder: Path):
    """Hold an exclusive ``flock`` on the folder itself for the block (waits for another holder;
    no lock file is left behind). Not the run's ``run.lock``: a training run holds that for its
    whole length, and evaluating while it trains is allowed."""
    import fcntl

    make_folder(folder)
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def record(run_dir: str | os.PathLike, evaluation: Evaluation) -> Path:
    """Add an evaluation to ``<run_dir>/evaluation-<split>.json`` (atomically).

    The file holds one entry per evaluated position, sorted by position; an entry at the same
    position is replaced.

    Returns
    -------
    Path

    Raises
    ------
    EvaluationError
        If the evaluation has no split, or the existing file is not an evaluation file (it is left
        as it is).
    """
    if evaluation.split not in SPLITS:
        raise EvaluationError(f"split: only {SPLITS} evaluations are recorded, found "
                              f"{evaluation.split!r}")
    path = evaluation_path(run_dir, evaluation.split)
    # Read, add, write back under an exclusive lock on the folder: a training run's own
    # evaluation and an `onlinedeep evaluate` beside it would otherwise drop each other's entry.
    with _folder_locked(path.parent):
        data = _read(path) if path.exists() else {"format": EVALUATION_FORMAT,
                                                  "split": evaluation.split, "evaluations": []}
        entry = evaluation.to_dict()
        kept = [e for e in data["evaluations"] if e.get("position") != entry["position"]]
        kept.append(entry)
        kept.sort(key=lambda e: -1 if e.get("position") is None else e["position"])
        data["evaluations"] = kept
        with atomic_file(path) as tmp:
            with open(tmp, "w") as f:
                json.dump(data, f, indent=2, sort_keys=True)
                f.write("\n")
    return path


def recorded(run_dir: str | os.PathLike, split: str = "test", position: int | None = None
             ) -> dict | None:
    """A recorded evaluation of a run: the one at ``position``, or the latest (highest position).

    Returns
    -------
    dict or None
        The entry (see :meth:`Evaluation.to_dict`), or None if none is recorded.

    Raises
    ------
    EvaluationError
        If the file exists but is not an evaluation file.
    """
    path = evaluation_path(run_dir, split)
    if not path.is_file():
        return None
    entries = _read(path)["evaluations"]
    if position is not None:
        entries = [e for e in entries if e.get("position") == position]
    return entries[-1] if entries else None


def confusion_table(confusion: np.ndarray, labels=None) -> str:
    """The confusion matrix as aligned text: rows true class, columns predicted class."""
    confusion = np.asarray(confusion)
    k = confusion.shape[0]
    labels = [str(c) for c in (labels if labels is not None else range(k))]
    width = max(max(len(f"{v:,}") for v in confusion.ravel()), max(map(len, labels)), 4)
    head = "true\\pred".ljust(10) + " ".join(lab.rjust(width) for lab in labels)
    rows = [labels[i].ljust(10) + " ".join(f"{v:,}".rjust(width) for v in confusion[i])
            for i in range(k)]
    return "\n".join([head, *rows])
