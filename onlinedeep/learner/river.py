"""River's side of :class:`~onlinedeep.learner.OnlineMLP`: one example as a dict or a 1-d array,
and the registration as a River classifier."""
from __future__ import annotations

import numpy as np

__all__ = ["RiverMethods", "row", "register_with_river", "scalar"]


def row(net, x) -> np.ndarray:
    """One example of ``net`` as a ``(1, n_inputs)`` array; ``x`` a dict (River) or a 1-d array.

    A dict's keys are fixed by the first example (missing keys count as 0), or are the integer
    column indices when the width is known; they are stored on ``net`` (``feature_names_in_``).

    Raises
    ------
    ValueError
        If a key is unknown, the first dict has the wrong width, or an array is not 1-d.
    """
    if isinstance(x, dict):
        if net.feature_names_in_ is None:
            keys = list(x)
            if (net.n_features_in_ is not None and keys
                    and all(isinstance(k, (int, np.integer)) for k in keys)):
                net.feature_names_in_ = list(range(net.n_features_in_))
            else:
                if net.n_features_in_ is not None and len(keys) != net.n_features_in_:
                    raise ValueError(
                        f"x: the first dict has {len(keys)} features, the network has "
                        f"{net.n_features_in_} inputs (give all features, or integer keys "
                        f"0..{net.n_features_in_ - 1})")
                net.feature_names_in_ = keys
            net._feature_index = None
        if net._feature_index is None:
            net._feature_index = {k: i for i, k in enumerate(net.feature_names_in_)}
        index = net._feature_index
        row = np.zeros((1, len(net.feature_names_in_)), dtype=np.float64)
        for k, v in x.items():
            i = index.get(k)
            if i is None:
                raise ValueError(f"x: unknown feature {k!r} (the features are those of the "
                                 f"first example; missing ones count as 0)")
            row[0, i] = v
        return row
    arr = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
    if arr.ndim != 1:
        raise ValueError(f"x: expected a dict or a 1-d array, found shape {arr.shape}")
    return arr[None, :]


def register_with_river() -> None:
    """Make River see :class:`OnlineMLP` as one of its classifiers (``river.base.Classifier``,
    a virtual subclass), so River's own tools accept it, e.g.
    ``river.evaluate.progressive_val_score(dataset, OnlineMLP(n_classes=10), metrics.Accuracy())``.

    Raises
    ------
    onlinedeep.live.MissingExtraError
        If River is not installed (``pip install 'onlinedeep[river]'``).
    """
    try:
        from river import base
    except ImportError:
        from onlinedeep.live import MissingExtraError

        raise MissingExtraError("register_with_river: needs the river package, which is not "
                                "installed; install it with: pip install 'onlinedeep[river]'") from None
    from onlinedeep.learner.mlp import OnlineMLP

    base.Classifier.register(OnlineMLP)


def scalar(value):
    """A NumPy scalar as the Python value (dict keys, JSON)."""
    return value.item() if isinstance(value, np.generic) else value


class RiverMethods:
    """River's API of :class:`~onlinedeep.learner.OnlineMLP` (``learn_one``, ``predict_one``,
    ``predict_proba_one``), on its scikit-learn methods; not used alone."""

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
        self._supervised(row(self, x), [y], name="x")

    def predict_proba_one(self, x) -> dict:
        """Class probabilities of one example (River's API): ``{label: probability}``."""
        p = self.predict_proba(row(self, x))[0]
        return {scalar(c): float(v) for c, v in zip(self.classes_, p)}

    def predict_one(self, x):
        """Predicted label of one example (River's API)."""
        return scalar(self.predict(row(self, x))[0])
