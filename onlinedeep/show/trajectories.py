"""Where networks sit in function space as training proceeds: Figures 5 (t-SNE) and 6 (Isomap) of
Erhan et al. (2010), section 6.3.

A network's *function vector* is its outputs (class probabilities) on a fixed set of test digits,
concatenated: ``(n_examples · n_classes,)``. Every snapshot of supervised training of every run (the
end of pre-training included) gives one vector; all runs, with and without pre-training, are mapped
to 2-D together (footnote 8), by t-SNE (van der Maaten & Hinton 2008; scikit-learn's, default
parameters but a perplexity below the number of points) and by Isomap (Tenenbaum et al. 2000) with
enough neighbours for the neighbourhood graph to be one connected component (footnote 10). Points
are coloured by supervised updates done (training progress) and marked by condition.

Snapshots come from the run folders: online runs record them every ``--snapshot-every`` updates
(with ``--keep-snapshots 0`` to keep them all); a finite-data run's per-epoch snapshots are read the
same way.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from onlinedeep.show import sources as S
from onlinedeep.snapshot import SnapshotError

__all__ = ["Trajectories", "function_vectors", "supervised_snapshots", "connected_neighbours", "embed", "collect",
           "show_trajectories", "MIN_SNAPSHOTS"]

#: Snapshots of supervised training a run needs to draw a trajectory.
MIN_SNAPSHOTS = 3


@dataclass
class Trajectories:
    """The function vectors of every snapshot of every run, one row per snapshot.

    ``vectors (n, n_examples·n_classes) float32``; ``run (n,) int64`` (index into ``labels``);
    ``condition (n,)`` str; ``position (n,) int64`` (updates done); ``progress (n,) int64``
    (supervised updates done); ``labels`` the runs' labels.
    """

    vectors: np.ndarray
    run: np.ndarray
    condition: np.ndarray
    position: np.ndarray
    progress: np.ndarray
    labels: list[str]


def function_vectors(params_list: Sequence[dict], x: np.ndarray) -> np.ndarray:
    """Concatenated class probabilities of each network on the inputs ``x (m, n_inputs) float32``:
    ``(len(params_list), m·n_classes) float32``, row i = ``predict_proba(params_i, x).ravel()``."""
    from onlinedeep.model import predict_proba

    return np.stack([predict_proba(p, x).numpy().ravel() for p in params_list])


def connected_neighbours(points: np.ndarray, start: int = 10) -> int:
    """The number of neighbours Isomap needs for one connected component: the smallest ``k ≥
    start`` (at most ``n - 1``) whose k-nearest-neighbour graph of ``points (n, d)`` is connected,
    so that every geodesic distance is finite (footnote 10 of the paper).

    Raises
    ------
    ShowError
        With fewer than 3 points.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components
    from sklearn.metrics import pairwise_distances

    n = points.shape[0]
    if n < 3:
        raise S.ShowError(f"an Isomap embedding needs at least 3 snapshots, found {n}")
    distances = pairwise_distances(points)
    np.fill_diagonal(distances, np.inf)
    order = np.argsort(distances, axis=1, kind="stable")[:, :n - 1]

    def connected(k: int) -> bool:
        graph = csr_matrix((np.ones(n * k), (np.repeat(np.arange(n), k), order[:, :k].ravel())),
                           shape=(n, n))
        return connected_components(graph, directed=False)[0] == 1

    lo, hi = max(1, min(int(start), n - 1)), n - 1
    if connected(lo):
        return lo
    while hi - lo > 1:  # connected(hi) holds (the complete graph); more edges never disconnect
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if connected(mid) else (mid, hi)
    return hi


def embed(vectors: np.ndarray, method: str, *, seed: int = 0, n_neighbors: int = 10
          ) -> tuple[np.ndarray, dict]:
    """Map function vectors ``(n, d)`` to 2-D: ``("tsne" | "isomap")`` → ``((n, 2) float64, info)``;
    ``info`` records the parameters used (``perplexity``; ``n_neighbors`` after
    :func:`connected_neighbours` raised it if needed)."""
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, (vectors.shape[0] - 1) / 3))
        model = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
        return model.fit_transform(vectors.astype(np.float64)), {"perplexity": perplexity}
    if method == "isomap":
        from sklearn.manifold import Isomap

        k = connected_neighbours(vectors, n_neighbors)
        return Isomap(n_neighbors=k, n_components=2).fit_transform(vectors), {"n_neighbors": k}
    raise ValueError(f"method: expected 'tsne' or 'isomap', found {method!r}")


def supervised_snapshots(runs: Sequence[S.Run], min_snapshots: int = MIN_SNAPSHOTS
                         ) -> list[tuple[S.Run, list[int], list]]:
    """``(run, positions, paths)`` of the supervised-training snapshots of each run.

    Raises
    ------
    ShowError
        If a run has fewer than ``min_snapshots`` of them (the message says which option of
        ``onlinedeep train`` records them).
    """
    chosen = []
    for run in runs:
        positions, paths = run.supervised()
        if len(positions) < min_snapshots:
            raise S.ShowError(
                f"{run.source}: a trajectory needs at least {min_snapshots} snapshots of supervised "
                f"training, found {len(positions)} (positions {positions or 'none'}); "
                f"{S.TRAJECTORY_HINT}")
        chosen.append((run, positions, paths))
    return chosen


def collect(runs: Sequence[S.Run], x: np.ndarray, *, min_snapshots: int = MIN_SNAPSHOTS,
            progress: bool = True) -> Trajectories:
    """The function vectors of every supervised-training snapshot of every run on ``x``.

    Raises
    ------
    ShowError
        If a run has fewer than ``min_snapshots`` snapshots of supervised training (the message
        says which option records them), before any network is evaluated.

    Warns
    -----
    SkippedSnapshotWarning
        For each snapshot file that cannot be read: it is left out.
    """
    from tqdm.auto import tqdm

    chosen = supervised_snapshots(runs, min_snapshots)
    rows, run_ix, cond, pos, prog = [], [], [], [], []
    total = sum(len(p) for _, p, _ in chosen)
    with tqdm(total=total, disable=not progress, desc="function vectors", unit="snapshot") as bar:
        for i, (run, positions, paths) in enumerate(chosen):
            for position, path in zip(positions, paths):
                try:
                    params = S.load_params(path)
                except SnapshotError as exc:  # e.g. the damaged newest file a resume skipped
                    warnings.warn(f"left out of the trajectories: {exc}", S.SkippedSnapshotWarning,
                                  stacklevel=2)
                    bar.update(1)
                    continue
                rows.append(function_vectors([params], x)[0])
                run_ix.append(i)
                cond.append(S.condition(run.config))
                pos.append(position)
                prog.append(position - run.config.unsup_updates)
                bar.update(1)
    return Trajectories(np.stack(rows), np.array(run_ix, np.int64), np.array(cond),
                        np.array(pos, np.int64), np.array(prog, np.int64),
                        [run.label for run in runs])


_MARKERS = ("o", "^", "s", "D", "v", "P")


def _draw(traj: Trajectories, xy: np.ndarray, title: str, path: Path) -> Path:
    plt = S.pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 6.0), dpi=120)
    for i in range(len(traj.labels)):
        rows = np.flatnonzero(traj.run == i)
        ax.plot(xy[rows, 0], xy[rows, 1], color="0.75", linewidth=0.6, zorder=1)
    conditions = list(dict.fromkeys(traj.condition.tolist()))
    norm = plt.Normalize(vmin=0, vmax=max(1, int(traj.progress.max())))
    points = None
    for c, marker in zip(conditions, _MARKERS):
        rows = traj.condition == c
        n_runs = len(set(traj.run[rows].tolist()))
        points = ax.scatter(xy[rows, 0], xy[rows, 1], c=traj.progress[rows], cmap="jet", norm=norm,
                            marker=marker, s=16, edgecolors="none", zorder=2,
                            label=f"{c} ({n_runs} runs)")
    fig.colorbar(points, ax=ax, label="supervised updates done")
    legend = ax.legend(fontsize=8, loc="best")
    for handle in legend.legend_handles:
        handle.set_color("0.3")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return S.save_figure(fig, path)


def show_trajectories(sources: Sequence, out: Path, *, examples: int | None = None,
                      min_snapshots: int = MIN_SNAPSHOTS, n_neighbors: int = 10, seed: int = 0,
                      mnist_dir: str | None = None, progress: bool = True) -> list[Path]:
    """Draw ``OUT/trajectories-tsne.png`` and ``OUT/trajectories-isomap.png`` and write their data
    ``OUT/trajectories.csv`` (one row per snapshot: run, label, condition, position, supervised
    updates, t-SNE x y, Isomap x y) and ``OUT/trajectories.txt`` (the parameters used).

    Parameters
    ----------
    sources : sequence of path-like
        Run folders or snapshot files (:func:`sources.gather`), e.g. many seeds with and without
        pre-training.
    examples : int
        Test examples the functions are evaluated on (the first ones of the MNIST test digits or
        of a finite run's test split; None: all of them, at most 10,000, as the paper).
    min_snapshots : int
        Snapshots of supervised training each run needs.
    n_neighbors : int
        Isomap's starting number of neighbours (raised until the graph is connected).
    seed : int
        t-SNE's random state.

    Raises
    ------
    ShowError
        If a run lacks snapshots (the message says how to record them), an online run is not an
        MNIST network, or the runs trained on different data sets.
    """
    from onlinedeep.live import MissingExtraError

    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise MissingExtraError("show trajectories: needs scikit-learn, which is not installed; "
                                "install it with: pip install 'onlinedeep[sklearn]'") from None
    runs = S.gather(sources)
    supervised_snapshots(runs, min_snapshots)  # before the data are loaded
    data = {S.data_name(r) for r in runs}
    if len(data) > 1:
        raise S.ShowError(f"trajectories: the runs trained on different data sets ({sorted(data)}); "
                          "one map compares functions on one test set")
    x = S.test_inputs(runs[0], examples, mnist_dir=mnist_dir)
    examples = len(x)
    what = {"mnist": "MNIST test digits", "shapeset": "Shapeset test images"}[data.pop()]
    traj = collect(runs, x, min_snapshots=min_snapshots, progress=progress)
    tsne, tsne_info = embed(traj.vectors, "tsne", seed=seed)
    iso, iso_info = embed(traj.vectors, "isomap", n_neighbors=n_neighbors)
    out = Path(out)
    n = f"{len(runs)} runs, {len(traj.run)} networks, outputs on {examples:,} {what}"
    written = [
        _draw(traj, tsne, f"Function space, t-SNE (perplexity {tsne_info['perplexity']:g})\n{n}",
              out / "trajectories-tsne.png"),
        _draw(traj, iso, f"Function space, Isomap ({iso_info['n_neighbors']} neighbours, one "
                         f"connected component)\n{n}", out / "trajectories-isomap.png"),
        S.write_csv(out / "trajectories.csv",
                    ["run", "label", "condition", "position", "supervised_updates", "tsne_x",
                     "tsne_y", "isomap_x", "isomap_y"],
                    [[int(r), traj.labels[r], c, int(p), int(g), *t, *i] for r, c, p, g, t, i in
                     zip(traj.run, traj.condition, traj.position, traj.progress, tsne, iso)]),
        S.write_text(out / "trajectories.txt",
                     f"function vectors: class probabilities on {what} 0-{examples - 1} "
                     f"({traj.vectors.shape[1]:,} values per network)\n"
                     f"t-SNE: scikit-learn TSNE, perplexity {tsne_info['perplexity']:g}, "
                     f"init pca, random_state {seed}\n"
                     f"Isomap: scikit-learn Isomap, n_neighbors {iso_info['n_neighbors']} "
                     f"(one connected component)\n"),
    ]
    return written
