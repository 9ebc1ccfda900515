"""One run's configuration: the :class:`RunConfig` dataclass, presets, count parsing, phase boundaries.

Every ``onlinedeep train`` flag maps to one field of :class:`RunConfig` with the same name; the
configuration is written verbatim (JSON) into every snapshot and read back on resume, so a run is
fully described by it plus its :class:`infinite_mnist.Schedule`.

Stream positions count examples seen, unsupervised ones included: positions ``[0, unsup_updates)``
pre-train the bottom ``pretrain_layers`` layers one after the other, positions
``[unsup_updates, unsup_updates + sup_updates)`` fine-tune the whole network with labels (paper 5.3).
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
    "Phase",
    "RunConfig",
    "PRESETS",
    "RESUME_MUTABLE",
    "BRANCH_MUTABLE",
    "parse_count",
    "format_count",
]

N_INPUTS = 784
N_CLASSES = 10

PRETRAIN_MODES = ("dae", "rbm", "none")
# infinite_mnist.stream.MODES (not imported: reading a configuration should not load numba)
DEFORMATIONS = ("first-order", "elastic", "infimnist")
NOISE_MODES = ("masking", "salt-pepper")
SPLITS = ("protocol", "all")
DEVICES = ("auto", "cpu", "cuda")

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


@dataclass(frozen=True)
class Phase:
    """A contiguous range of stream positions trained the same way.

    Attributes
    ----------
    kind : str
        ``"pretrain"`` or ``"supervised"``.
    layer : int
        Layer being pre-trained (0 = the bottom one), or -1 for the supervised phase.
    start, stop : int
        Stream positions (examples seen, unsupervised included), half-open ``[start, stop)``.
    """

    kind: str
    layer: int
    start: int
    stop: int

    @property
    def label(self) -> str:
        """Short human label: ``"pretrain L1"`` or ``"supervised"``."""
        return f"pretrain L{self.layer}" if self.kind == "pretrain" else "supervised"


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
        Gibbs steps of contrastive divergence (RBM pre-training).
    sample_reconstruction : bool
        RBM: sample the visible reconstruction instead of using its probabilities.
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
        ``onlinedeep.kernels.get`` name (``auto``, ``reference``, ``numba``, ...).
    threads : int
        CPU threads of the kernel (``onlinedeep.kernels.get(kernel, device, threads=...)``); 0 =
        auto: ``$ONLINEDEEP_NUMBA_THREADS``, else the cores available to the process, at most 2.
        numba kernel: its own threads, which never change the weights (so a run may resume with
        another count); the PyTorch operations in its training loop run on one thread. reference /
        cuda-graph kernels: PyTorch's threads (0 leaves PyTorch's default). On a machine shared with
        other jobs, 1 can be many times faster than oversubscribed cores.
    mnist_dir : str or None
        Base MNIST directory (else ``$ONLINEDEEP_MNIST_DIR``, the cache, ...).
    name, out : str
        The run folder is ``out/name``.
    n_inputs : int
        Inputs of the network (784 for MNIST's 28x28 pixels); each a float in [0, 1], the
        probability of a Bernoulli input (paper 5.1).
    n_classes : int
        Classes of the softmax layer (10 for MNIST digits), >= 2.
    """

    layers: int = 1
    n_hidden: int | None = None
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
    n_inputs: int = N_INPUTS
    n_classes: int = N_CLASSES

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

        def need(cond: bool, name: str, expected: str) -> None:
            if not cond:
                raise ConfigError(f"{name}: expected {expected}, found {getattr(self, name)!r}")

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        def is_f32(v: Any) -> bool:
            return is_num(v) and math.isfinite(_f32(v))

        need(is_int(self.layers) and 1 <= self.layers <= 5, "layers", "an integer in 1..5")
        need(is_int(self.n_hidden) and self.n_hidden >= 1, "n_hidden", "an integer >= 1")
        need(self.pretrain in PRETRAIN_MODES, "pretrain", f"one of {PRETRAIN_MODES}")
        need(is_int(self.pretrain_layers) and 0 <= self.pretrain_layers <= self.layers,
             "pretrain_layers", f"an integer in 0..layers={self.layers}")
        if self.pretrain == "none":
            need(self.pretrain_layers == 0, "pretrain_layers", "0 with pretrain='none'")
            need(self.unsup_updates == 0, "unsup_updates", "0 with pretrain='none'")
        for name in ("unsup_updates", "sup_updates", "stream_start"):
            need(is_int(getattr(self, name)) and getattr(self, name) >= 0, name, "an integer >= 0")
        if self.pretrain_layers > 0:
            need(self.unsup_updates >= self.pretrain_layers, "unsup_updates",
                 f"at least one update per pre-trained layer (pretrain_layers={self.pretrain_layers})")
        elif self.pretrain != "none":
            need(self.unsup_updates == 0, "unsup_updates", "0 when pretrain_layers=0")
        need(self.unsup_updates + self.sup_updates > 0, "sup_updates",
             "a positive total of updates (unsup_updates + sup_updates > 0)")
        self._split_weights()  # raises on a bad unsup_split
        # The kernels compute in float32: a value that overflows (1e39) or underflows (1e-46) there
        # is not the value asked for.
        need(is_f32(self.learning_rate) and self.learning_rate > 0 and _f32(self.learning_rate) > 0,
             "learning_rate", "a number > 0, finite and non-zero in float32")
        need(is_f32(self.unsup_learning_rate) and self.unsup_learning_rate > 0
             and _f32(self.unsup_learning_rate) > 0,
             "unsup_learning_rate", "a number > 0, finite and non-zero in float32")
        need(is_num(self.corruption_level) and 0 <= self.corruption_level < 1,
             "corruption_level", "a number in [0, 1)")
        need(self.noise in NOISE_MODES, "noise", f"one of {NOISE_MODES}")
        need(is_int(self.cd_k) and self.cd_k >= 1, "cd_k", "an integer >= 1")
        need(isinstance(self.sample_reconstruction, bool), "sample_reconstruction", "true or false")
        need(is_f32(self.l1) and self.l1 >= 0, "l1", "a number >= 0, finite in float32")
        need(is_f32(self.l2) and self.l2 >= 0, "l2", "a number >= 0, finite in float32")
        # W -= lr·(... + 2·l2·W): with lr·l2 >= 0.5 the decay alone flips or blows up the weights
        need(self.learning_rate * self.l2 < 0.5, "l2",
             f"learning_rate·l2 < 0.5 (learning_rate={self.learning_rate:g}, so l2 < "
             f"{0.5 / self.learning_rate:g})")
        need(is_int(self.seed) and 0 <= self.seed < 2**63, "seed", "an integer in [0, 2**63)")
        need(self.split in SPLITS, "split", f"one of {SPLITS}")
        need(self.deformation in DEFORMATIONS, "deformation", f"one of {DEFORMATIONS}")
        if self.deformation == "infimnist":
            need(bool(self.mnist_dir), "mnist_dir",
                 "infimnist's data directory with deformation='infimnist'")
        need(is_int(self.stream_seed) and 0 <= self.stream_seed < 2**64, "stream_seed",
             "an integer in [0, 2**64)")
        need(is_int(self.window) and self.window >= 1, "window", "an integer >= 1")
        need(is_int(self.log_every) and self.log_every >= 1, "log_every", "an integer >= 1")
        need(is_int(self.chunk_size) and self.chunk_size >= 1, "chunk_size", "an integer >= 1")
        need(is_int(self.queue_size) and self.queue_size >= 1, "queue_size", "an integer >= 1")
        need(is_int(self.snapshot_every) and self.snapshot_every >= 1, "snapshot_every",
             "an integer >= 1")
        if self.snapshot_every % self.chunk_size:
            raise ConfigError(
                f"snapshot_every: expected a multiple of chunk_size={self.chunk_size} (snapshots are "
                f"taken between chunks), found {self.snapshot_every}"
            )
        need(is_int(self.keep_snapshots) and self.keep_snapshots >= 0, "keep_snapshots",
             "an integer >= 0 (0 keeps all)")
        need(is_int(self.train_error_blocks) and self.train_error_blocks >= 0,
             "train_error_blocks", "an integer >= 0")
        if self.train_error_blocks > max(self.sup_updates, 1):
            raise ConfigError(
                f"train_error_blocks: expected at most sup_updates={self.sup_updates} blocks, "
                f"found {self.train_error_blocks}"
            )
        need(self.device in DEVICES, "device", f"one of {DEVICES}")
        from onlinedeep.kernels import KERNEL_NAMES  # lazily: torch

        need(self.kernel in KERNEL_NAMES, "kernel", f"one of {KERNEL_NAMES}")
        need(is_int(self.threads) and self.threads >= 0, "threads", "an integer >= 0 (0: auto)")
        need(self.mnist_dir is None or isinstance(self.mnist_dir, str), "mnist_dir",
             "a directory path or null")
        need(self.name is None or (isinstance(self.name, str) and re.fullmatch(r"[\w.+-]+", self.name)
                                    is not None and self.name not in (".", "..")),
             "name", "a folder name of letters, digits, '.', '_', '+', '-'")
        need(isinstance(self.out, str) and self.out != "", "out", "a directory path")
        need(is_int(self.n_inputs) and self.n_inputs >= 1, "n_inputs", "an integer >= 1")
        need(is_int(self.n_classes) and self.n_classes >= 2, "n_classes", "an integer >= 2")

    def _split_weights(self) -> list[float]:
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

    def layer_updates(self) -> list[int]:
        """Unsupervised updates given to each pre-trained layer (bottom first); they sum to
        ``unsup_updates``. See ``unsup_split``."""
        weights = self._split_weights()
        if not weights:
            return []
        total = sum(weights)
        counts = [int(math.floor(self.unsup_updates * w / total)) for w in weights[:-1]]
        counts.append(self.unsup_updates - sum(counts))
        if min(counts) < 1:
            raise ConfigError(
                f"unsup_split: {self.unsup_split!r} leaves a layer without updates "
                f"(unsup_updates={self.unsup_updates}, counts {counts})"
            )
        return counts

    def phases(self) -> list[Phase]:
        """The run's phases in stream order (empty phases omitted).

        Returns
        -------
        list of Phase
            One ``pretrain`` phase per pre-trained layer, then the ``supervised`` phase.
        """
        out: list[Phase] = []
        start = 0
        for layer, count in enumerate(self.layer_updates()):
            out.append(Phase("pretrain", layer, start, start + count))
            start += count
        if self.sup_updates > 0:
            out.append(Phase("supervised", -1, start, start + self.sup_updates))
        return out

    def phase_boundaries(self) -> list[int]:
        """Positions where a phase starts or ends, ascending, 0 and ``total_updates`` included."""
        bounds = {0, self.total_updates}
        for p in self.phases():
            bounds.update((p.start, p.stop))
        return sorted(bounds)

    def phase_at(self, position: int) -> Phase:
        """The phase that trains the example at stream ``position``.

        Parameters
        ----------
        position : int
            Stream position, ``0 <= position <= total_updates``; ``total_updates`` (the end) maps to
            the last phase.

        Raises
        ------
        ConfigError
            If ``position`` is outside the run.
        """
        phases = self.phases()
        if not isinstance(position, (int,)) or position < 0 or position > self.total_updates:
            raise ConfigError(
                f"position: expected an integer in [0, {self.total_updates}], found {position!r}"
            )
        for p in phases:
            if p.start <= position < p.stop:
                return p
        return phases[-1]

    def is_chunk_boundary(self, position: int) -> bool:
        """Whether chunks may start or end at ``position`` (a multiple of ``chunk_size``, a phase
        boundary, or the end)."""
        return position % self.chunk_size == 0 or position in self.phase_boundaries()

    def chunk_ranges(self, start: int, stop: int) -> list[tuple[int, int]]:
        """Aligned chunks covering ``[start, stop)``.

        Each chunk ends at the next multiple of ``chunk_size`` or the next phase boundary, whichever
        comes first, so the chunks depend only on the positions, never on where a run was resumed.

        Parameters
        ----------
        start, stop : int
            Chunk boundaries (see :meth:`is_chunk_boundary`), ``start <= stop <= total_updates``.

        Returns
        -------
        list of (int, int)
            Half-open position ranges.

        Raises
        ------
        ConfigError
            If ``start`` or ``stop`` is not a chunk boundary or outside the run.
        """
        for name, pos in (("start", start), ("stop", stop)):
            if not (0 <= pos <= self.total_updates) or not self.is_chunk_boundary(pos):
                raise ConfigError(
                    f"{name}: expected a chunk boundary in [0, {self.total_updates}] (a multiple of "
                    f"chunk_size={self.chunk_size} or a phase boundary {self.phase_boundaries()}), "
                    f"found {pos}"
                )
        if stop < start:
            raise ConfigError(f"stop: expected >= start={start}, found {stop}")
        bounds = [b for b in self.phase_boundaries() if start < b < stop]
        out: list[tuple[int, int]] = []
        pos = start
        bi = 0
        while pos < stop:
            nxt = min((pos // self.chunk_size + 1) * self.chunk_size, stop)
            while bi < len(bounds) and bounds[bi] <= pos:
                bi += 1
            if bi < len(bounds) and bounds[bi] < nxt:
                nxt = bounds[bi]
            out.append((pos, nxt))
            pos = nxt
        return out

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
