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
    net = OnlineMLP(layers=2, n_hidden=500, pretrain="dae", learning_rate=0.05)
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

import warnings
from typing import Any

import numpy as np
import torch

from onlinedeep import model
from onlinedeep.config import ConfigError
from onlinedeep.learner import updates
from onlinedeep.learner.files import FileMethods
from onlinedeep.learner.river import RiverMethods
from onlinedeep.learner.state import LearnerState

__all__ = ["OnlineMLP"]

_PARAMS = ("layers", "n_hidden", "pretrain", "learning_rate", "unsup_learning_rate",
           "corruption_level", "noise", "cd_k", "sample_reconstruction", "l1", "l2", "seed",
           "n_inputs", "n_classes", "window", "log_every", "chunk_size", "device", "kernel",
           "threads")


class OnlineMLP(LearnerState, RiverMethods, FileMethods):
    """A deep sigmoid MLP learnt online at batch size 1, with optional greedy pre-training.

    scikit-learn's incremental API (:meth:`partial_fit`, :meth:`predict`, :meth:`predict_proba`,
    :meth:`score`, :meth:`get_params`) and River's (:meth:`learn_one`, :meth:`predict_one`,
    :meth:`predict_proba_one`), plus :meth:`pretrain_partial_fit` for the unsupervised greedy
    layer-wise phase, and :meth:`save` / :meth:`load` through the HDF5 snapshot format.

    Parameters
    ----------
    layers : int
        Hidden layers, 1-5, all ``n_hidden`` wide.
    n_hidden : int, optional
        Units per hidden layer (default the paper's: 2,000 for one layer, 1,000 for deeper
        networks; the value in use is ``n_hidden_``).
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
    n_hidden_ : int
        Units per hidden layer in use (``n_hidden``, or its default).
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

    def __init__(self, layers: int = 1, n_hidden: int | None = None, pretrain: str = "dae", *,
                 learning_rate: float = 0.05, unsup_learning_rate: float = 0.01,
                 corruption_level: float = 0.25, noise: str = "masking", cd_k: int = 1,
                 sample_reconstruction: bool = False, l1: float = 0.0, l2: float = 0.0,
                 seed: int = 0, n_inputs: int | None = None, n_classes: int | None = None,
                 window: int = 100_000, log_every: int = 10_000, chunk_size: int = 1000,
                 device: str = "cpu", kernel: str = "auto", threads: int = 0):
        self.layers = layers
        self.n_hidden = n_hidden
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
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments (scikit-learn's estimator API)."""
        return {name: getattr(self, name) for name in _PARAMS}

    def set_params(self, **params: Any) -> "OnlineMLP":
        """Change hyperparameters (scikit-learn's API); the network is discarded and rebuilt on
        the next call with data (unlike scikit-learn's estimators, which keep what they learnt:
        here every update depends on the configuration it was made under).

        Raises
        ------
        ConfigError
            On an unknown name or an invalid value.

        Warns
        -----
        UserWarning
            When it discards a network that has been trained (``position_ > 0``).
        """
        unknown = sorted(set(params) - set(_PARAMS))
        if unknown:
            raise ConfigError(f"unknown parameter(s) {unknown}; known: {list(_PARAMS)}")
        if self.position_ > 0:
            warnings.warn(f"set_params discards the trained network ({self.position_:,} updates "
                          f"done) and starts an untrained one; save() it first to keep it",
                          UserWarning, stacklevel=2)
        for name, value in params.items():
            setattr(self, name, value)
        self._validate()
        self._reset()
        return self

    def __repr__(self) -> str:
        defaults = OnlineMLP.__init__.__kwdefaults__ or {}
        args = [f"layers={self.layers!r}", f"n_hidden={self.n_hidden!r}",
                f"pretrain={self.pretrain!r}"]
        args += [f"{k}={getattr(self, k)!r}" for k in _PARAMS[3:]
                 if getattr(self, k) != defaults.get(k)]
        return f"OnlineMLP({', '.join(args)})"

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
        updates.pretrain(self, X, layer)
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
        return updates.supervised(self, X, idx)

    # ------------------------------------------------------------------ inference
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
