"""The random draws of pre-training, fetched with each chunk by the producer thread.

Every draw is a pure function of ``(seed, stream position, layer)`` (:mod:`onlinedeep.noise`), so the
producer computes a chunk's draws ahead, while the kernel trains on the previous chunk, and a
resumed run draws exactly what an uninterrupted one would.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from onlinedeep import noise
from onlinedeep import threads as thread_policy
from onlinedeep.config import RunConfig
from onlinedeep.phases import phase_at
from onlinedeep.training.producer import Chunk, stream_fetcher

__all__ = ["DrawnChunk", "chunk_draws", "fetcher", "layer_draws"]


@dataclass
class DrawnChunk(Chunk):
    """A chunk with its random draws (:func:`chunk_draws`), or None for a supervised chunk."""

    draws: dict | None = None


def chunk_draws(config: RunConfig, start: int, stop: int) -> dict[str, np.ndarray | None] | None:
    """The random draws of the updates at positions ``[start, stop)`` (one phase).

    Returns
    -------
    dict or None
        None for a supervised chunk. DAE (Vincent et al. 2008): ``keep (n, fan_in) bool`` and
        ``values (n, fan_in) float32`` (salt-and-pepper) or None (masking). RBM (CD-k):
        ``u_hidden (n, cd_k, n_hidden) float32`` and ``u_visible (n, cd_k, fan_in) float32`` with
        ``sample_reconstruction``, else None.
    """
    phase = phase_at(config, start)
    if phase.kind != "pretrain":
        return None
    return layer_draws(config, phase.layer, start, stop)


def layer_draws(config: RunConfig, layer: int, start: int, stop: int) -> dict[str, np.ndarray | None]:
    """The random draws of pre-training ``layer`` at stream positions ``[start, stop)``.

    Pure functions of ``(config.seed, position, purpose, layer)`` (:mod:`onlinedeep.noise`), so any
    caller that feeds the same positions (the loop, :class:`onlinedeep.learner.OnlineMLP`) draws
    the same noise. Returns the dict described in :func:`chunk_draws`.
    """
    k, n = layer, stop - start
    fan_in = config.n_inputs if k == 0 else config.n_hidden
    pos = np.arange(start, stop, dtype=np.int64)
    if config.pretrain == "dae":
        n_corrupt = noise.corruption_count(config.corruption_level, fan_in)
        if config.noise == "masking":
            return {"keep": noise.masking_keep(config.seed, pos, k, fan_in, n_corrupt),
                    "values": None}
        keep, values = noise.salt_pepper(config.seed, pos, k, fan_in, n_corrupt)
        return {"keep": keep, "values": values}
    nh, cd_k = config.n_hidden, config.cd_k
    u_h = noise.uniforms(config.seed, pos, noise.PURPOSE_RBM_HIDDEN, k, cd_k * nh)
    u_v = None
    if config.sample_reconstruction:
        u_v = noise.uniforms(config.seed, pos, noise.PURPOSE_RBM_VISIBLE, k,
                             cd_k * fan_in).reshape(n, cd_k, fan_in)
    return {"u_hidden": u_h.reshape(n, cd_k, nh), "u_visible": u_v}


def fetcher(stream, schedule, config: RunConfig):
    """The producer's fetch function ``(start, stop) -> DrawnChunk``: the examples of the positions
    (:func:`onlinedeep.training.producer.stream_fetcher`) and their draws."""
    fetch = stream_fetcher(stream, schedule, n_inputs=config.n_inputs)

    def fetch_with_draws(start: int, stop: int) -> DrawnChunk:
        # Runs in the producer thread, whose Numba thread count is its own.
        numba.set_num_threads(thread_policy.decide("generator"))
        chunk = fetch(start, stop)
        return DrawnChunk(chunk.start, chunk.stop, chunk.indices, chunk.x, chunk.labels,
                          draws=chunk_draws(config, start, stop))

    return fetch_with_draws
