"""Saving and loading :class:`~onlinedeep.learner.OnlineMLP` through the HDF5 snapshot format
(:mod:`onlinedeep.snapshot`), so that ``onlinedeep evaluate`` and :func:`onlinedeep.load_module`
read a learner's file like a run's, and a learner continues a run's snapshot."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from onlinedeep import model, phases
from onlinedeep import snapshot as snapshots
from onlinedeep.learner.river import scalar
from onlinedeep.metrics import RunMetrics

if TYPE_CHECKING:
    from onlinedeep.learner.mlp import OnlineMLP

__all__ = ["FileMethods", "LEARNER_SCHEDULE", "save", "load"]

# What a learner snapshot stores in place of an InfiniteMNIST schedule: its rows came from the
# caller. Not a Schedule, so `onlinedeep train` refuses to continue it as a run (its data is unknown).
LEARNER_SCHEDULE = {"source": "OnlineMLP", "note": "rows given by the caller, not a stream schedule"}


def save(net, path) -> Path:
    """:meth:`OnlineMLP.save <onlinedeep.learner.OnlineMLP.save>` (its docstring has the details)."""
    from onlinedeep.training.data import software_versions

    if os.fspath(path) == "":  # Path("") is the current folder: never the file meant
        raise ValueError("path: expected a file path, found an empty one")
    cfg = net.to_config()
    net._ensure_params(net.n_features_in_)
    if net.position_ > 0:  # as a run records at its end
        net.metrics_.record(net.position_, phases.phase_at(cfg, net.position_ - 1).layer)
    state = snapshots.expected_state(cfg, net.position_)
    classes = net.classes_.tolist()
    learner = {"classes": classes if classes != list(range(len(classes))) else None,
               "feature_names": (None if net.feature_names_in_ is None
                                 else [scalar(k) for k in net.feature_names_in_])}
    return snapshots.save(
        path, config=cfg, schedule=LEARNER_SCHEDULE, position=net.position_,
        phase=state["phase"], layer=state["layer"], params=net.params_,
        metrics=net.metrics_.state(),
        counters={"unsup_done": state["unsup_done"], "sup_done": state["sup_done"],
                  "elapsed_s": float(net.elapsed_s_)},
        provenance={"data": {"source": "OnlineMLP"}, "software": software_versions(),
                    "learner": learner},
    )


def load(cls, path, *, device: str | None = None, kernel: str | None = None,
         threads: int | None = None):
    """:meth:`OnlineMLP.load <onlinedeep.learner.OnlineMLP.load>` (its docstring has the details)."""
    from onlinedeep.evaluate import resolve_snapshot

    snap_path, _ = resolve_snapshot(path)
    snap = snapshots.load(snap_path)
    cfg = snap.config
    info = (snap.provenance or {}).get("learner") or {}
    net = cls(layers=cfg.layers, n_hidden=cfg.n_hidden, pretrain=cfg.pretrain,
              learning_rate=cfg.learning_rate, unsup_learning_rate=cfg.unsup_learning_rate,
              corruption_level=cfg.corruption_level, noise=cfg.noise, cd_k=cfg.cd_k,
              sample_reconstruction=cfg.sample_reconstruction, l1=cfg.l1, l2=cfg.l2,
              seed=cfg.seed, n_inputs=cfg.n_inputs, n_classes=cfg.n_classes,
              window=cfg.window, log_every=cfg.log_every, chunk_size=cfg.chunk_size,
              device=device or cfg.device, kernel=kernel or cfg.kernel,
              threads=cfg.threads if threads is None else threads)
    if info.get("classes") is not None:
        net.classes_ = np.asarray(info["classes"])
    if info.get("feature_names") is not None:
        net.feature_names_in_ = list(info["feature_names"])
        net._feature_index = None
    order = list(snapshots.param_shapes(cfg))
    net.params_ = {k: model.as_weights(snap.params[k], net._device) for k in order}
    net._out_ready = True
    net.position_ = snap.position
    net.metrics_ = RunMetrics.from_state(snap.metrics, log_every=cfg.log_every)
    net.elapsed_s_ = float(snap.counters.get("elapsed_s", 0.0))
    done, start = [], 0
    for count in phases.layer_updates(cfg):
        d = min(max(snap.position - start, 0), count)
        if d > 0:
            done.append(d)
        start += count
    net.layer_updates_ = done
    return net


class FileMethods:
    """The files of :class:`~onlinedeep.learner.OnlineMLP`: ``save``, ``load`` (the snapshot
    format) and ``to_module`` (a plain PyTorch module); not used alone."""

    def to_module(self) -> torch.nn.Sequential:
        """The network as a plain ``nn.Sequential`` (:func:`onlinedeep.export.to_module`)."""
        from onlinedeep.export import to_module

        self._require_fitted("to_module")
        return to_module(self.params_)

    def save(self, path) -> Path:
        """Write the learner to an HDF5 snapshot (atomically; ``onlinedeep.snapshot`` format).

        The snapshot holds the network, the metrics windows and series, and the configuration of
        what was done (:meth:`to_config`); ``onlinedeep evaluate`` and
        :func:`onlinedeep.load_module` read it like a run's.

        Returns
        -------
        Path

        Raises
        ------
        ValueError
            If the classes are unknown, or ``path`` is empty (nothing is written).
        SnapshotError
            If a parameter holds NaN/Inf (nothing is written).
        """
        return save(self, path)

    @classmethod
    def load(cls, path, *, device: str | None = None, kernel: str | None = None,
             threads: int | None = None) -> "OnlineMLP":
        """A learner from a snapshot: one written by :meth:`save` or by ``onlinedeep train``.

        Training continues from the snapshot's position, with its hyperparameters, its random
        draws and its metrics windows.

        Parameters
        ----------
        path : path-like
            Snapshot file, or a run folder (its latest snapshot).
        device, kernel, threads : optional
            Override the stored values (they do not change what an update computes).

        Raises
        ------
        SnapshotError
            If the file is missing, damaged or not a snapshot.
        """
        return load(cls, path, device=device, kernel=kernel, threads=threads)
