"""The values each field of a :class:`~onlinedeep.config.RunConfig` may take, and the check of
every field (:func:`check_fields`, run when a configuration is made or read back).

Imports nothing of onlinedeep (nor NumPy, torch, numba): reading a configuration stays cheap.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import struct
from typing import Any

__all__ = ["ConfigError", "JsonFields", "check_fields", "PRETRAIN_MODES", "DEFORMATIONS", "NOISE_MODES",
           "SPLITS", "DEVICES", "KERNELS"]

PRETRAIN_MODES = ("dae", "rbm", "none")
# infinite_mnist.stream.MODES (not imported: reading a configuration should not load numba)
DEFORMATIONS = ("first-order", "elastic", "infimnist")
NOISE_MODES = ("masking", "salt-pepper")
SPLITS = ("protocol", "all")
DEVICES = ("auto", "cpu", "cuda")
# onlinedeep.kernels.KERNEL_NAMES (not imported: reading a configuration should not load torch)
KERNELS = ("auto", "reference", "numba", "cuda-graph")


class ConfigError(ValueError):
    """An invalid configuration value (the message names the field, what was expected and found)."""


def f32(value: float) -> float:
    """``value`` rounded to float32 (inf when it overflows), without importing NumPy."""
    try:
        return struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)


def check_fields(cfg) -> None:
    """Check every field of a :class:`~onlinedeep.config.RunConfig` (see
    :meth:`RunConfig.validate <onlinedeep.config.RunConfig.validate>`).

    Raises
    ------
    ConfigError
        Naming the first invalid field, what was expected and what was found.
    """

    def need(cond: bool, name: str, expected: str) -> None:
        if not cond:
            raise ConfigError(f"{name}: expected {expected}, found {getattr(cfg, name)!r}")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def is_num(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    def isf32(v: Any) -> bool:
        return is_num(v) and math.isfinite(f32(v))

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
    need(isf32(cfg.learning_rate) and cfg.learning_rate > 0 and f32(cfg.learning_rate) > 0,
         "learning_rate", "a number > 0, finite and non-zero in float32")
    need(isf32(cfg.unsup_learning_rate) and cfg.unsup_learning_rate > 0
         and f32(cfg.unsup_learning_rate) > 0,
         "unsup_learning_rate", "a number > 0, finite and non-zero in float32")
    need(is_num(cfg.corruption_level) and 0 <= cfg.corruption_level < 1,
         "corruption_level", "a number in [0, 1)")
    need(cfg.noise in NOISE_MODES, "noise", f"one of {NOISE_MODES}")
    need(is_int(cfg.cd_k) and cfg.cd_k >= 1, "cd_k", "an integer >= 1")
    need(isinstance(cfg.sample_reconstruction, bool), "sample_reconstruction", "true or false")
    need(isf32(cfg.l1) and cfg.l1 >= 0, "l1", "a number >= 0, finite in float32")
    need(isf32(cfg.l2) and cfg.l2 >= 0, "l2", "a number >= 0, finite in float32")
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
    need(cfg.mnist_dir is None or (isinstance(cfg.mnist_dir, str) and cfg.mnist_dir != ""),
         "mnist_dir", "a directory path or null")
    # not '.', '..', a hidden folder, nor a name read as an option ('-x')
    need(cfg.name is None or (isinstance(cfg.name, str)
                              and re.fullmatch(r"[^\W][\w.+-]*", cfg.name) is not None),
         "name", "a folder name of letters, digits, '.', '_', '+', '-' starting with a letter, "
         "digit or '_'")
    need(isinstance(cfg.out, str) and cfg.out != "", "out", "a directory path")


class JsonFields:
    """``to_dict``/``to_json``/``from_dict`` of a configuration dataclass (a mixin: RunConfig,
    FiniteConfig); ``from_dict`` refuses unknown fields and prefixes errors with ``where``."""

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-able dict (after defaults are resolved)."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """The configuration as a JSON object with sorted keys (stored as an HDF5 attribute)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "configuration"):
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
