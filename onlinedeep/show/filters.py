"""What the units of a network respond to: Figures 3 and 4 of Erhan et al. (2010), section 6.2.

* Layer 1: the weights of each unit (``W0[:, j]``) as a ``side × side`` tile (28 × 28 for the 784
  MNIST pixels, 10 × 10 for a 100-input network).
* Layers 2 and 3 (and deeper): *activation maximization* (Erhan, Bengio, Courville & Vincent 2009,
  "Visualizing higher-layer features of a deep network"): the input ``x`` with ``‖x‖ ≤ norm`` that
  maximizes the unit's activation, found by gradient ascent on the input from a random start and
  projected back onto the ball after every step. The sigmoid is increasing, so the maximizer of the
  activation is that of the unit's pre-activation; the ascent follows the pre-activation, whose
  gradient does not vanish where the unit saturates.

Several runs are drawn side by side (e.g. with and without pre-training), one row per run and stage
("after pre-training" when the run kept the snapshot at the end of pre-training, and the newest
snapshot, "after fine-tuning" for a complete run), one column per layer. The same units, from the
same random starts, in every row.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from onlinedeep.show import sources as S

__all__ = ["DEFAULT_NORM", "Panel", "first_layer_tiles", "maximize_activation", "unit_activation",
           "mosaic", "filter_panels", "show_filters"]

#: Default bound on ‖x‖ for activation maximization: about the mean Euclidean norm of an MNIST test
#: digit in [0, 1] (9.30 over the 10,000 test digits, 9.22 over the 60,000 training digits), so
#: the pattern has a digit's energy.
DEFAULT_NORM = 9.3


@dataclass
class Panel:
    """One cell of the figure: the tiles of ``units`` of one layer of one network.

    ``tiles (n_units, side, side) float32``; ``layer`` 1-based; ``stage`` e.g. ``"after
    fine-tuning"``; ``activation`` (layers ≥ 2) the unit's activation at its tile, ``start`` at the
    random start of the ascent (both ``(n_units,) float32``).
    """

    run: str
    stage: str
    position: int
    layer: int
    units: np.ndarray
    tiles: np.ndarray
    activation: np.ndarray | None = None
    start: np.ndarray | None = None


def tile_side(n_inputs: int) -> int:
    """The side of a square tile of ``n_inputs`` pixels (28 for 784, 10 for 100).

    Raises
    ------
    ShowError
        If ``n_inputs`` is not a square.
    """
    side = math.isqrt(int(n_inputs))
    if side * side != n_inputs:
        raise S.ShowError(f"a network of {n_inputs} inputs: filters are drawn as square tiles, "
                          f"which needs a square number of inputs (784 = 28², 100 = 10²)")
    return side


def first_layer_tiles(W0, units: Sequence[int]) -> np.ndarray:
    """The first-layer weights of ``units`` as square tiles.

    Parameters
    ----------
    W0 : (n_inputs, n_hidden) float32 array_like or tensor
        ``W0[:, j]`` holds the weights into unit j (``onlinedeep.model`` layout).
    units : sequence of int
        Hidden units to draw.

    Returns
    -------
    (len(units), side, side) float32 ndarray
        ``tiles[i] = W0[:, units[i]].reshape(side, side)`` (row-major: pixel ``r·side + c``).
    """
    W0 = np.asarray(W0.detach().cpu() if isinstance(W0, torch.Tensor) else W0, dtype=np.float32)
    side = tile_side(W0.shape[0])
    return np.ascontiguousarray(W0[:, list(units)].T.reshape(len(units), side, side))


def _preactivation(params: dict[str, torch.Tensor], x: torch.Tensor, layer: int,
                   units: torch.Tensor) -> torch.Tensor:
    """Pre-activation of unit ``units[i]`` of hidden layer ``layer`` (0-based) at input ``x[i]``,
    with gradients (``model.hidden_forward`` runs without them)."""
    h = x
    for k in range(layer):
        h = torch.sigmoid(torch.addmm(params[f"b{k}"], h, params[f"W{k}"]))
    W = params[f"W{layer}"][:, units]                                  # (fan_in, n_units)
    return (h * W.T).sum(dim=1) + params[f"b{layer}"][units]


def unit_activation(params: dict[str, torch.Tensor], x, layer: int, units: Sequence[int]
                    ) -> np.ndarray:
    """Activation ``σ(pre-activation)`` of unit ``units[i]`` of hidden layer ``layer`` (1-based) at
    input ``x[i]``: ``x (n_units, n_inputs) float32`` → ``(n_units,) float32``."""
    with torch.no_grad():
        a = _preactivation(params, torch.as_tensor(np.asarray(x, dtype=np.float32)), layer - 1,
                           torch.as_tensor(list(units), dtype=torch.int64))
    return torch.sigmoid(a).numpy()


def maximize_activation(params: dict[str, torch.Tensor], layer: int, units: Sequence[int], *,
                        norm: float = DEFAULT_NORM, steps: int = 300, step_size: float = 0.05,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs of bounded norm that maximize the activation of hidden units (activation maximization,
    Erhan et al. 2009; paper section 6.2).

    Parameters
    ----------
    params : dict[str, torch.Tensor]
        The network (float32, ``onlinedeep.model`` layout).
    layer : int
        Hidden layer of the units, 1-based (1 ≤ layer ≤ number of hidden layers).
    units : sequence of int
        Units of that layer; each gets its own input.
    norm : float
        The bound ``‖x‖ ≤ norm`` (Euclidean norm of the input vector).
    steps : int
        Gradient-ascent steps.
    step_size : float
        Length of a step as a fraction of ``norm``, decreasing linearly to 0 over the steps (each
        step moves ``x`` along its normalized gradient, so the ascent does not depend on the scale
        of the weights).
    seed : int
        Random start: uniform [0, 1) pixels (a ``torch.Generator`` seeded with ``seed``; the same
        for every network, so pictures of one unit in several networks start alike), scaled onto
        the sphere ``‖x‖ = norm``.

    Returns
    -------
    x : (n_units, n_inputs) float32 ndarray
        The best input found for each unit (``‖x‖ ≤ norm``).
    activation : (n_units,) float32 ndarray
        The unit's activation at ``x`` (never below ``start``: the best iterate is kept).
    start : (n_units,) float32 ndarray
        The unit's activation at the random start.

    Raises
    ------
    ValueError
        If ``layer`` is not a hidden layer, a unit is out of range, or ``norm``, ``steps`` or
        ``step_size`` is not positive.
    """
    depth = sum(1 for k in params if k.startswith("W") and k != "W_out")
    if not 1 <= int(layer) <= depth:
        raise ValueError(f"layer: expected a hidden layer in 1..{depth}, found {layer}")
    n_hidden = params[f"W{layer - 1}"].shape[1]
    unit_index = torch.as_tensor(list(units), dtype=torch.int64)
    if len(unit_index) == 0 or int(unit_index.min()) < 0 or int(unit_index.max()) >= n_hidden:
        raise ValueError(f"units: expected 1 or more units in 0..{n_hidden - 1}, found "
                         f"{list(units)[:5]}...")
    if not (norm > 0 and int(steps) >= 1 and step_size > 0):
        raise ValueError(f"norm, steps, step_size: expected positive values, found {norm}, "
                         f"{steps}, {step_size}")
    params = {k: v.detach().to(torch.float32) for k, v in params.items()}
    n_inputs = params["W0"].shape[0]
    gen = torch.Generator().manual_seed(int(seed))
    x = torch.rand((len(unit_index), n_inputs), generator=gen, dtype=torch.float32)
    x *= norm / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    best_x = x.clone()
    with torch.no_grad():
        best = _preactivation(params, x, layer - 1, unit_index)
    start = best.clone()
    for t in range(int(steps)):
        x.requires_grad_(True)
        a = _preactivation(params, x, layer - 1, unit_index)
        (grad,) = torch.autograd.grad(a.sum(), x)  # row i depends on x[i] only
        with torch.no_grad():
            better = a.detach() > best
            best = torch.where(better, a.detach(), best)
            best_x[better] = x.detach()[better]
            length = step_size * norm * (1.0 - t / int(steps))
            x = x.detach() + length * grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-30)
            x *= (norm / x.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
    with torch.no_grad():
        a = _preactivation(params, x, layer - 1, unit_index)
        better = a > best
        best = torch.where(better, a, best)
        best_x[better] = x[better]
    return best_x.numpy(), torch.sigmoid(best).numpy(), torch.sigmoid(start).numpy()


def mosaic(tiles: np.ndarray, n_cols: int | None = None, pad: int = 1) -> np.ndarray:
    """Tiles side by side in a grid, each scaled to [0, 1] by its own minimum and maximum (a
    constant tile is 0.5); padding is NaN (drawn as background).

    ``tiles (n, side, side)`` → ``(rows·(side+pad) - pad, cols·(side+pad) - pad) float32``.
    """
    n, side = tiles.shape[0], tiles.shape[1]
    n_cols = n_cols or math.ceil(math.sqrt(n))
    n_rows = math.ceil(n / n_cols)
    out = np.full((n_rows * (side + pad) - pad, n_cols * (side + pad) - pad), np.nan, np.float32)
    for i, tile in enumerate(tiles):
        lo, hi = float(tile.min()), float(tile.max())
        scaled = (tile - lo) / (hi - lo) if hi > lo else np.full_like(tile, 0.5)
        r, c = divmod(i, n_cols)
        out[r * (side + pad):r * (side + pad) + side, c * (side + pad):c * (side + pad) + side] = scaled
    return out


def _stages(run: S.Run) -> list[tuple[str, Path]]:
    """``(stage, snapshot)`` pairs of a run: after pre-training (if kept) and its newest snapshot."""
    cfg = run.config
    final = run.positions[-1]
    if final == cfg.total_updates:
        last = "after fine-tuning" if cfg.sup_updates else "after pre-training"
    else:
        last = f"at position {final:,} of {cfg.total_updates:,}"
    stages = []
    end = run.pretrain_end()
    if end is not None and end != run.final:
        stages.append(("after pre-training", end))
    elif end is None and cfg.pretrain_layers and cfg.unsup_updates and final > cfg.unsup_updates:
        warnings.warn(f"{run.source}: no snapshot at the end of pre-training (position "
                      f"{cfg.unsup_updates:,}), so only {last} is drawn; to keep it, "
                      f"{S.TRAJECTORY_HINT} with COUNT dividing --unsup-updates", stacklevel=2)
    stages.append((last, run.final))
    return stages


def filter_panels(runs: Sequence[S.Run], *, units: int = 100, max_layer: int = 3,
                  norm: float = DEFAULT_NORM, steps: int = 300, seed: int = 0,
                  progress: bool = True) -> list[Panel]:
    """Tiles of the first ``units`` units of layers ``1 .. max_layer`` of every stage of every run
    (see the module docstring); a progress bar over the activation maximizations."""
    from tqdm.auto import tqdm

    jobs = [(run, stage, path) for run in runs for stage, path in _stages(run)]
    depth = [min(run.config.layers, max_layer) for run, _, _ in jobs]
    panels = []
    with tqdm(total=sum(d - 1 for d in depth), disable=not progress,
              desc="activation maximization", unit="layer") as bar:
        for (run, stage, path), d in zip(jobs, depth):
            params = S.load_params(path)
            position = S.peek(path)[0]
            chosen = np.arange(min(units, run.config.n_hidden))
            tile_side(run.config.n_inputs)
            panels.append(Panel(run.label, stage, position, 1, chosen,
                                first_layer_tiles(params["W0"], chosen)))
            for layer in range(2, d + 1):
                x, act, start = maximize_activation(params, layer, chosen, norm=norm,
                                                    steps=steps, seed=seed)
                side = tile_side(x.shape[1])
                panels.append(Panel(run.label, stage, position, layer, chosen,
                                    x.reshape(len(chosen), side, side), act, start))
                bar.update(1)
    return panels


def _draw(panels: Sequence[Panel], path: Path) -> Path:
    plt = S.pyplot()
    rows = list(dict.fromkeys((p.run, p.stage) for p in panels))
    n_cols = max(p.layer for p in panels)
    # constrained layout reserves room for each title; tight_layout did not with these
    # fixed-aspect images, and a row's titles ran into the images above
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(3.3 * n_cols, 3.6 * len(rows)),
                             dpi=110, squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    cmap = plt.get_cmap("gray").with_extremes(bad="#7f99b2")
    for p in panels:
        ax = axes[rows.index((p.run, p.stage)), p.layer - 1]
        ax.imshow(mosaic(p.tiles), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        what = "weights" if p.layer == 1 else "activation maximization"
        ax.set_title(f"{p.run}\n{p.stage}\nlayer {p.layer}: {what}", fontsize=7)
    # on two lines when one column is too narrow for it
    fig.suptitle("What the units respond to" + ("\n" if n_cols == 1 else " ")
                 + "(Erhan et al. 2010, Figures 3-4)", fontsize=10)
    return S.save_figure(fig, path)


def _write(panels: Sequence[Panel], path: Path, norm: float) -> Path:
    def fill(f):
        f.attrs["format"] = "onlinedeep.show.filters"
        f.attrs["norm"] = float(norm)
        for i, p in enumerate(panels):
            g = f.create_group(f"panel{i:03d}")
            g.attrs.update({"run": p.run, "stage": p.stage, "position": int(p.position),
                            "layer": int(p.layer)})
            g["units"] = p.units.astype(np.int64)
            g["tiles"] = p.tiles.astype(np.float32)
            if p.activation is not None:
                g["activation"] = p.activation.astype(np.float32)
                g["start_activation"] = p.start.astype(np.float32)

    return S.write_h5(path, fill, "the filters' data")


def show_filters(sources: Sequence, out: Path, *, units: int = 100, max_layer: int = 3,
                 norm: float = DEFAULT_NORM, steps: int = 300, seed: int = 0,
                 progress: bool = True) -> list[Path]:
    """Draw ``OUT/filters.png`` and write its data ``OUT/filters.h5`` (one group per panel:
    attributes run, stage, position, layer; ``units (n,) int64``, ``tiles (n, side, side)
    float32``, and for layers ≥ 2 ``activation``, ``start_activation (n,) float32``).

    Raises
    ------
    ShowError, SnapshotError
        If a source cannot be read or its network has a non-square input.
    """
    if units < 1 or max_layer < 1:
        raise S.ShowError(f"--units and --max-layer: expected >= 1, found {units}, {max_layer}")
    runs = S.gather(sources)
    panels = filter_panels(runs, units=units, max_layer=max_layer, norm=norm, steps=steps,
                           seed=seed, progress=progress)
    out = Path(out)
    return [_draw(panels, out / "filters.png"), _write(panels, out / "filters.h5", norm)]
