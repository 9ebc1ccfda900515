"""``onlinedeep show filters|trajectories|landscape``: pictures of what networks learned (paper
section 6, Figures 3-7), from run folders or snapshot files; PNG files plus the data behind them."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import List, Optional

import typer

_SOURCES_HELP = ("Run folders (all their snapshots) or snapshot files (grouped by run); give runs "
                 "with and without pre-training to see them side by side.")


def _threads(n: int):
    """PyTorch's threads for the command (0: PyTorch's default), restored after."""
    from onlinedeep import threads

    if n < 0:
        raise typer.BadParameter(f"expected an integer >= 0, found {n}", param_hint="--threads")
    return threads.torch_threads(threads.decide("torch", n))


_THREADS_HELP = "PyTorch threads (0 = PyTorch's default)."


def _done(out: Path, kind: str, written) -> None:
    from onlinedeep.show.sources import write_text

    command = "onlinedeep " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    written = [*written, write_text(out / f"{kind}-command.txt", command + "\n")]
    for path in written:
        typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add the ``show`` command group to the onlinedeep app."""
    show = typer.Typer(help="Pictures of what networks learned (paper section 6, Figures 3-7): "
                            "filters, function-space trajectories, error landscapes.",
                       no_args_is_help=True)
    app.add_typer(show, name="show")

    @show.command()
    def filters(
        runs: List[Path] = typer.Argument(..., help=_SOURCES_HELP),
        out: Path = typer.Option(Path("show"), "--out", help="Folder of the pictures and data."),
        units: int = typer.Option(100, "--units", help="Units drawn per layer (the first ones)."),
        max_layer: int = typer.Option(3, "--max-layer", help="Deepest hidden layer drawn."),
        norm: Optional[float] = typer.Option(
            None, "--norm", help="Activation maximization: bound on the input's norm "
                                 "[9.3, an MNIST digit's mean]."),
        steps: int = typer.Option(300, "--steps", help="Activation maximization: ascent steps."),
        seed: int = typer.Option(0, "--seed", help="Random starts of the ascent."),
        threads: int = typer.Option(0, "--threads", help=_THREADS_HELP),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
    ):
        """Figures 3-4: first-layer weights as 28x28 tiles, and for layers 2-3 the bounded input
        that maximizes each unit's activation (Erhan et al. 2009); after pre-training (when the
        run kept that snapshot) and after fine-tuning. Writes filters.png and filters.h5."""
        from onlinedeep.show.filters import DEFAULT_NORM, show_filters

        with _threads(threads):
            written = show_filters(runs, out, units=units, max_layer=max_layer,
                                   norm=DEFAULT_NORM if norm is None else norm, steps=steps,
                                   seed=seed, progress=progress)
        _done(out, "filters", written)

    @show.command()
    def trajectories(
        runs: List[Path] = typer.Argument(..., help=_SOURCES_HELP),
        out: Path = typer.Option(Path("show"), "--out", help="Folder of the pictures and data."),
        examples: Optional[int] = typer.Option(
            None, "--examples", help="Test examples the functions are evaluated on (MNIST "
                                     "test digits; a finite run's test split) [all, at most "
                                     "10,000]."),
        min_snapshots: int = typer.Option(
            3, "--min-snapshots", help="Snapshots of supervised training each run needs."),
        n_neighbors: int = typer.Option(
            10, "--neighbors", help="Isomap neighbours to start from (raised until the graph is "
                                    "one connected component)."),
        seed: int = typer.Option(0, "--seed", help="t-SNE random state."),
        mnist_dir: Optional[Path] = typer.Option(None, "--mnist-dir", help="MNIST IDX directory."),
        threads: int = typer.Option(0, "--threads", help=_THREADS_HELP),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
    ):
        """Figures 5-6: each snapshot's outputs on the test digits as one point, all runs in one
        t-SNE and one Isomap embedding, coloured by supervised updates done. Needs several
        snapshots per run (onlinedeep train --snapshot-every COUNT --keep-snapshots 0; a finite
        run: --set snapshots=epochs). Writes
        trajectories-tsne.png, trajectories-isomap.png, trajectories.csv."""
        from onlinedeep.show.trajectories import show_trajectories

        with _threads(threads):
            written = show_trajectories(runs, out, examples=examples,
                                        min_snapshots=min_snapshots, n_neighbors=n_neighbors,
                                        seed=seed, mnist_dir=mnist_dir and str(mnist_dir),
                                        progress=progress)
        _done(out, "trajectories", written)

    @show.command()
    def landscape(
        runs: List[Path] = typer.Argument(..., help=_SOURCES_HELP),
        out: Path = typer.Option(Path("show"), "--out", help="Folder of the pictures and data."),
        directions: int = typer.Option(7, "--directions", help="Random gradient directions."),
        examples: int = typer.Option(
            10_000, "--examples", help="Training examples the error is taken on (an online "
                                       "run's last ones; a finite run's training set, from its "
                                       "start)."),
        seed: int = typer.Option(0, "--seed", help="Chooses the examples behind the directions."),
        mnist_dir: Optional[Path] = typer.Option(None, "--mnist-dir", help="MNIST IDX directory."),
        threads: int = typer.Option(0, "--threads", help=_THREADS_HELP),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
    ):
        """Figure 7: training error and NLL of the newest network of each run moved by alpha*v,
        alpha in [-2.5, 2.5] step 0.1, v the unit-norm gradient on one random training example.
        Writes landscape.png and landscape.csv."""
        from onlinedeep.show.landscape import show_landscape

        with _threads(threads):
            written = show_landscape(runs, out, directions=directions, examples=examples,
                                     seed=seed, mnist_dir=mnist_dir and str(mnist_dir),
                                     progress=progress)
        _done(out, "landscape", written)
