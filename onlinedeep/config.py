"""One run's configuration: the :class:`RunConfig` dataclass, presets, count parsing.

Every ``onlinedeep train`` flag maps to one field of :class:`RunConfig` with the same name; the
configuration is written verbatim (JSON) into every snapshot and read back on resume, so a run is
fully described by it plus its :class:`infinite_mnist.Schedule`.

Stream positions count examples seen, unsupervised ones included: positions ``[0, unsup_updates)``
pre-train the bottom ``pretrain_layers`` layers one after the other, positions
``[unsup_updates, unsup_updates + sup_updates)`` fine-tune the whole network with labels (paper 5.3);
:mod:`onlinedeep.phases` derives the phases and chunks from a configuration.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ConfigError",
    "RunConfig",
    "PRESETS",
    "RESUME_MUTABLE",
    "BRANCH_MUTABLE",
    "parse_count",
    "format_count",
]

PRETRAIN_MODES = ("dae", "rbm", "none")
# infinite_mnist.stream.MODES (not imported: reading a configuration should not load numba)
DEFORMATIONS = ("first-order", "elastic", "infimnist")
NOISE_MODES = ("masking", "salt-pepper")
SPLITS = ("protocol", "all")
DEVICES = ("auto", "cpu", "cuda")
# onlinedeep.kernels.KERNEL_NAMES (not imported: reading a configuration should not load torch)
KERNELS = ("auto", "reference", "numba", "cuda-graph")

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


class ConfigError(ValueError):
    """An invalid configuration value (the message names the field, what was expected and found)."""


def _f32(value: float) -> float:
    """``value`` rounded to float32 (inf when it overflows), without importing NumPy."""
    try:
        return struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)


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
class RunConfig:
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
        ``onlinedeep.kernels.get`` name (one of :data:`KERNELS`).
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
        _validate(self)

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
    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-able dict (after defaults are resolved)."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """The configuration as a JSON object with sorted keys (stored as an HDF5 attribute)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "configuration") -> "RunConfig":
        """Build and validate from a dict.

        Raises
        ------
        ConfigError
            On an unknown field or an invalid value; the message starts with ``where``.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a JSON object, found {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {unknown}; known fields: {sorted(known)}")
        try:
            return cls(**data)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None

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


def _validate(cfg: "RunConfig") -> None:
    """Check every field of ``cfg`` (see :meth:`RunConfig.validate`)."""

    def need(cond: bool, name: str, expected: str) -> None:
        if not cond:
            raise ConfigError(f"{name}: expected {expected}, found {getattr(cfg, name)!r}")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def is_num(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    def is_f32(v: Any) -> bool:
        return is_num(v) and math.isfinite(_f32(v))

    need(is_int(cfg.layers) and 1 <= cfg.layers <= 5, "layers", "an integer in 1..5")
    need(is_int(cfg.n_hidden) and cfg.n_hidden >= 1, "n_hidden", "an integer >= 1")
    need(is_int(cfg.n_inputs) and cfg.n_inputs >= 1, "n_inputs", "an integer >= 1")
    need(is_int(cfg.n_classes) and cfg.n_classes >= 2, "n_classes", "an integer >= 2")
    need(cfg.pretrain in PRETRAIN_MODES, "pretrain", f"one of {PRETRAIN_MODES}")
    need(is_int(cfg.pretrain_layers) and 0 <= cfg.pretrain_layers <= cfg.layers,
         "pretrain_layers", f"an integer in 0..layers={cfg.layers}")
    if cfg.pretrain == "none":
        need(cfg.pretrain_layers == 0, "pretrain_layers", "0 with pretrain='none'")
        need(cfg.unsup_updates == 0, "unsup_updates", "0 with pretrain='none'")
    for name in ("unsup_updates", "sup_updates", "stream_start"):
        need(is_int(getattr(cfg, name)) and getattr(cfg, name) >= 0, name, "an integer >= 0")
    if cfg.pretrain_layers > 0:
        need(cfg.unsup_updates >= cfg.pretrain_layers, "unsup_updates",
             f"at least one update per pre-trained layer (pretrain_layers={cfg.pretrain_layers})")
    elif cfg.pretrain != "none":
        need(cfg.unsup_updates == 0, "unsup_updates", "0 when pretrain_layers=0")
    need(cfg.unsup_updates + cfg.sup_updates > 0, "sup_updates",
         "a positive total of updates (unsup_updates + sup_updates > 0)")
    cfg.split_weights()  # raises on a bad unsup_split
    # The kernels compute in float32: a value that overflows (1e39) or underflows (1e-46) there
    # is not the value asked for.
    need(is_f32(cfg.learning_rate) and cfg.learning_rate > 0 and _f32(cfg.learning_rate) > 0,
         "learning_rate", "a number > 0, finite and non-zero in float32")
    need(is_f32(cfg.unsup_learning_rate) and cfg.unsup_learning_rate > 0
         and _f32(cfg.unsup_learning_rate) > 0,
         "unsup_learning_rate", "a number > 0, finite and non-zero in float32")
    need(is_num(cfg.corruption_level) and 0 <= cfg.corruption_level < 1,
         "corruption_level", "a number in [0, 1)")
    need(cfg.noise in NOISE_MODES, "noise", f"one of {NOISE_MODES}")
    need(is_int(cfg.cd_k) and cfg.cd_k >= 1, "cd_k", "an integer >= 1")
    need(isinstance(cfg.sample_reconstruction, bool), "sample_reconstruction", "true or false")
    need(is_f32(cfg.l1) and cfg.l1 >= 0, "l1", "a number >= 0, finite in float32")
    need(is_f32(cfg.l2) and cfg.l2 >= 0, "l2", "a number >= 0, finite in float32")
    # W -= lr·(... + 2·l2·W): with lr·l2 >= 0.5 the decay alone flips or blows up the weights
    need(cfg.learning_rate * cfg.l2 < 0.5, "l2",
         f"learning_rate·l2 < 0.5 (learning_rate={cfg.learning_rate:g}, so l2 < "
         f"{0.5 / cfg.learning_rate:g})")
    need(is_int(cfg.seed) and 0 <= cfg.seed < 2**63, "seed", "an integer in [0, 2**63)")
    need(cfg.split in SPLITS, "split", f"one of {SPLITS}")
    need(cfg.deformation in DEFORMATIONS, "deformation", f"one of {DEFORMATIONS}")
    if cfg.deformation == "infimnist":
        need(bool(cfg.mnist_dir), "mnist_dir",
             "infimnist's data directory with deformation='infimnist'")
    need(is_int(cfg.stream_seed) and 0 <= cfg.stream_seed < 2**64, "stream_seed",
         "an integer in [0, 2**64)")
    need(is_int(cfg.window) and cfg.window >= 1, "window", "an integer >= 1")
    need(is_int(cfg.log_every) and cfg.log_every >= 1, "log_every", "an integer >= 1")
    need(is_int(cfg.chunk_size) and cfg.chunk_size >= 1, "chunk_size", "an integer >= 1")
    need(is_int(cfg.queue_size) and cfg.queue_size >= 1, "queue_size", "an integer >= 1")
    need(is_int(cfg.snapshot_every) and cfg.snapshot_every >= 1, "snapshot_every",
         "an integer >= 1")
    if cfg.snapshot_every % cfg.chunk_size:
        raise ConfigError(
            f"snapshot_every: expected a multiple of chunk_size={cfg.chunk_size} (snapshots are "
            f"taken between chunks), found {cfg.snapshot_every}"
        )
    need(is_int(cfg.keep_snapshots) and cfg.keep_snapshots >= 0, "keep_snapshots",
         "an integer >= 0 (0 keeps all)")
    need(is_int(cfg.train_error_blocks) and cfg.train_error_blocks >= 0,
         "train_error_blocks", "an integer >= 0")
    if cfg.train_error_blocks > max(cfg.sup_updates, 1):
        raise ConfigError(
            f"train_error_blocks: expected at most sup_updates={cfg.sup_updates} blocks, "
            f"found {cfg.train_error_blocks}"
        )
    need(cfg.device in DEVICES, "device", f"one of {DEVICES}")
    need(cfg.kernel in KERNELS, "kernel", f"one of {KERNELS}")
    need(is_int(cfg.threads) and cfg.threads >= 0, "threads", "an integer >= 0 (0: auto)")
    need(cfg.mnist_dir is None or isinstance(cfg.mnist_dir, str), "mnist_dir",
         "a directory path or null")
    need(cfg.name is None or (isinstance(cfg.name, str) and re.fullmatch(r"[\w.+-]+", cfg.name)
                                is not None and cfg.name not in (".", "..")),
         "name", "a folder name of letters, digits, '.', '_', '+', '-'")
    need(isinstance(cfg.out, str) and cfg.out != "", "out", "a directory path")


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
