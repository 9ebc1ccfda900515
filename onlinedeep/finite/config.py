"""One finite-data run's options: :class:`FiniteConfig` (paper 5.3, sections 6-7).

A run trains one network on a fixed training set by epochs: with ``init="pretrained"`` first
``pretrain_epochs`` epochs of greedy layer-wise pre-training per layer (denoising auto-encoders or
RBMs, bottom ``pretrain_layers`` layers), then ``epochs`` epochs of supervised fine-tuning; every
update is one example (batch size 1), each epoch a seeded permutation of the training set. The
paper: 50 unsupervised epochs per layer and 50 supervised epochs (5.3).

The kernels and the random draws of pre-training are the engine's; they are driven through
:meth:`FiniteConfig.engine_config`, the :class:`onlinedeep.config.RunConfig` that describes the
same updates (positions count updates, pre-training first), which also goes into the snapshots.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from onlinedeep.config import ConfigError, RunConfig
from onlinedeep.config_fields import JsonFields

__all__ = ["FiniteConfig", "DATASET_SHAPES", "INITS", "SNAPSHOT_MODES", "FULL_SIZES"]

#: ``(n_inputs, n_classes)`` of each data set (onlinedeep.finite.data).
DATASET_SHAPES = {"mnist": (784, 10), "shapeset": (100, 2)}
#: Examples in each split of the full data sets (paper 5.2).
FULL_SIZES = {"train": 50_000, "valid": 10_000, "test": 10_000}
INITS = ("uniform", "pretrained", "histogram")
SNAPSHOT_MODES = ("none", "ends", "epochs")


@dataclass
class FiniteConfig(JsonFields):
    """Configuration of one finite-data run.

    Attributes
    ----------
    dataset : {"mnist", "shapeset"}
        Input width and classes follow (784/10, 100/2).
    layers, n_hidden : int
        Hidden layers (1-5) and their width.
    top_units : int or None
        Width of the top hidden layer if not ``n_hidden`` (Figure 10: 20 units; such a network has
        no snapshots, the snapshot format assumes equal widths).
    init : {"uniform", "pretrained", "histogram"}
        Table 1: uniform in ±1/√fan_in (5.3); greedy unsupervised pre-training; or parameters drawn
        independently from the marginal histograms of each pre-trained layer's weights and biases
        (:mod:`onlinedeep.finite.init`).
    pretrain : {"dae", "rbm"}
        Pre-training of ``init="pretrained"``/``"histogram"``: denoising auto-encoders (5.1.2) or
        RBMs by CD-k (5.1.1).
    pretrain_layers : int or None
        Pre-train only the bottom K layers (Figure 14 left); None: all.
    epochs, pretrain_epochs : int
        Supervised epochs; unsupervised epochs per pre-trained layer.
    learning_rate, unsup_learning_rate, corruption_level, noise, cd_k, l1, l2
        As :class:`onlinedeep.config.RunConfig` (footnote 7's hyperparameters).
    seed : int
        Initial weights, the order of every epoch and every draw of pre-training.
    data_seed : int
        Shapeset's generation seed (the data, not the network).
    n_train, n_valid, n_test : int or None
        Keep only the first examples of each split (None: all, 50,000 / 10,000 / 10,000).
    histogram_source : str or None
        ``init="histogram"``: a snapshot of the pre-trained network to take the histograms from;
        None: this run pre-trains first (the same pre-training as ``init="pretrained"`` with this
        seed).
    histogram_bins : int
        Bins of each marginal histogram.
    snapshots : {"none", "ends", "epochs"}
        Snapshots (``onlinedeep.snapshot`` format) at the end of pre-training and at the end
        (``ends``), or also after every epoch and at the start (``epochs``: for the ``show`` tools'
        trajectories).
    chunk_size : int
        Updates per kernel call (does not change what an update computes).
    kernel, device, threads, mnist_dir
        As :class:`onlinedeep.config.RunConfig`; ``threads`` defaults to 1 (one job per core).

    Raises
    ------
    ConfigError
        On creation, naming the first invalid field.
    """

    dataset: str = "mnist"
    layers: int = 1
    n_hidden: int = 800
    top_units: int | None = None
    init: str = "pretrained"
    pretrain: str = "dae"
    pretrain_layers: int | None = None
    epochs: int = 50
    pretrain_epochs: int = 50
    learning_rate: float = 0.02
    unsup_learning_rate: float = 0.005
    corruption_level: float = 0.25
    noise: str = "masking"
    cd_k: int = 1
    l1: float = 0.0
    l2: float = 0.0
    seed: int = 0
    data_seed: int = 0
    n_train: int | None = None
    n_valid: int | None = None
    n_test: int | None = None
    histogram_source: str | None = None
    histogram_bins: int = 100
    snapshots: str = "ends"
    chunk_size: int = 1000
    kernel: str = "auto"
    device: str = "cpu"
    threads: int = 1
    mnist_dir: str | None = None

    def __post_init__(self) -> None:
        if self.pretrain_layers is None:
            self.pretrain_layers = self.layers
        self.validate()

    def validate(self) -> None:
        """Check every field (the engine's checks through :meth:`engine_config`).

        Raises
        ------
        ConfigError
        """
        def need(cond: bool, name: str, expected: str) -> None:
            if not cond:
                raise ConfigError(f"{name}: expected {expected}, found {getattr(self, name)!r}")

        def is_int(v: Any, low: int = 0) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v >= low

        need(self.dataset in DATASET_SHAPES, "dataset", f"one of {tuple(DATASET_SHAPES)}")
        need(self.init in INITS, "init", f"one of {INITS}")
        need(self.pretrain in ("dae", "rbm"), "pretrain", "'dae' or 'rbm'")
        need(is_int(self.epochs, 1), "epochs", "an integer >= 1")
        need(is_int(self.pretrain_epochs), "pretrain_epochs", "an integer >= 0")
        need(is_int(self.layers, 1) and self.layers <= 5, "layers", "an integer in 1..5")
        need(is_int(self.pretrain_layers) and self.pretrain_layers <= self.layers,
             "pretrain_layers", f"an integer in 0..layers={self.layers}")
        need(self.top_units is None or is_int(self.top_units, 1), "top_units",
             "an integer >= 1 or null")
        need(self.snapshots in SNAPSHOT_MODES, "snapshots", f"one of {SNAPSHOT_MODES}")
        if self.top_units not in (None, self.n_hidden):
            need(self.snapshots == "none", "snapshots",
                 "'none' with top_units (snapshots hold equal-width layers only)")
        if self.init == "histogram":
            need(self.pretrain_layers >= 1, "pretrain_layers", ">= 1 with init='histogram'")
            need(self.histogram_source is not None or self.pretrain_epochs >= 1, "pretrain_epochs",
                 ">= 1 with init='histogram' and no histogram_source")
        need(is_int(self.histogram_bins, 1), "histogram_bins", "an integer >= 1")
        need(is_int(self.data_seed) and self.data_seed < 2**63, "data_seed",
             "an integer in [0, 2**63)")
        for split in ("train", "valid", "test"):
            name = f"n_{split}"
            value = getattr(self, name)
            need(value is None or is_int(value, 1), name, "an integer >= 1 or null (all)")
        self.engine_config()  # the engine's checks of every shared field

    # ------------------------------------------------------------------ derived values
    @property
    def n_inputs(self) -> int:
        return DATASET_SHAPES[self.dataset][0]

    @property
    def n_classes(self) -> int:
        return DATASET_SHAPES[self.dataset][1]

    def split_size(self, split: str) -> int:
        """Examples of ``split`` the run uses (the full split unless ``n_<split>`` is smaller)."""
        given = getattr(self, f"n_{split}")
        return FULL_SIZES[split] if given is None else min(given, FULL_SIZES[split])

    def sizes(self) -> dict[str, int | None]:
        """``{"train": n_train, "valid": n_valid, "test": n_test}`` (None: all)."""
        return {"train": self.n_train, "valid": self.n_valid, "test": self.n_test}

    @property
    def pretrains_here(self) -> bool:
        """Whether this run does unsupervised pre-training itself."""
        if self.pretrain_layers == 0 or self.pretrain_epochs == 0:
            return False
        return self.init == "pretrained" or (self.init == "histogram"
                                             and self.histogram_source is None)

    def engine_config(self) -> RunConfig:
        """The :class:`RunConfig` of the same updates: ``unsup_updates = pretrain_epochs · n_train ·
        pretrain_layers`` (equal per layer), ``sup_updates = epochs · n_train``, a metrics window
        and record of one epoch. Its ``seed`` and ``n_inputs`` key the pre-training draws.

        Raises
        ------
        ConfigError
            If a shared field is invalid (the engine's message).
        """
        n = self.split_size("train")
        k = self.pretrain_layers if self.pretrains_here else 0
        try:
            return RunConfig(
                layers=self.layers, n_hidden=self.n_hidden, n_inputs=self.n_inputs,
                n_classes=self.n_classes, pretrain=self.pretrain if k else "none",
                pretrain_layers=k, unsup_updates=self.pretrain_epochs * n * k,
                sup_updates=self.epochs * n, learning_rate=self.learning_rate,
                unsup_learning_rate=self.unsup_learning_rate,
                corruption_level=self.corruption_level, noise=self.noise, cd_k=self.cd_k,
                l1=self.l1, l2=self.l2, seed=self.seed, window=n, log_every=n,
                chunk_size=self.chunk_size, snapshot_every=self.chunk_size, keep_snapshots=0,
                device=self.device, kernel=self.kernel, threads=self.threads,
                mnist_dir=self.mnist_dir)
        except TypeError as exc:
            raise ConfigError(f"configuration: {exc}") from None

    # ------------------------------------------------------------------ (de)serialisation

    def replace(self, **changes: Any) -> "FiniteConfig":
        """A validated copy with ``changes``."""
        return FiniteConfig.from_dict({**self.to_dict(), **changes})
