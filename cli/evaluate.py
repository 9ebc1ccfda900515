"""``onlinedeep evaluate``: test or validation error of a trained network (a run or a snapshot)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` to the onlinedeep app."""

    @app.command()
    def evaluate(
        source: Path = typer.Argument(..., metavar="RUN_OR_SNAPSHOT",
                                      help="Run folder (its latest snapshot) or snapshot file."),
        split: str = typer.Option("test", "--split",
                                  help="test (MNIST test digits, stream indices 0-9,999) or "
                                       "validation (training digits 50,000-59,999)."),
        as_json: bool = typer.Option(False, "--json", help="Print the evaluation as JSON."),
        mnist_dir: Optional[Path] = typer.Option(
            None, "--mnist-dir", help="MNIST IDX directory (default: the run's, else $ONLINEDEEP_MNIST_DIR, ...)."),
        record: bool = typer.Option(True, "--record/--no-record",
                                    help="Write evaluation-SPLIT.json into the run folder."),
    ):
        """Classification error (%), mean NLL and confusion matrix of a trained network on
        held-out MNIST digits; recorded in the run folder as evaluation-SPLIT.json."""
        from onlinedeep import evaluate as ev

        if split not in ev.SPLITS:
            raise typer.BadParameter(f"expected one of {', '.join(ev.SPLITS)}, found {split!r}",
                                     param_hint="--split")
        mnist = None if mnist_dir is None else str(mnist_dir)
        result, run_dir = ev.evaluate_snapshot(source, split, mnist_dir=mnist)
        written = ev.record(run_dir, result) if record and run_dir is not None else None
        if as_json:
            data = result.to_dict()
            data["recorded"] = None if written is None else str(written)
            typer.echo(json.dumps(data, indent=2, sort_keys=True))
            return
        first, stop = result.indices
        typer.echo("\n".join([
            f"snapshot     {result.snapshot} (position {result.position:,})",
            f"split        {split}: stream indices {first:,}-{stop - 1:,} ({result.n_examples:,} digits)",
            f"error        {result.error_percent:.2f}% "
            f"({int(result.confusion.sum() - result.confusion.trace()):,} misclassified)",
            f"NLL          {result.nll:.4f} nats (mean)",
            "confusion    rows: true digit, columns: predicted digit",
            ev.confusion_table(result.confusion),
        ]))
        for note in result.notes:
            typer.secho(f"warning: {note}", err=True, fg=typer.colors.YELLOW)
        if written is not None:
            typer.echo(f"recorded     {written}")
        elif run_dir is None:
            typer.echo("recorded     nothing (the snapshot is not in a run folder's snapshots/)")
