"""``onlinedeep generate`` and ``onlinedeep preview``: the InfiniteMNIST stream on disk or as a picture."""
from __future__ import annotations

import contextlib
import math
import signal
from enum import Enum
from pathlib import Path
from typing import Optional

import numpy as np
import typer

MNIST_DIR_HELP = "Directory of the four MNIST IDX files (default: $ONLINEDEEP_MNIST_DIR, cache, download)."


class Mode(str, Enum):
    first_order = "first-order"
    elastic = "elastic"


def _finite(value: Optional[float]) -> Optional[float]:
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"expected a finite number, found {value}")
    return value


def _stream(mnist_dir, infimnist_dir, mode, alpha, translate, seed):
    from infinite_mnist import InfiniteMNIST

    if infimnist_dir is not None:
        return InfiniteMNIST.from_infimnist_dir(infimnist_dir, alpha=1.0 if alpha is None else alpha,
                                                translate=translate)
    return InfiniteMNIST(mnist_dir=mnist_dir, mode=Mode(mode).value, alpha=alpha, translate=translate,
                         seed=seed)


def preview_grid(stream, digits, n_columns: int) -> np.ndarray:
    """Rows: for each training digit ``a`` of ``digits``, the digit itself then ``n_columns``
    deformations (stream indices ``first_deformed + a + n_train·k``).

    Returns
    -------
    (len(digits)·28, (n_columns + 1)·28) uint8 ndarray
    """
    rows = []
    for a in digits:
        idx = [stream.n_test + a] + [stream.first_deformed + a + stream.n_train * k for k in range(n_columns)]
        rows.append(np.concatenate(list(stream.images(idx)), axis=1))
    return np.concatenate(rows, axis=0)


@contextlib.contextmanager
def _sigterm_interrupts():
    """SIGTERM stops the block at its next check, as Ctrl-C does, so the file being written is
    removed (``atomic_file``) instead of left half-written by a killed process. Yields the check
    (call it between chunks): it raises KeyboardInterrupt once SIGTERM has arrived. Raising from
    the signal handler itself could land in a finaliser, where Python ignores it."""
    terminated = []

    def interrupt(signum, frame):
        terminated.append(signum)

    def check() -> None:
        if terminated:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield check
    finally:
        signal.signal(signal.SIGTERM, previous)


def register(app: typer.Typer) -> None:
    """Add ``generate`` and ``preview`` to the onlinedeep app."""

    @app.command()
    def generate(
        out: Path = typer.Option(..., "--out", help="Output file: *.h5/*.hdf5 (HDF5) or "
                                 "*images-idx3-ubyte[.gz] (IDX; labels go to *labels-idx1-ubyte[.gz])."),
        start: int = typer.Option(70_000, "--start", min=0, help="First stream index."),
        count: int = typer.Option(..., "--count", min=1, help="Number of examples."),
        mnist_dir: Optional[Path] = typer.Option(None, "--mnist-dir", help=MNIST_DIR_HELP),
        infimnist_dir: Optional[Path] = typer.Option(
            None, "--infimnist-dir", help="infimnist's data directory: reproduce its bytes exactly."),
        mode: Mode = typer.Option(Mode.first_order, "--mode", help="Deformation (ignored with "
                                  "--infimnist-dir)."),
        alpha: Optional[float] = typer.Option(None, "--alpha", callback=_finite,
                                              help="Field scale (default per mode)."),
        translate: bool = typer.Option(True, "--translate/--no-translate"),
        seed: int = typer.Option(0, "--seed", min=0, max=2**64 - 1,
                                 help="Seed of the displacement fields."),
        chunk_size: int = typer.Option(65_536, "--chunk-size", min=1),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    ):
        """Write stream examples [start, start + count) to FILE, atomically."""
        from tqdm import tqdm

        from infinite_mnist.io import output_kind, write_stream

        try:
            output_kind(out)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--out") from exc
        if start + count > 2**63:
            raise typer.BadParameter(
                f"expected start + count <= 2**63 (stream indices are int64, the last one "
                f"{2**63 - 1}), found {start} + {count}", param_hint="--start")
        from onlinedeep.atomic import check_free_space

        # image + label (+ the int64 index in HDF5); gzip'ed IDX digits shrink to about a fifth
        per_example = 28 * 28 + 1 + (8 if output_kind(out) == "hdf5" else 0)
        needed = count * per_example // (5 if out.name.endswith(".gz") else 1)
        check_free_space(out.parent, needed, f"{count:,} examples in {out}")
        stream = _stream(mnist_dir, infimnist_dir, mode, alpha, translate, seed)
        chunks = (np.arange(lo, min(lo + chunk_size, start + count), dtype=np.int64)
                  for lo in range(start, start + count, chunk_size))
        try:
            with _sigterm_interrupts() as stop_if_terminated, tqdm(
                    total=count, unit="ex", unit_scale=True, desc=out.name,
                    disable=not progress) as bar:
                def advance(n: int) -> None:
                    stop_if_terminated()
                    bar.update(n)

                files = write_stream(stream, chunks, count, out, progress=advance)
        except KeyboardInterrupt:
            typer.secho(f"interrupted: {out} not written (its temporary file is removed)",
                        err=True, fg=typer.colors.YELLOW)
            raise typer.Exit(130) from None
        for f in files:
            typer.echo(f"wrote {f}")

    @app.command()
    def preview(
        out: Path = typer.Option(Path("preview.png"), "--out", help="PNG file to write."),
        mnist_dir: Optional[Path] = typer.Option(None, "--mnist-dir", help=MNIST_DIR_HELP),
        mode: Mode = typer.Option(Mode.first_order, "--mode", help="Deformation."),
        alpha: Optional[float] = typer.Option(None, "--alpha", callback=_finite,
                                              help="Field scale (default per mode)."),
        translate: bool = typer.Option(True, "--translate/--no-translate"),
        seed: int = typer.Option(0, "--seed", min=0, max=2**64 - 1,
                                 help="Seed of the displacement fields."),
        digits: str = typer.Option("1,3,5,7,2,0,13,15,17,4", "--digits",
                                   help="Comma-separated training-digit numbers, one row each."),
        columns: int = typer.Option(12, "--columns", min=1, help="Deformations per row."),
    ):
        """Draw a grid: each row a training digit, then deformations of it."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from infinite_mnist.atomic import atomic_file

        stream = _stream(mnist_dir, None, mode, alpha, translate, seed)
        try:
            rows = [int(d) for d in digits.split(",")]
        except ValueError as exc:
            raise typer.BadParameter(f"expected comma-separated integers, found {digits!r}",
                                     param_hint="--digits") from exc
        grid = preview_grid(stream, rows, columns)
        fig, ax = plt.subplots(figsize=((columns + 1) * 0.5, len(rows) * 0.5 + 0.4))
        ax.imshow(grid, cmap="gray_r", interpolation="nearest", vmin=0, vmax=255)
        ax.axvline(27.5, color="tab:red", lw=0.8)
        ax.set_axis_off()
        ax.set_title(f"InfiniteMNIST {stream.mode}, alpha={stream.alpha:g}, translate={stream.translate}"
                     f" (left: original)", fontsize=8)
        fig.tight_layout(pad=0.2)
        try:
            with atomic_file(out) as tmp:
                fig.savefig(tmp, format="png", dpi=100)
        finally:
            plt.close(fig)
        typer.echo(f"wrote {out}")
