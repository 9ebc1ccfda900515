"""One run's configuration: the :class:`RunConfig` dataclass, presets, count parsing.

Every ``onlinedeep train`` flag maps to one field of :class:`RunConfig` with the same name; the
configuration is written verbatim (JSON) into every snapshot and read back on resume, so a run is
fully described by it plus its :class:`infinite_mnist.Schedule`.

Stream positions count examples seen, unsupervised ones included: positions ``[0, unsup_updates)``
pre-train the bottom ``pretrain_layers`` layers one after the other, positions
``[unsup_updates, unsup_updates + sup_updates)`` fine-tune the whole network with labels (paper 5.3);
:mod:`onlinedeep.phases` derives the phases and chunks from a configuration.
The allowed values of each field and their checks are in :mod:`onlinedeep.config_fields`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from onlinedeep.config_fields import (DEFORMATIONS, DEVICES, KERNELS, NOISE_MODES, PRETRAIN_MODES,
                                      SPLITS, ConfigError, JsonFields, check_fields)

__all__ = [
    "ConfigError",
    "RunConfig",
    "PRESETS",
    "RESUME_MUTABLE",
    "BRANCH_MUTABLE",
    "parse_count",
    "format_count",
    # the allowed values of fields (onlinedeep.config_fields)
    "PRETRAIN_MODES",
    "DEFORMATIONS",
    "NOISE_MODES",
    "SPLITS",
    "DEVICES",
    "KERNELS",
]

# Fields that may differ between a snapshot's configuration and the configuration a resumed run
# continues with: they change how the run executes, how often it reports, or (sup_updates) only
# extend the last phase, never what an update computes before the old end. A resumed run continues
# in its own folder, so its location (name, out) is not among them.
RESUME_MUTABLE = frozenset(
    {
        "device",
        "kernel",
        "threads",
        "mnist_dir",
        "log_every",
        "snapshot_every",
        "keep_snapshots",
        "sup_updates",
        "train_error_blocks",
    }
)
# A branch (a snapshot continued into another run folder) may in addition be named and placed anew.
BRANCH_MUTABLE = RESUME_MUTABLE | {"name", "out"}



_SUFFIXES = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "B": 10**9}
_COUNT_RE = re.compile(r"^\s*([0-9][0-9_]*(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)\s*([kKMGB]?)\s*$")


def parse_count(text: str | int, *, name: str = "count") -> int:
    """Parse an update or example count, with an optional suffix.

    Parameters
    ----------
    text : str or int
        ``"2.5M"``, ``"100k"``, ``"7_500_000"``, ``"1e6"`` or an int. Suffixes: ``k``/``K`` = 10³,
        ``M`` = 10⁶, ``G``/``B`` = 10⁹.
    name : str
        What is being parsed, for the error message (e.g. ``"--unsup-updates"``).

    Returns
    -------
    int
        The count (≥ 0).

    Raises
    ------
    ConfigError
        If the text is not a number with an optional suffix, is negative, or is not a whole number
        (``"1.2345k"``).
    """
    if isinstance(text, bool):
        raise ConfigError(f"{name}: expected a count such as 2.5M or 100k, found {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise ConfigError(f"{name}: expected a count >= 0, found {text}")
        return text
    if isinstance(text, float):
        text = repr(text)
    m = _COUNT_RE.match(str(text))
    if m is None:
        raise ConfigError(
            f"{name}: expected a count such as 2.5M, 100k or 7500000, found {text!r}"
        )
    number, suffix = m.groups()
    number = number.replace("_", "")
    scale = _SUFFIXES[suffix]
    if re.fullmatch(r"[0-9]+", number):
        return int(number) * scale
    value = float(number) * scale
    if not math.isfinite(value) or value != math.floor(value):
        raise ConfigError(f"{name}: {text!r} is not a whole number of examples ({value})")
    return int(value)


def format_count(n: int) -> str:
    """Shortest exact form of a count with a suffix (2500000 → ``"2.5M"``), for names and logs."""
    for suffix, scale in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= scale and (n * 1000) % scale == 0:
            return f"{n / scale:g}{suffix}"
    return str(n)


@dataclass
class RunConfig(JsonFields):
    """Configuration of one training run (one field per ``onlinedeep train`` flag, same name).

    Fields left ``None`` take the paper's value (paper 5.3 and 8.1) when the object is created:
    ``n_hidden`` 2,000 for one hidden layer and 1,000 for deeper nets (footnote 14);
    ``pretrain_layers`` all layers (0 without pre-training); ``unsup_updates`` 2.5M with
    pre-training, 0 without; ``sup_updates`` 7.5M after pre-training, 10M without.

    Attributes
    ----------
    layers : int
        Number of hidden layers, 1-5 (all of width ``n_hidden``).
    n_hidden : int
        Units per hidden layer.
    n_inputs, n_classes : int
        Inputs of the first layer and classes of the softmax layer (784 and 10 for MNIST digits; a
        configuration written before these fields existed means MNIST).
    pretrain : {"dae", "rbm", "none"}
        Stacked denoising auto-encoders (paper 5.1.2), a DBN of RBMs trained by CD-k (5.1.1), or none.
    pretrain_layers : int
        Pre-train only the bottom K layers (Figure 14); the others keep their random initialisation.
    unsup_updates, sup_updates : int
        Updates (= examples, batch size 1) of unsupervised pre-training (all layers together) and of
        supervised fine-tuning.
    unsup_split : str
        How ``unsup_updates`` is shared between the pre-trained layers: ``"equal"`` (each layer gets
        the same count; the remainder goes to the top layer) or comma-separated weights such as
        ``"2,1,1"`` (counts proportional to the weights, the top layer takes the rounding
        remainder). ``"equal"`` is the default because the paper's finite-MNIST protocol gives every
        layer the same budget (50 epochs per layer, 5.3) and its InfiniteMNIST protocol states only
        the total (2.5M), which keeps Figure 13's 0.25 mark at the end of pre-training.
    learning_rate, unsup_learning_rate : float
        Constant learning rates of the supervised and unsupervised updates.
    corruption_level : float
        Fraction of inputs corrupted by the DAE, in [0, 1); exactly ``round(corruption_level·fan_in)``
        inputs per example.
    noise : {"masking", "salt-pepper"}
        DAE corruption: set to 0, or set to Bernoulli(0.5).
    cd_k : int
        Gibbs steps of contrastive divergence (RBM pre-training; Hinton 2002). The default, CD-1
        with the probabilities of the visible reconstruction, follows Hinton's practical guide
        (2010, sections 3 and 3.2).
    sample_reconstruction : bool
        RBM: sample the visible reconstruction instead of using its probabilities, as the Deep
        Learning Tutorials' DBN (Theano) does.
    l1, l2 : float
        Penalties on the weight matrices (not biases) of the supervised loss (footnote 5).
    seed : int
        Initial weights and every random draw (noise is a function of ``(seed, position)``).
    split : {"protocol", "all"}
        ``protocol`` trains on deformations of training digits 0-49,999 only.
    stream_start : int
        First training id of the default (contiguous) schedule.
    deformation : str
        InfiniteMNIST mode (``"first-order"``, ``"elastic"``), or ``"infimnist"`` to read
        infimnist's own data directory given as ``mnist_dir``.
    stream_seed : int
        Seed of the generator's bank of displacement fields.
    window : int
        Examples in the online-error sliding window (paper: 100,000).
    log_every : int
        Examples between two records of the metrics series.
    snapshot_every : int
        Updates between two periodic snapshots; a multiple of ``chunk_size``.
    keep_snapshots : int
        Periodic snapshots kept (older ones deleted; 0 keeps all). The initial, final and explicitly
        requested snapshots are always kept.
    chunk_size : int
        Updates per kernel call and per producer chunk; chunk boundaries are the multiples of it
        (and the phase boundaries), so a resumed run feeds identical chunks.
    queue_size : int
        Chunks the producer may prepare ahead (bounded queue, back-pressure).
    train_error_blocks : int
        If > 0, after training re-read the supervised training sequence in presentation order and
        report its error in this many blocks (Figure 12).
    device : {"auto", "cpu", "cuda"}
    kernel : str
        ``onlinedeep.kernels.get`` name (one of :data:`onlinedeep.config_fields.KERNELS`).
    threads : int
        CPU threads, 0 = auto; :func:`onlinedeep.threads.decide` says what each part of the run
        gets (a kernel with its own threads: those, which never change the weights; PyTorch
        kernels: PyTorch's threads). Auto with the numba kernel changes the count between chunks
        with the measured speed and the machine's load (:class:`onlinedeep.threads.KernelThreads`).
    mnist_dir : str or None
        Base MNIST directory (else ``$ONLINEDEEP_MNIST_DIR``, the cache, ...).
    name, out : str
        The run folder is ``out/name``.
    """

    layers: int = 1
    n_hidden: int | None = None
    n_inputs: int = 784
    n_classes: int = 10
    pretrain: str = "dae"
    pretrain_layers: int | None = None
    unsup_updates: int | None = None
    sup_updates: int | None = None
    unsup_split: str = "equal"
    learning_rate: float = 0.05
    unsup_learning_rate: float = 0.01
    corruption_level: float = 0.25
    noise: str = "masking"
    cd_k: int = 1
    sample_reconstruction: bool = False
    l1: float = 0.0
    l2: float = 0.0
    seed: int = 0
    split: str = "protocol"
    stream_start: int = 0
    deformation: str = "first-order"
    stream_seed: int = 0
    window: int = 100_000
    log_every: int = 10_000
    snapshot_every: int = 500_000
    keep_snapshots: int = 2
    chunk_size: int = 1000
    queue_size: int = 4
    train_error_blocks: int = 0
    device: str = "auto"
    kernel: str = "auto"
    threads: int = 0
    mnist_dir: str | None = None
    name: str | None = None
    out: str = "runs"

    def __post_init__(self) -> None:
        for name in ("unsup_updates", "sup_updates", "window", "log_every", "snapshot_every",
                     "chunk_size", "stream_start"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, int):
                object.__setattr__(self, name, parse_count(value, name=name))
        if self.pretrain not in PRETRAIN_MODES:
            raise ConfigError(f"pretrain: expected one of {PRETRAIN_MODES}, found {self.pretrain!r}")
        pretraining = self.pretrain != "none"
        if self.n_hidden is None:
            self.n_hidden = 2000 if self.layers == 1 else 1000
        if self.pretrain_layers is None:
            self.pretrain_layers = self.layers if pretraining else 0
        if self.unsup_updates is None:
            self.unsup_updates = 2_500_000 if pretraining and self.pretrain_layers > 0 else 0
        if self.sup_updates is None:
            self.sup_updates = 7_500_000 if self.unsup_updates > 0 else 10_000_000
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Check every field.

        Raises
        ------
        ConfigError
            Naming the first invalid field, what was expected and what was found.
        """
        check_fields(self)

    def split_weights(self) -> list[float]:
        """Weights of ``unsup_split``, one per pre-trained layer (all 1 for ``"equal"``).

        Raises
        ------
        ConfigError
            If ``unsup_split`` is not ``"equal"`` or one positive weight per pre-trained layer.
        """
        k = self.pretrain_layers if isinstance(self.pretrain_layers, int) else 0
        if self.unsup_split == "equal":
            return [1.0] * k
        try:
            weights = [float(w) for w in str(self.unsup_split).split(",")]
        except ValueError:
            weights = []
        if not weights or any(not math.isfinite(w) or w <= 0 for w in weights):
            raise ConfigError(
                f"unsup_split: expected 'equal' or comma-separated positive weights such as '2,1,1', "
                f"found {self.unsup_split!r}"
            )
        if len(weights) != k:
            raise ConfigError(
                f"unsup_split: expected {k} weights (one per pre-trained layer, pretrain_layers={k}), "
                f"found {len(weights)} in {self.unsup_split!r}"
            )
        return weights

    # ------------------------------------------------------------------ derived values
    @property
    def total_updates(self) -> int:
        """Stream positions of the whole run: ``unsup_updates + sup_updates``."""
        return self.unsup_updates + self.sup_updates

    def default_name(self) -> str:
        """A descriptive run name: ``dae-3x1000-s0`` (the CLI appends a timestamp)."""
        mode = self.pretrain if self.pretrain_layers else "none"
        if self.pretrain != "none" and 0 < self.pretrain_layers < self.layers:
            mode = f"{self.pretrain}{self.pretrain_layers}"
        return f"{mode}-{self.layers}x{self.n_hidden}-s{self.seed}"

    # ------------------------------------------------------------------ (de)serialisation

    @classmethod
    def from_json(cls, text: str | bytes, *, where: str = "configuration") -> "RunConfig":
        """Parse :meth:`to_json` output.

        Raises
        ------
        ConfigError
            If the text is not JSON, or see :meth:`from_dict`.
        """
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not valid JSON ({exc})") from None
        return cls.from_dict(data, where=where)

    @classmethod
    def preset(cls, preset: str, /, **overrides: Any) -> "RunConfig":
        """A configuration from a preset, with explicit values taking precedence.

        Parameters
        ----------
        preset : {"paper", "smoke"}
            ``paper``: the protocol of section 5.3 / 8.1 (the dataclass defaults). ``smoke``: a
            small net and a few thousand updates, for CI and a first try (under a minute on 2
            cores, most of it compiling the Numba kernels on a first run); chunks of 500, a
            metrics record every 500 updates, a snapshot every 2,000, all kept.
        **overrides
            Field values; ``None`` means "not given" and leaves the preset's value.

        Raises
        ------
        ConfigError
            On an unknown preset or field, or an invalid value.
        """
        if preset not in PRESETS:
            raise ConfigError(f"preset: expected one of {sorted(PRESETS)}, found {preset!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown field(s) {unknown}")
        values = dict(PRESETS[preset])
        given = {k: v for k, v in overrides.items() if v is not None}
        values.update(given)
        pretraining = values.get("pretrain", "dae") != "none" and values.get("pretrain_layers") != 0
        if not pretraining and "unsup_updates" not in given and "unsup_updates" in values:
            # As in the paper (10M supervised vs 2.5M + 7.5M), a run without pre-training sees the
            # same number of examples, all supervised.
            values["sup_updates"] = given.get(
                "sup_updates", values["unsup_updates"] + values.get("sup_updates", 0)
            )
            values["unsup_updates"] = 0
        return cls(**values)

    def diff(self, other: "RunConfig") -> dict[str, tuple[Any, Any]]:
        """Fields whose values differ: ``{name: (self's, other's)}``."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


PRESETS: dict[str, dict[str, Any]] = {
    # The paper's protocol: the dataclass defaults.
    "paper": {},
    # A few thousand updates of a small net: online error well below chance on real MNIST.
    "smoke": {
        "n_hidden": 128,
        "unsup_updates": 2_000,
        "sup_updates": 6_000,
        "window": 2_000,
        "log_every": 500,
        "snapshot_every": 2_000,
        "chunk_size": 500,
        "keep_snapshots": 0,
    },
}
