"""The networks of section 8: their keys, the presets, and the configuration of a key.

A key ``layers<L>-<none|dae|rbm>[-k<K>]`` names an architecture (:func:`network`); its
configuration (:func:`key_config`) is ``RunConfig.preset(preset, layers=L, pretrain=P,
pretrain_layers=K, train_error_blocks=20 for one hidden layer, name=key, out=OUT)`` (paper 5.3 and
8.1, footnote 14).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from onlinedeep.config import ConfigError, RunConfig

DEFAULT_OUT = "runs/section8"
TRAIN_ERROR_BLOCKS = 20
FIGURE_KEYS: dict[str, tuple[str, ...]] = {
    "figure11": ("layers1-none", "layers1-dae", "layers1-rbm", "layers3-none", "layers3-dae",
                 "layers3-rbm"),
    "figure12": ("layers1-rbm", "layers1-none"),
    "figure14": ("layers3-none", "layers3-dae-k1", "layers3-dae-k2", "layers3-dae"),
}
# Per preset: RunConfig preset, fields on top of it, and the span of the "last examples" error
# (paper footnote 14: hyper-parameters were chosen on the error of the last 1M examples).
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"run_preset": "paper", "fields": {}, "last_examples": 1_000_000},
    # Tiny networks, a few thousand updates each, the reference kernel (compiling the Numba
    # kernels in every fresh worker process would cost more than a smoke job trains).
    "smoke": {"run_preset": "smoke", "last_examples": 2_000,
              "fields": {"n_hidden": 32, "unsup_updates": 1_000, "sup_updates": 3_000,
                         "chunk_size": 250, "window": 1_000, "log_every": 250,
                         "snapshot_every": 1_000, "keep_snapshots": 2, "kernel": "reference"}},
}
_KEY_RE = re.compile(r"layers([1-5])-(none|dae|rbm)(?:-k(\d))?")


@dataclass(frozen=True)
class Network:
    """The architecture a key names: ``layers``, ``pretrain`` and ``pretrain_layers`` (None: all)."""

    key: str
    layers: int
    pretrain: str
    pretrain_layers: int | None = None


def network(key: str) -> Network:
    """Parse a key ``layers<L>-<none|dae|rbm>[-k<K>]``.

    Raises
    ------
    ConfigError
        If ``key`` has another form, or K is not in 1..L-1 (K = 0 is ``-none``, K = L the plain key).
    """
    m = _KEY_RE.fullmatch(key)
    if m is None:
        raise ConfigError(f"network key: expected 'layers<L>-<none|dae|rbm>[-k<K>]' such as "
                          f"'layers3-dae-k1', found {key!r}")
    layers, pretrain, k = int(m.group(1)), m.group(2), m.group(3)
    if k is not None and (pretrain == "none" or not 1 <= int(k) < layers):
        raise ConfigError(f"network key {key!r}: -k<K> needs pre-training and K in 1..{layers - 1}")
    return Network(key, layers, pretrain, None if k is None else int(k))


def key_config(key: str, *, preset: str = "paper", out: str | os.PathLike = DEFAULT_OUT,
               threads: int = 0, **overrides: Any) -> RunConfig:
    """The configuration of network ``key`` in the folder ``out``.

    Parameters
    ----------
    key : str
        See :func:`network`.
    preset : {"paper", "smoke"}
        ``paper``: ``RunConfig.preset("paper")`` (2.5M + 7.5M updates, 10M without pre-training).
        ``smoke``: 32 units, 1,000 + 3,000 updates (4,000 without pre-training), chunks of 250.
    out : path-like
        The section-8 folder; the run folder is ``out/key``.
    threads : int
        Threads of the job (execution only; 0 = auto).
    **overrides
        Other :class:`RunConfig` fields (None = not given).

    Raises
    ------
    ConfigError
        On an unknown preset or key, or an invalid value.
    """
    if preset not in PRESETS:
        raise ConfigError(f"preset: expected one of {sorted(PRESETS)}, found {preset!r}")
    net = network(key)
    spec = PRESETS[preset]
    fields = dict(spec["fields"])
    if net.pretrain == "none" and "unsup_updates" in fields:
        # the same number of examples, all supervised (paper 5.3)
        fields["sup_updates"] = fields.pop("unsup_updates") + fields.get("sup_updates", 0)
        fields["unsup_updates"] = 0
    fields.update(layers=net.layers, pretrain=net.pretrain, pretrain_layers=net.pretrain_layers,
                  train_error_blocks=TRAIN_ERROR_BLOCKS if net.layers == 1 else None,
                  name=key, out=str(out), threads=threads)
    fields.update({k: v for k, v in overrides.items() if v is not None})
    return RunConfig.preset(spec["run_preset"], **fields)
