"""Progressive validation in River's style: for each example, predict, score, then learn.

The online error of the paper (8.1, Figure 11) is exactly this: each example is classified by the
current network, its 0/1 error and NLL enter a sliding window (:class:`onlinedeep.metrics.Rolling`),
then the network learns from it. :func:`progressive_val_score` runs it on any sequence of labelled
examples and returns the windowed figures and a series of records, the same numbers
``onlinedeep train`` records for the same sequence (tests/test_progressive.py).

::

    from onlinedeep import OnlineMLP, progressive_val_score
    result = progressive_val_score(OnlineMLP(n_hidden=500, n_classes=10), X, y, window=100_000)
    result.online_error, result.series.online_error

For an :class:`onlinedeep.OnlineMLP` the kernel scores each example before its update inside the
same compiled loop (one pass, batch size 1). Any other model with River's ``predict_proba_one`` /
``learn_one`` or scikit-learn's ``predict_proba`` / ``partial_fit`` (and ``classes_``) is run
example by example.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from onlinedeep.metrics import RunMetrics, Series

__all__ = ["ProgressiveResult", "progressive_val_score"]


@dataclass
class ProgressiveResult:
    """What :func:`progressive_val_score` returns.

    Attributes
    ----------
    online_error : float
        Mean 0/1 error over the last ``window`` examples (NaN with no example).
    online_nll : float
        Mean NLL (nats) over the same window.
    cumulative_error : float
        Mean 0/1 error over every example.
    n_examples : int
    series : Series
        A record every ``log_every`` examples and at the end (``position`` counts the model's
        updates, pre-training included for an OnlineMLP).
    errors : (n,) uint8 ndarray
        Each example's 0/1 error, before the model learnt from it.
    nll : (n,) float64 ndarray
        Each example's NLL (nats), before the model learnt from it.
    """

    online_error: float
    online_nll: float
    cumulative_error: float
    n_examples: int
    series: Series
    errors: np.ndarray
    nll: np.ndarray


def _score_one(model, x, label, classes) -> tuple[int, float]:
    """Predict one example with a generic model: (0/1 error, NLL). A model that cannot predict
    yet (River's empty dict, scikit-learn's NotFittedError) scores an error and the NLL of a
    uniform guess over ``classes`` (infinite when they are unknown); River's own
    ``evaluate.progressive_val_score`` leaves such an example out instead, so that every example
    counts in the window here."""
    try:
        if hasattr(model, "predict_proba_one"):
            proba = dict(model.predict_proba_one(x) or {})
        else:
            probs = np.asarray(model.predict_proba(np.asarray(x)[None, :]))[0]
            proba = {_py(c): float(p) for c, p in zip(model.classes_, probs)}
    except (ValueError, AttributeError):  # scikit-learn's NotFittedError is both
        proba = {}
    if not proba:
        return 1, math.log(len(classes)) if classes is not None else math.inf
    best = max(proba, key=proba.get)
    p = proba.get(label, 0.0)
    return int(best != label), (-math.log(p) if p > 0 else math.inf)


def _py(value):
    return value.item() if isinstance(value, np.generic) else value


def _learn_one(model, x, label, classes) -> None:
    if hasattr(model, "learn_one"):
        model.learn_one(x, label)
    else:
        model.partial_fit(np.asarray(x)[None, :], [label], classes=classes)


def progressive_val_score(model, X, y, *, window: int = 100_000, log_every: int = 10_000,
                          classes=None) -> ProgressiveResult:
    """Predict, score, then learn, example by example, with a sliding window of the error.

    Parameters
    ----------
    model : OnlineMLP or a River / scikit-learn incremental classifier
        Trained in place, one example per update.
    X : (n, n_inputs) array_like, or a sequence of River dicts (generic models)
        Examples in order (floats in [0, 1] for an OnlineMLP).
    y : (n,) array_like
        Labels.
    window : int
        Examples in the sliding window (paper: 100,000).
    log_every : int
        Examples between records of the series.
    classes : array_like, optional
        All labels. Default: the distinct labels of ``y`` when the model does not know its classes
        yet (an OnlineMLP without ``n_classes``, a scikit-learn model, whose first ``partial_fit``
        needs them); only the set of labels is read ahead, never an example's label before it is
        scored.

    Returns
    -------
    ProgressiveResult

    Raises
    ------
    ValueError
        If ``X`` and ``y`` differ in length, or as the model's own methods raise (an OnlineMLP:
        inputs outside [0, 1], unknown labels).

    Notes
    -----
    The windows are those of :class:`onlinedeep.metrics.RunMetrics`, the bookkeeping of a run, and
    records fall on the same positions (multiples of ``log_every``), so an OnlineMLP fed a run's
    supervised examples after its pre-training returns the run's online error and series.
    """
    from onlinedeep.learner import OnlineMLP

    y = np.asarray(y)
    n = len(X)
    if y.shape != (n,):
        raise ValueError(f"y: expected {n} labels (one per example of X), found shape {y.shape}")
    if classes is None and (getattr(model, "classes_", None) is None
                            and not hasattr(model, "learn_one") or isinstance(model, OnlineMLP)
                            and model.classes_ is None):
        classes = np.unique(y)
    if isinstance(model, OnlineMLP):
        start = model.position_
        metrics = RunMetrics(window, log_every)
        errors, nll = model._supervised(X, y, classes)
        metrics.add_supervised(start, errors, nll)
        nll = nll.astype(np.float64)
    else:
        start = 0
        metrics = RunMetrics(window, log_every)
        errors = np.zeros(n, dtype=np.uint8)
        nll = np.zeros(n, dtype=np.float64)
        for i in range(n):
            x, label = X[i], _py(y[i])
            errors[i], nll[i] = _score_one(model, x, label, classes)
            metrics.add_supervised(start + i, errors[i:i + 1], nll[i:i + 1])
            _learn_one(model, x, label, classes)
    if n:
        metrics.record(start + n, -1)
    p = metrics.prequential
    return ProgressiveResult(online_error=p.online_error, online_nll=p.online_nll,
                             cumulative_error=p.cumulative_error, n_examples=p.n_examples,
                             series=metrics.series(), errors=errors, nll=nll)
