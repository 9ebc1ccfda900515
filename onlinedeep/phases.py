"""Where each update of a run belongs: its phase, and the chunks the kernels are fed.

Stream positions count examples seen, unsupervised ones included. Positions ``[0, unsup_updates)``
pre-train the bottom ``pretrain_layers`` layers one after the other (``unsup_split`` shares the
updates out), positions ``[unsup_updates, total_updates)`` fine-tune the whole network with labels
(Erhan et al. 2010, section 5.3).

Chunks end at the next multiple of ``chunk_size`` or the next phase boundary, whichever comes first,
so they depend only on the positions: a run resumed or branched at a chunk boundary feeds the
kernels exactly the chunks of an uninterrupted run, and ends with bit-identical weights.

Every function here is a pure function of a :class:`onlinedeep.config.RunConfig`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from onlinedeep.config import ConfigError, RunConfig

__all__ = ["Phase", "layer_updates", "phases", "phase_at", "phase_boundaries",
           "is_chunk_boundary", "chunk_ranges"]


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
        Stream positions, half-open ``[start, stop)``.
    """

    kind: str
    layer: int
    start: int
    stop: int

    @property
    def label(self) -> str:
        """Short human label: ``"pretrain L1"`` or ``"supervised"``."""
        return f"pretrain L{self.layer}" if self.kind == "pretrain" else "supervised"


def layer_updates(config: RunConfig) -> list[int]:
    """Unsupervised updates of each pre-trained layer, bottom first; they sum to ``unsup_updates``.

    ``"equal"`` gives every layer the same count, the top layer the remainder; weights give counts
    proportional to them, the top layer the rounding remainder.

    Raises
    ------
    ConfigError
        If the split leaves a layer without updates.
    """
    weights = config.split_weights()
    if not weights:
        return []
    total = sum(weights)
    counts = [int(math.floor(config.unsup_updates * w / total)) for w in weights[:-1]]
    counts.append(config.unsup_updates - sum(counts))
    if min(counts) < 1:
        raise ConfigError(
            f"unsup_split: {config.unsup_split!r} leaves a layer without updates "
            f"(unsup_updates={config.unsup_updates}, counts {counts})"
        )
    return counts


def phases(config: RunConfig) -> list[Phase]:
    """The run's phases in stream order, empty ones omitted: one ``pretrain`` phase per pre-trained
    layer, then the ``supervised`` phase."""
    out: list[Phase] = []
    start = 0
    for layer, count in enumerate(layer_updates(config)):
        out.append(Phase("pretrain", layer, start, start + count))
        start += count
    if config.sup_updates > 0:
        out.append(Phase("supervised", -1, start, start + config.sup_updates))
    return out


def phase_boundaries(config: RunConfig) -> list[int]:
    """Positions where a phase starts or ends, ascending, 0 and ``total_updates`` included."""
    bounds = {0, config.total_updates}
    for p in phases(config):
        bounds.update((p.start, p.stop))
    return sorted(bounds)


def phase_at(config: RunConfig, position: int) -> Phase:
    """The phase that trains the example at stream ``position``.

    Parameters
    ----------
    position : int
        ``0 <= position <= total_updates``; ``total_updates`` (the end) maps to the last phase.

    Raises
    ------
    ConfigError
        If ``position`` is outside the run.
    """
    if not isinstance(position, int) or not 0 <= position <= config.total_updates:
        raise ConfigError(
            f"position: expected an integer in [0, {config.total_updates}], found {position!r}"
        )
    found = phases(config)
    for p in found:
        if p.start <= position < p.stop:
            return p
    return found[-1]


def is_chunk_boundary(config: RunConfig, position: int) -> bool:
    """Whether chunks may start or end at ``position`` (a multiple of ``chunk_size``, a phase
    boundary, or the end)."""
    return position % config.chunk_size == 0 or position in phase_boundaries(config)


def chunk_ranges(config: RunConfig, start: int, stop: int) -> list[tuple[int, int]]:
    """Aligned chunks covering ``[start, stop)``, as half-open position ranges.

    Parameters
    ----------
    start, stop : int
        Chunk boundaries (:func:`is_chunk_boundary`), ``start <= stop <= total_updates``.

    Raises
    ------
    ConfigError
        If ``start`` or ``stop`` is not a chunk boundary or outside the run.
    """
    bounds_all = phase_boundaries(config)
    for name, pos in (("start", start), ("stop", stop)):
        if not (0 <= pos <= config.total_updates) or not is_chunk_boundary(config, pos):
            raise ConfigError(
                f"{name}: expected a chunk boundary in [0, {config.total_updates}] (a multiple of "
                f"chunk_size={config.chunk_size} or a phase boundary {bounds_all}), found {pos}"
            )
    if stop < start:
        raise ConfigError(f"stop: expected >= start={start}, found {stop}")
    bounds = [b for b in bounds_all if start < b < stop]
    out: list[tuple[int, int]] = []
    pos = start
    bi = 0
    while pos < stop:
        nxt = min((pos // config.chunk_size + 1) * config.chunk_size, stop)
        while bi < len(bounds) and bounds[bi] <= pos:
            bi += 1
        if bi < len(bounds) and bounds[bi] < nxt:
            nxt = bounds[bi]
        out.append((pos, nxt))
        pos = nxt
    return out
