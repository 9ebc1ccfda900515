"""Checks on the inputs a network is given: floats in [0, 1], one row per example.

The networks of Erhan et al. (2010) model every input as the probability of a Bernoulli unit: the
denoising auto-encoder and the RBM reconstruct it through a sigmoid with a cross-entropy cost
(paper 5.1.1, 5.1.2), which is meaningless outside [0, 1]. MNIST pixels are scaled by 1/255
(:func:`infinite_mnist.to_float`); other data must be scaled the same way (e.g. min-max per feature)
before it is given to the engine. A value outside that range is refused with a clear error rather
than trained on silently.
"""
from __future__ import annotations

import numpy as np

__all__ = ["check_inputs"]


def check_inputs(x, n_inputs: int | None = None, *, name: str = "X") -> np.ndarray:
    """Validate and convert a block of examples to the engine's input format.

    Parameters
    ----------
    x : (n, n_inputs) array_like or torch.Tensor
        Real numbers in [0, 1] (any numeric dtype; booleans count as 0/1).
    n_inputs : int, optional
        Expected number of columns (the network's inputs); not checked when None.
    name : str
        What ``x`` is called in error messages.

    Returns
    -------
    (n, n_inputs) float32 ndarray, C-contiguous
        A view of ``x`` when it already is one, else a copy.

    Raises
    ------
    TypeError
        If ``x`` is not numeric (strings, objects, complex numbers).
    ValueError
        If ``x`` is not 2-d, has the wrong number of columns, or holds a value that is NaN, infinite
        or outside [0, 1] after conversion to float32 (the message gives the first such value and
        its row and column).
    """
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.float32)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name}: expected real numbers in [0, 1], found dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-d array (n examples, n_inputs), found shape "
                         f"{arr.shape}")
    if n_inputs is not None and arr.shape[1] != n_inputs:
        raise ValueError(f"{name}: expected {n_inputs} columns (the network's n_inputs), found "
                         f"{arr.shape[1]} (shape {arr.shape})")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if out.size:
        bad = ~((out >= 0) & (out <= 1))  # NaN fails both comparisons
        if bad.any():
            row, col = (int(i) for i in np.argwhere(bad)[0])
            value = arr[row, col].item()
            hint = (" (uint8 images: divide by 255, e.g. infinite_mnist.to_float)"
                    if np.issubdtype(arr.dtype, np.integer) and arr.max() <= 255 else
                    " (scale each feature into [0, 1], e.g. min-max)")
            raise ValueError(
                f"{name}: expected inputs in [0, 1] (probabilities of Bernoulli inputs, the "
                f"sigmoid/cross-entropy model of the paper), found {value!r} at row {row}, column "
                f"{col}; {int(bad.sum())} value(s) out of range{hint}"
            )
    return out
