"""The training error around a converged network: Figure 7 of Erhan et al. (2010), section 6.3.

A direction ``v`` is a stochastic-gradient direction: the gradient of the negative log-likelihood of
one random training example with respect to every parameter of the classifier (``W{k}``, ``b{k}``,
``W_out``, ``b_out``; not the visible biases ``c{k}`` of pre-training, which the classifier does not
use), normalized to ``‖v‖ = 1`` over all of them together. The cut is the training error of
``θ* + α·v`` for ``α ∈ {-2.5, -2.4, …, 2.5}`` (paper: 7 directions, step 0.1). The training set is the
last ``examples`` supervised examples an online run trained on, or the first ``examples`` of a
finite-data run's training set (:func:`sources.training_examples`; the paper's Figure 7 is drawn on
Shapeset); directions come from random examples of the same set.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from onlinedeep.show import sources as S

__all__ = ["ALPHAS", "classifier_keys", "gradient_direction", "random_directions", "cut",
           "show_landscape"]

#: α ∈ [-2.5, 2.5] in steps of 0.1 (51 values; α = 0 is the network itself).
ALPHAS = np.arange(-25, 26) / 10.0


def classifier_keys(params: dict) -> list[str]:
    """The parameters a direction moves, in order: ``W0, b0, W1, b1, …, W_out, b_out``."""
    depth = sum(1 for k in params if k.startswith("W") and k != "W_out")
    return [k for layer in range(depth) for k in (f"W{layer}", f"b{layer}")] + ["W_out", "b_out"]


def _logits(params: dict, x: torch.Tensor) -> torch.Tensor:
    h = x
    for k in classifier_keys(params)[:-2:2]:
        h = torch.sigmoid(torch.addmm(params["b" + k[1:]], h, params[k]))
    return torch.addmm(params["b_out"], h, params["W_out"])


def gradient_direction(params: dict, x: np.ndarray, y: int) -> dict[str, torch.Tensor]:
    """The unit-norm gradient of the NLL of one example ``(x (n_inputs,) float32, y int)`` with
    respect to the classifier's parameters: ``{key: tensor shaped like params[key]}`` (float64),
    ``Σ ‖v[key]‖² = 1``.

    Raises
    ------
    ValueError
        If the gradient is zero (the network predicts the example with probability 1 in float32).
    """
    keys = classifier_keys(params)
    leaves = {k: params[k].detach().clone().requires_grad_(True) for k in keys}
    logits = _logits(leaves, torch.as_tensor(np.asarray(x, np.float32))[None, :])
    nll = torch.nn.functional.cross_entropy(logits, torch.tensor([int(y)]))
    grads = torch.autograd.grad(nll, [leaves[k] for k in keys])
    grads = [g.double() for g in grads]
    norm = torch.sqrt(sum((g * g).sum() for g in grads))
    if not norm > 0:
        raise ValueError("the gradient on this example is zero")
    return {k: g / norm for k, g in zip(keys, grads)}


def random_directions(params: dict, x: np.ndarray, y: np.ndarray, n: int, *, seed: int = 0
                      ) -> tuple[list[dict[str, torch.Tensor]], np.ndarray]:
    """``n`` directions from the gradients of distinct random examples of ``(x (m, n_inputs), y
    (m,))`` (``numpy.random.default_rng(seed)``; an example with a zero gradient is skipped).

    Returns
    -------
    directions : list of dict
        As :func:`gradient_direction`.
    examples : (n,) int64 ndarray
        The row of ``x`` behind each direction.

    Raises
    ------
    ShowError
        If fewer than ``n`` examples have a non-zero gradient.
    """
    order = np.random.default_rng(seed).permutation(len(x))
    directions, rows = [], []
    for row in order:
        try:
            directions.append(gradient_direction(params, x[row], int(y[row])))
        except ValueError:
            continue
        rows.append(int(row))
        if len(directions) == n:
            return directions, np.array(rows, np.int64)
    raise S.ShowError(f"only {len(directions)} of the {len(x)} training examples give a non-zero "
                      f"gradient, fewer than the {n} directions asked for (use more --examples)")


@torch.no_grad()
def cut(params: dict, direction: dict[str, torch.Tensor], x: np.ndarray, y: np.ndarray,
        alphas: Sequence[float] = ALPHAS) -> tuple[np.ndarray, np.ndarray]:
    """Training error and mean NLL of ``θ + α·v`` for each α.

    Parameters
    ----------
    params : dict[str, torch.Tensor]
        The network θ (float32).
    direction : dict[str, torch.Tensor]
        ``v`` (:func:`gradient_direction`), over :func:`classifier_keys`.
    x : (m, n_inputs) float32 ndarray
    y : (m,) int64 ndarray
    alphas : sequence of float

    Returns
    -------
    error : (len(alphas),) float64 ndarray
        Fraction misclassified (argmax of the logits, first maximum on ties, as the kernels).
    nll : (len(alphas),) float64 ndarray
        Mean negative log-likelihood (nats).
    """
    xt = torch.as_tensor(np.asarray(x, np.float32))
    yt = torch.as_tensor(np.asarray(y, np.int64))
    keys = classifier_keys(params)
    # The first layer is linear in its parameters: x·(W0 + αV0) + b0 + α·v_b0 = (x·W0 + b0) +
    # α·(x·V0 + v_b0), so its product with the data, the bulk of the work, is made once per
    # direction (the same numbers up to float rounding; exactly the network's own at α = 0).
    base = torch.addmm(params["b0"], xt, params["W0"])
    step = torch.addmm(direction["b0"].float(), xt, direction["W0"].float())
    error, nll = np.empty(len(alphas)), np.empty(len(alphas))
    for i, alpha in enumerate(alphas):
        moved = {k: (params[k].double() + float(alpha) * direction[k]).float() for k in keys[2:]}
        h = torch.sigmoid(base + float(alpha) * step if alpha else base)
        for k in keys[2:-2:2]:
            h = torch.sigmoid(torch.addmm(moved["b" + k[1:]], h, moved[k]))
        logits = torch.addmm(moved["b_out"], h, moved["W_out"])
        error[i] = float((logits.argmax(dim=1) != yt).double().mean())
        nll[i] = float(torch.nn.functional.cross_entropy(logits.double(), yt))
    return error, nll


def _draw(results: list[dict], path: Path) -> Path:
    plt = S.pyplot()
    n = len(results)
    fig, axes = plt.subplots(2, n, figsize=(3.6 * n + 0.6, 6.4), dpi=110, squeeze=False,
                             sharey="row")
    for col, res in enumerate(results):
        for d in range(res["error"].shape[0]):
            axes[0, col].plot(ALPHAS, res["error"][d], linewidth=1.0)
            axes[1, col].plot(ALPHAS, res["nll"][d], linewidth=1.0)
        axes[0, col].set_title(res["label"], fontsize=7)
        axes[1, col].set_xlabel("α (step along the direction, ‖v‖ = 1)")
        for ax in axes[:, col]:
            ax.grid(True, alpha=0.3)
    axes[0, 0].set_ylabel("training error")
    axes[1, 0].set_ylabel("training NLL (nats)")
    fig.suptitle(f"Training criterion around the final network along {results[0]['error'].shape[0]} "
                 f"random stochastic-gradient directions (Erhan et al. 2010, Figure 7)", fontsize=9)
    fig.tight_layout()
    return S.save_figure(fig, path)


def show_landscape(sources: Sequence, out: Path, *, directions: int = 7, examples: int = 10_000,
                   seed: int = 0, mnist_dir: str | None = None, progress: bool = True
                   ) -> list[Path]:
    """Draw ``OUT/landscape.png`` (one column per run: error and NLL against α, one curve per
    direction) and write ``OUT/landscape.csv`` (run, label, condition, position, direction, the
    training example behind it, alpha, error, nll).

    Parameters
    ----------
    sources : sequence of path-like
        Run folders (their newest snapshot) or snapshot files.
    directions : int
        Random stochastic-gradient directions per network (paper: 7).
    examples : int
        Training examples the error is computed on: the last supervised ones of an online run,
        the first of a finite run's training set. ``landscape.csv``'s ``example_position`` is the
        direction's example: a stream position (online) or a training-set index (finite).
    seed : int
        Chooses the examples behind the directions.

    Raises
    ------
    ShowError
        If a network made no supervised update or an online network is not an MNIST network.
    """
    from tqdm.auto import tqdm

    if directions < 1 or examples < 1:
        raise S.ShowError(f"--directions and --examples: expected >= 1, found {directions}, "
                          f"{examples}")
    runs = S.gather(sources)
    # every run's examples before the progress bar: a missing data folder is an error, not a bar
    # stopped at 0% followed by one
    data = [S.training_examples(run, run.final, examples, mnist_dir=mnist_dir) for run in runs]
    results, rows = [], []
    with tqdm(total=len(runs) * directions, disable=not progress, desc="landscape cuts",
              unit="direction") as bar:
        for i, (run, (x, y)) in enumerate(zip(runs, data)):
            params = S.load_params(run.final)
            dirs, rows_used = random_directions(params, x, y, directions, seed=seed)
            err, nll = np.empty((directions, len(ALPHAS))), np.empty((directions, len(ALPHAS)))
            for d, v in enumerate(dirs):
                err[d], nll[d] = cut(params, v, x, y)
                bar.update(1)
            position = run.positions[-1]
            results.append({"label": f"{run.label}\nposition {position:,}, "
                                     f"{len(x):,} training examples", "error": err,
                            "nll": nll})
            for d in range(directions):
                position_of_example = (int(rows_used[d]) if run.finite is not None  # index
                                       else position - len(x) + int(rows_used[d]))
                rows += [[i, run.label, S.condition(run.config), position, d, position_of_example,
                          float(a), err[d, j], nll[d, j]] for j, a in enumerate(ALPHAS)]
    out = Path(out)
    return [_draw(results, out / "landscape.png"),
            S.write_csv(out / "landscape.csv",
                        ["run", "label", "condition", "position", "direction",
                         "example_position", "alpha", "error", "nll"], rows)]
