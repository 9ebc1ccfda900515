"""The state of an :class:`~onlinedeep.learner.OnlineMLP` and the checks its public methods share.

:class:`LearnerState` holds what a learner knows beyond its hyperparameters: the configuration they
make (a :class:`~onlinedeep.config.RunConfig`), the network ``params_`` (created on the first call
with data; the softmax layer once the classes are known), the classes and their indices, the
kernel, the stream position and the metrics. :mod:`onlinedeep.learner.mlp` builds the scikit-learn
and River API on it; :mod:`onlinedeep.learner.updates` trains it.
"""
from __future__ import annotations

import numpy as np
import torch

from onlinedeep import kernels, model, phases
from onlinedeep import threads as thread_policy
from onlinedeep.config import ConfigError, RunConfig
from onlinedeep.inputs import check_inputs
from onlinedeep.learner import river
from onlinedeep.metrics import RunMetrics
from onlinedeep.training.state import resolve_device

__all__ = ["LearnerState"]


class LearnerState:
    """The state and shared checks of :class:`~onlinedeep.learner.OnlineMLP` (its docstring lists
    the attributes); not used alone."""

    # ------------------------------------------------------------------ configuration
    def _validate(self) -> None:
        for name in ("n_inputs", "n_classes"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"{name}: expected an integer or None, found {value!r}")
        self._cfg = self._make_config(n_inputs=self.n_inputs or 784,
                                      n_classes=self.n_classes or 10, layer_updates=[],
                                      sup_updates=1)

    def _make_config(self, *, n_inputs: int, n_classes: int, layer_updates: list[int],
                     sup_updates: int) -> RunConfig:
        k = len(layer_updates)
        unsup = int(sum(layer_updates))
        split = "equal"
        if k > 1:
            equal = [unsup // k] * (k - 1) + [unsup - (unsup // k) * (k - 1)]
            if list(layer_updates) != equal:
                split = ",".join(str(int(c)) for c in layer_updates)
        if unsup + sup_updates == 0:
            sup_updates = 1  # a configuration needs one update; nothing is done yet
        chunk = self.chunk_size
        return RunConfig(
            layers=self.layers, n_hidden=self.n_hidden, pretrain=self.pretrain, pretrain_layers=k,
            unsup_updates=unsup, sup_updates=sup_updates, unsup_split=split,
            learning_rate=self.learning_rate, unsup_learning_rate=self.unsup_learning_rate,
            corruption_level=self.corruption_level, noise=self.noise, cd_k=self.cd_k,
            sample_reconstruction=self.sample_reconstruction, l1=self.l1, l2=self.l2,
            seed=self.seed, window=self.window, log_every=self.log_every, chunk_size=chunk,
            snapshot_every=chunk if isinstance(chunk, int) and chunk >= 1 else 1000,
            device=self.device, kernel=self.kernel, threads=self.threads,
            n_inputs=n_inputs, n_classes=n_classes,
        )

    def _reset(self) -> None:
        self.params_: dict[str, torch.Tensor] | None = None
        self.classes_: np.ndarray | None = (np.arange(self.n_classes) if self.n_classes else None)
        self.n_features_in_: int | None = self.n_inputs
        self.feature_names_in_: list | None = None
        self._feature_index: dict | None = None
        self.position_ = 0
        self.layer_updates_: list[int] = []
        self.metrics_ = RunMetrics(self._cfg.window, self._cfg.log_every)
        self.elapsed_s_ = 0.0
        self._out_ready = False
        self._kernel = None
        self._kernel_threads = None  # adaptive thread count (threads=0), as in training
        self._device = resolve_device(self._cfg.device)

    # ------------------------------------------------------------------ state
    @property
    def n_hidden_(self) -> int:
        """Units per hidden layer in use (``n_hidden``, or its default)."""
        return self._cfg.n_hidden

    @property
    def online_error(self) -> float:
        """0/1 error over the last ``window`` supervised updates, each scored before its update."""
        return self.metrics_.online_error

    @property
    def online_nll(self) -> float:
        """Mean NLL (nats) over the same window."""
        return self.metrics_.online_nll

    @property
    def unsup_updates_(self) -> int:
        """Pre-training updates done (all layers)."""
        return int(sum(self.layer_updates_))

    @property
    def sup_updates_(self) -> int:
        """Supervised updates done."""
        return self.position_ - self.unsup_updates_

    def _get_kernel(self):
        if self._kernel is None:
            try:
                self._kernel = kernels.get(self._cfg.kernel, self._device, threads=self._cfg.threads)
            except ValueError as exc:
                raise ConfigError(f"kernel: {exc}") from None
            self._kernel_threads = thread_policy.kernel_controller(self._cfg.threads, self._kernel)
        return self._kernel

    def _ensure_params(self, n_inputs: int) -> None:
        if self.params_ is None:
            self.n_features_in_ = n_inputs
            self._cfg.n_inputs = n_inputs  # the width of the data: layer 0's fan-in for the draws
            n_out = len(self.classes_) if self.classes_ is not None else 2
            self.params_ = model.init_params(n_inputs, self.n_hidden_, self.layers, self.seed,
                                             self._device, n_outputs=n_out)
            self._out_ready = self.classes_ is not None
        self._ensure_output()

    def _ensure_output(self) -> None:
        """Create the softmax layer once the classes are known. ``init_params`` draws the hidden
        layers first, then ``W_out``, from one seeded generator: the hidden weights do not depend
        on the number of classes, and ``W_out`` is the one a network made with them would have."""
        if self._out_ready or self.classes_ is None or self.params_ is None:
            return
        full = model.init_params(self.n_features_in_, self.n_hidden_, self.layers, self.seed, "cpu",
                                 n_outputs=len(self.classes_))
        self.params_["W_out"] = full["W_out"].to(self._device)
        self.params_["b_out"] = full["b_out"].to(self._device)
        self._out_ready = True

    def _set_classes(self, classes) -> None:
        given = np.unique(np.asarray(list(classes) if not isinstance(classes, np.ndarray)
                                     else classes))
        if given.size < 2:
            raise ValueError(f"classes: expected at least 2 classes, found {given.tolist()!r}")
        if self.classes_ is not None:
            if not (given.shape == self.classes_.shape and np.all(given == self.classes_)):
                raise ValueError(
                    f"classes: {given.tolist()!r} differs from the classes already set "
                    f"{self.classes_.tolist()!r}"
                )
            return
        self.classes_ = given
        self._ensure_output()

    def _class_indices(self, y, n: int) -> np.ndarray:
        y = np.asarray(y)
        if y.shape != (n,):
            raise ValueError(f"y: expected {n} labels (one per row of X), found shape {y.shape}")
        classes = self.classes_
        if classes.dtype.kind in "iu" and np.array_equal(classes, np.arange(len(classes))) and (
                y.dtype.kind in "iu" or n == 0):
            idx = y.astype(np.int64)
            ok = (idx >= 0) & (idx < len(classes))
        else:
            idx = np.searchsorted(classes, y)
            idx = np.clip(idx, 0, len(classes) - 1)
            ok = classes[idx] == y
        if not np.all(ok):
            i = int(np.flatnonzero(~ok)[0])
            raise ValueError(f"y: label {river.scalar(y[i])!r} at row {i} is not one of the classes "
                             f"{self.classes_.tolist()!r}")
        return idx.astype(np.int64)

    def _check_x(self, X, name: str = "X") -> np.ndarray:
        return check_inputs(X, self.n_features_in_, name=name)

    def _require_fitted(self, what: str) -> None:
        if self.params_ is None and self.n_features_in_ is not None and self.classes_ is not None:
            self._ensure_params(self.n_features_in_)  # the initial network can predict too
        if self.params_ is None or not self._out_ready:
            raise ValueError(f"{what}: the network has no classifier yet; train it with "
                             f"partial_fit(X, y, classes=...) or learn_one first")

    def to_config(self) -> RunConfig:
        """The :class:`RunConfig` of what was done: ``pretrain_layers``, ``unsup_updates``,
        ``unsup_split`` (the count of each layer) and ``sup_updates`` describe the updates so far.

        Raises
        ------
        ValueError
            If the width or the classes are still unknown.
        """
        if self.n_features_in_ is None or self.classes_ is None:
            raise ValueError("to_config: n_inputs and the classes are unknown until the first "
                             "call with data (or pass n_inputs and n_classes)")
        cfg = self._make_config(n_inputs=self.n_features_in_, n_classes=len(self.classes_),
                                layer_updates=list(self.layer_updates_),
                                sup_updates=self.sup_updates_)
        if phases.layer_updates(cfg) != list(self.layer_updates_):  # pragma: no cover - a bug
            raise RuntimeError(f"unsup_split {cfg.unsup_split!r} does not reproduce the layer "
                               f"counts {self.layer_updates_}")
        return cfg
