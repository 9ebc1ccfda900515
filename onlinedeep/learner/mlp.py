"""``OnlineMLP``: the engine as a learner object, in scikit-learn's and River's conventions.

A deep sigmoid network trained one example per update, exactly as ``onlinedeep train`` trains it
(Erhan et al. 2010, sections 5.1 and 5.3): optional greedy layer-wise pre-training of the hidden
layers, bottom first, as denoising auto-encoders (5.1.2) or RBMs (5.1.1), then supervised
fine-tuning of the whole network by SGD on the cross-entropy, at batch size 1. It runs the same
kernels (:mod:`onlinedeep.kernels`) with the same random draws (:mod:`onlinedeep.noise`, pure
functions of the seed and the stream position), so rows fed in the order and grouping the CLI uses
give bit-identical weights (tests/test_learner.py compares with an ``onlinedeep train`` run).

::

    from onlinedeep import OnlineMLP
    net = OnlineMLP(layers=2, units=500, pretrain="dae", learning_rate=0.05)
    net.pretrain_partial_fit(X_unlabelled[:50_000], layer=0)    # greedy: layer 0 first
    net.pretrain_partial_fit(X_unlabelled[50_000:], layer=1)
    net.partial_fit(X, y, classes=range(10))                  # one update per row, in order
    net.score(X_test, y_test); net.save("net.h5")

Positions: every row given to :meth:`pretrain_partial_fit` or :meth:`partial_fit` is one update
and advances the learner's stream position ``position_`` by one (unsupervised rows included, as
in a run). The noise of the pre-training update at position ``p`` of layer ``k`` is a function of
``(seed, p, k)``; rows are handed to the kernel in chunks that end at the multiples of
``chunk_size`` and at the end of each call, as the trainer's chunks end at the multiples of
``chunk_size`` and at phase boundaries.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from onlinedeep import kernels, model, phases
from onlinedeep import threads as thread_policy
from onlinedeep.config import ConfigError, RunConfig
from onlinedeep.inputs import check_inputs
from onlinedeep.learner import river
from onlinedeep.metrics import RunMetrics
from onlinedeep.training.draws import layer_draws
from onlinedeep.training.loop import resolve_device

__all__ = ["OnlineMLP"]

_PARAMS = ("layers", "units", "pretrain", "learning_rate", "unsup_learning_rate",
           "corruption_level", "noise", "cd_k", "sample_reconstruction", "l1", "l2", "seed",
           "n_inputs", "n_classes", "window", "log_every", "chunk_size", "device", "kernel",
           "threads")


class OnlineMLP:
    """A deep sigmoid MLP learnt online at batch size 1, with optional greedy pre-training.

    scikit-learn's incremental API (:meth:`partial_fit`, :meth:`predict`, :meth:`predict_proba`,
    :meth:`score`, :meth:`get_params`) and River's (:meth:`learn_one`, :meth:`predict_one`,
    :meth:`predict_proba_one`), plus :meth:`pretrain_partial_fit` for the unsupervised greedy
    layer-wise phase, and :meth:`save` / :meth:`load` through the HDF5 snapshot format.

    Parameters
    ----------
    layers : int
        Hidden layers, 1-5, all ``units`` wide.
    units : int, optional
        Units per hidden layer (``RunConfig.n_hidden``; default the paper's: 2,000 for one layer,
        1,000 for deeper networks).
    pretrain : {"dae", "rbm", "none"}
        Pre-training of :meth:`pretrain_partial_fit`: denoising auto-encoders (paper 5.1.2) or RBMs
        trained by CD-k (5.1.1); ``"none"`` refuses pre-training.
    learning_rate, unsup_learning_rate : float
        Constant step sizes of the supervised and the unsupervised updates.
    corruption_level : float
        DAE: fraction of inputs corrupted per example, in [0, 1).
    noise : {"masking", "salt-pepper"}
        DAE corruption.
    cd_k : int
        RBM: Gibbs steps.
    sample_reconstruction : bool
        RBM: sample the visible reconstruction instead of using its probabilities.
    l1, l2 : float
        Penalties on the weight matrices in the supervised loss.
    seed : int
        Initial weights (uniform in ±1/√fan_in, zero biases; paper 5.3) and every noise draw.
    n_inputs : int, optional
        Inputs per example; default: the columns of the first ``X`` given.
    n_classes : int, optional
        Classes; labels are then ``0 .. n_classes-1``. Default: from ``classes`` on the first call
        of :meth:`partial_fit` (scikit-learn's convention).
    window : int
        Examples in the sliding window of the online error (``online_error``; paper: 100,000).
    log_every : int
        Examples between two records of the metrics series (``metrics_.series()``).
    chunk_size : int
        Most updates per kernel call (chunks end at multiples of it, as in a run).
    device : {"cpu", "cuda", "auto"}
    kernel : str
        ``onlinedeep.kernels.get`` name (``auto``: numba on CPU, cuda-graph on CUDA).
    threads : int
        CPU threads of the kernel (0: auto); the weights do not depend on it with numba.

    Attributes
    ----------
    params_ : dict[str, torch.Tensor] or None
        The network (``onlinedeep.model`` layout), created on the first call with data.
    classes_ : ndarray or None
        The labels, sorted; output ``j`` is ``classes_[j]``.
    n_features_in_ : int or None
        Inputs per example.
    position_ : int
        Updates done, unsupervised included (the stream position of a run).
    layer_updates_ : list of int
        Pre-training updates of each layer done so far, bottom first.
    metrics_ : onlinedeep.metrics.RunMetrics
        The prequential online error and NLL of the supervised updates (each recorded before its
        update, paper 8.1) and the reconstruction cost of pre-training.

    Raises
    ------
    ConfigError
        On an invalid hyperparameter (the message names it).

    Notes
    -----
    Greedy layer-wise pre-training goes bottom-up: layer 0, then 1, ... (each at least one update);
    once the first supervised update is done, pre-training is over. This is the protocol of the
    paper and what a snapshot can describe.
    """

    def __init__(self, layers: int = 1, units: int | None = None, pretrain: str = "dae", *,
                 learning_rate: float = 0.05, unsup_learning_rate: float = 0.01,
                 corruption_level: float = 0.25, noise: str = "masking", cd_k: int = 1,
                 sample_reconstruction: bool = False, l1: float = 0.0, l2: float = 0.0,
                 seed: int = 0, n_inputs: int | None = None, n_classes: int | None = None,
                 window: int = 100_000, log_every: int = 10_000, chunk_size: int = 1000,
                 device: str = "cpu", kernel: str = "auto", threads: int = 0):
        self.layers = layers
        self.units = units
        self.pretrain = pretrain
        self.learning_rate = learning_rate
        self.unsup_learning_rate = unsup_learning_rate
        self.corruption_level = corruption_level
        self.noise = noise
        self.cd_k = cd_k
        self.sample_reconstruction = sample_reconstruction
        self.l1 = l1
        self.l2 = l2
        self.seed = seed
        self.n_inputs = n_inputs
        self.n_classes = n_classes
        self.window = window
        self.log_every = log_every
        self.chunk_size = chunk_size
        self.device = device
        self.kernel = kernel
        self.threads = threads
        self._validate()
        self._reset()

    # ------------------------------------------------------------------ hyperparameters
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
            layers=self.layers, n_hidden=self.units, pretrain=self.pretrain, pretrain_layers=k,
            unsup_updates=unsup, sup_updates=sup_updates, unsup_split=split,
            learning_rate=self.learning_rate, unsup_learning_rate=self.unsup_learning_rate,
            corruption_level=self.corruption_level, noise=self.noise, cd_k=self.cd_k,
            sample_reconstruction=self.sample_reconstruction, l1=self.l1, l2=self.l2,
            seed=self.seed, window=self.window, log_every=self.log_every, chunk_size=chunk,
            snapshot_every=chunk if isinstance(chunk, int) and chunk >= 1 else 1000,
            device=self.device, kernel=self.kernel, threads=self.threads,
            n_inputs=n_inputs, n_classes=n_classes,
        )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments (scikit-learn's estimator API)."""
        return {name: getattr(self, name) for name in _PARAMS}

    def set_params(self, **params: Any) -> "OnlineMLP":
        """Change hyperparameters (scikit-learn's API); the network is discarded and rebuilt on
        the next call with data.

        Raises
        ------
        ConfigError
            On an unknown name or an invalid value.
        """
        unknown = sorted(set(params) - set(_PARAMS))
        if unknown:
            raise ConfigError(f"unknown parameter(s) {unknown}; known: {list(_PARAMS)}")
        for name, value in params.items():
            setattr(self, name, value)
        self._validate()
        self._reset()
        return self

    def __repr__(self) -> str:
        defaults = OnlineMLP.__init__.__kwdefaults__ or {}
        args = [f"layers={self.layers!r}", f"units={self.units!r}", f"pretrain={self.pretrain!r}"]
        args += [f"{k}={getattr(self, k)!r}" for k in _PARAMS[3:]
                 if getattr(self, k) != defaults.get(k)]
        return f"OnlineMLP({', '.join(args)})"

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
        self._device = resolve_device(self._cfg.device)

    # ------------------------------------------------------------------ state
    @property
    def n_hidden(self) -> int:
        """Units per hidden layer (``units``, or its default)."""
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
        return self._kernel

    def _ensure_params(self, n_inputs: int) -> None:
        if self.params_ is None:
            self.n_features_in_ = n_inputs
            self._cfg.n_inputs = n_inputs  # the width of the data: layer 0's fan-in for the draws
            n_out = len(self.classes_) if self.classes_ is not None else 2
            self.params_ = model.init_params(n_inputs, self.n_hidden, self.layers, self.seed,
                                             self._device, n_outputs=n_out)
            self._out_ready = self.classes_ is not None
        self._ensure_output()

    def _ensure_output(self) -> None:
        """Create the softmax layer once the classes are known. ``init_params`` draws the hidden
        layers first, then ``W_out``, from one seeded generator: the hidden weights do not depend
        on the number of classes, and ``W_out`` is the one a network made with them would have."""
        if self._out_ready or self.classes_ is None or self.params_ is None:
            return
        full = model.init_params(self.n_features_in_, self.n_hidden, self.layers, self.seed, "cpu",
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

    def _chunks(self, n: int) -> Iterable[tuple[int, int]]:
        """Offsets ``[a, b)`` of this call's rows, cut where the position crosses a multiple of
        ``chunk_size`` (the trainer's chunk boundaries)."""
        size = self._cfg.chunk_size
        a = 0
        while a < n:
            pos = self.position_ + a
            b = min(n, a + (pos // size + 1) * size - pos)
            yield a, b
            a = b

    def _check_loss(self, values: np.ndarray, start: int, what: str, phase: str) -> None:
        bad = ~np.isfinite(values)
        if not bad.any():
            return
        from onlinedeep.training.loop import NonFiniteLossError

        i = int(np.argmax(bad))
        rate = ("learning_rate" if phase == "supervised" else "unsup_learning_rate")
        raise NonFiniteLossError(
            f"the {what} became non-finite ({values[i]}) at update {start + i} ({phase}, "
            f"{rate} {getattr(self, rate)}); the weights hold that update: reload a saved copy and "
            f"try a smaller {rate}", start + i)

    # ------------------------------------------------------------------ training
    def pretrain_partial_fit(self, X, layer: int | None = None) -> "OnlineMLP":
        """Greedy layer-wise pre-training of one hidden layer, one update per row, in order.

        Layer ``layer`` is trained as a denoising auto-encoder (paper 5.1.2) or an RBM by CD-k
        (5.1.1) on the deterministic sigmoid output of the fixed layers below it (5.1).

        Parameters
        ----------
        X : (n, n_inputs) float array_like
            Unlabelled examples, floats in [0, 1].
        layer : int, optional
            The layer to train: the one being pre-trained (default; layer 0 at the start) or the
            next one up, which ends the pre-training of the current one.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            If ``pretrain="none"``, supervised updates were already done, the layer is not the
            current or the next one, or ``X`` is not floats in [0, 1] of the right width.
        onlinedeep.training.loop.NonFiniteLossError
            If the reconstruction cost becomes NaN or infinite (the message names the update).
        """
        if self._cfg.pretrain == "none":
            raise ValueError("pretrain_partial_fit: this network has pretrain='none'")
        if self.sup_updates_ > 0:
            raise ValueError(
                f"pretrain_partial_fit: fine-tuning has started ({self.sup_updates_} supervised "
                f"updates); greedy pre-training comes before it"
            )
        current = len(self.layer_updates_) - 1
        if layer is None:
            layer = max(current, 0)
        if isinstance(layer, bool) or int(layer) != layer or not 0 <= layer < self.layers:
            raise ValueError(f"layer: expected an integer in [0, {self.layers}), found {layer!r}")
        layer = int(layer)
        if layer not in (current, current + 1):
            raise ValueError(
                f"layer: greedy pre-training goes bottom-up; expected layer {max(current, 0)}"
                + (f" or {current + 1}" if 0 <= current < self.layers - 1 else "")
                + f", found {layer}"
            )
        X = self._check_x(X)
        self._ensure_params(X.shape[1])
        if X.shape[0] == 0:
            return self
        if layer == current + 1:
            if current >= 0:
                self.metrics_.record(self.position_, current)  # the end of the previous phase
            self.layer_updates_.append(0)
        cfg = self._cfg
        kernel = self._get_kernel()
        dev = self._device
        t0 = time.perf_counter()
        with thread_policy.torch_threads(thread_policy.decide("loop-torch") if kernel.owns_threads else None):
            for a, b in self._chunks(X.shape[0]):
                start = self.position_
                h = model.hidden_forward(self.params_, torch.from_numpy(X[a:b]).to(dev), layer)
                draws = {k: None if v is None else torch.from_numpy(v).to(dev)
                         for k, v in layer_draws(cfg, layer, start, start + b - a).items()}
                if cfg.pretrain == "dae":
                    cost = kernel.dae(self.params_, layer, h, draws["keep"], draws["values"],
                                      learning_rate=cfg.unsup_learning_rate)
                else:
                    cost = kernel.rbm(self.params_, layer, h, draws["u_hidden"], draws["u_visible"],
                                      learning_rate=cfg.unsup_learning_rate, cd_k=cfg.cd_k)
                cost = cost.cpu().numpy()
                self.position_ += b - a
                self.layer_updates_[layer] += b - a
                self._check_loss(cost, start, "reconstruction cost", f"pre-training layer {layer}")
                self.metrics_.add_pretrain(start, layer, cost)
        self.elapsed_s_ += time.perf_counter() - t0
        return self

    def partial_fit(self, X, y, classes=None) -> "OnlineMLP":
        """Supervised SGD, one update per row, in order (batch size 1).

        Before each update the row is classified and its 0/1 error and NLL enter the online-error
        window (``metrics_``; paper 8.1, prequential).

        Parameters
        ----------
        X : (n, n_inputs) float array_like
            Floats in [0, 1].
        y : (n,) array_like
            Labels, each one of ``classes_``.
        classes : array_like, optional
            Every label there will be; needed on the first call unless ``n_classes`` was given
            (scikit-learn's convention); later calls may repeat it.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            If the classes are unknown, a label is not one of them, or ``X`` is not floats in
            [0, 1] of the right width.
        onlinedeep.training.loop.NonFiniteLossError
            If the NLL becomes NaN or infinite.
        """
        self._supervised(X, y, classes)
        return self

    def _supervised(self, X, y, classes=None, *, name: str = "X") -> tuple[np.ndarray, np.ndarray]:
        """:meth:`partial_fit` returning each row's pre-update ``errors (n,) uint8`` and ``nll (n,)
        float32``."""
        if classes is not None:
            self._set_classes(classes)
        if self.classes_ is None:
            raise ValueError("classes: unknown on the first call; pass partial_fit(X, y, "
                             "classes=all_labels) or OnlineMLP(n_classes=...)")
        X = self._check_x(X, name)
        idx = self._class_indices(y, X.shape[0])
        self._ensure_params(X.shape[1])
        if X.shape[0] == 0:
            return np.zeros(0, np.uint8), np.zeros(0, np.float32)
        if self.sup_updates_ == 0 and self.layer_updates_:
            self.metrics_.record(self.position_, len(self.layer_updates_) - 1)  # pre-training ends
        cfg = self._cfg
        kernel = self._get_kernel()
        dev = self._device
        errors_all, nll_all = [], []
        t0 = time.perf_counter()
        with thread_policy.torch_threads(thread_policy.decide("loop-torch") if kernel.owns_threads else None):
            for a, b in self._chunks(X.shape[0]):
                start = self.position_
                x = torch.from_numpy(X[a:b]).to(dev)
                t = torch.from_numpy(idx[a:b]).to(dev)
                errors, nll = kernel.supervised(self.params_, x, t, learning_rate=cfg.learning_rate,
                                                l1=cfg.l1, l2=cfg.l2)
                errors, nll = errors.cpu().numpy(), nll.cpu().numpy()
                self.position_ += b - a
                self._check_loss(nll, start, "NLL", "supervised")
                self.metrics_.add_supervised(start, errors, nll)
                errors_all.append(errors)
                nll_all.append(nll)
        self.elapsed_s_ += time.perf_counter() - t0
        return np.concatenate(errors_all), np.concatenate(nll_all)

    # ------------------------------------------------------------------ inference
    def _require_fitted(self, what: str) -> None:
        if self.params_ is None and self.n_features_in_ is not None and self.classes_ is not None:
            self._ensure_params(self.n_features_in_)  # the initial network can predict too
        if self.params_ is None or not self._out_ready:
            raise ValueError(f"{what}: the network has no classifier yet; train it with "
                             f"partial_fit(X, y, classes=...) or learn_one first")

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        X : (n, n_inputs) float array_like
            Floats in [0, 1].

        Returns
        -------
        (n, n_classes) float32 ndarray
            Column j is the probability of ``classes_[j]``.

        Raises
        ------
        ValueError
            Before any supervised training, or on bad ``X``.
        """
        self._require_fitted("predict_proba")
        X = self._check_x(X)
        return model.predict_proba(self.params_, torch.from_numpy(X)).cpu().numpy()

    def predict(self, X) -> np.ndarray:
        """Predicted labels ``(n,)``: ``classes_[argmax]`` of the outputs (first maximum on ties)."""
        self._require_fitted("predict")
        X = self._check_x(X)
        return self.classes_[model.predict(self.params_, torch.from_numpy(X)).cpu().numpy()]

    def score(self, X, y) -> float:
        """Mean accuracy on ``(X, y)`` (scikit-learn's classifier score; 1 - error)."""
        y = np.asarray(y)
        return float(np.mean(self.predict(X) == y))

    # ------------------------------------------------------------------ River's API
    def learn_one(self, x, y) -> None:
        """One supervised update (River's API): ``partial_fit`` on one row.

        Parameters
        ----------
        x : dict or (n_inputs,) array_like
            Features in [0, 1]; a dict's keys are fixed by the first example (missing keys count
            as 0), or integer column indices when ``n_inputs`` was given.
        y : label
            One of ``classes_`` (set ``n_classes`` or call ``partial_fit(..., classes=...)``
            first).
        """
        self._supervised(river.row(self, x), [y], name="x")

    def predict_proba_one(self, x) -> dict:
        """Class probabilities of one example (River's API): ``{label: probability}``."""
        p = self.predict_proba(river.row(self, x))[0]
        return {river.scalar(c): float(v) for c, v in zip(self.classes_, p)}

    def predict_one(self, x):
        """Predicted label of one example (River's API)."""
        return river.scalar(self.predict(river.row(self, x))[0])

    # ------------------------------------------------------------------ export and files
    def to_module(self) -> torch.nn.Sequential:
        """The network as a plain ``nn.Sequential`` (:func:`onlinedeep.export.to_module`)."""
        from onlinedeep.export import to_module

        self._require_fitted("to_module")
        return to_module(self.params_)

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
            If the classes are unknown (nothing is written).
        SnapshotError
            If a parameter holds NaN/Inf (nothing is written).
        """
        from onlinedeep.learner import files

        return files.save(self, path)

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
        from onlinedeep.learner import files

        return files.load(cls, path, device=device, kernel=kernel, threads=threads)
