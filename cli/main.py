"""The ``onlinedeep`` command: one Typer app, each sub-command in its own module.

Each module exposes ``register(app)``, which adds its commands; this file assembles them and owns
how every command reports errors (:class:`_ReportingGroup`): the project's own error classes, whose
messages already say what was expected, what was found and where, become one ``error: ...`` line
and an exit status (2: a usage or input error the user can fix by changing the command or its
files; 1: a failure while running); anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import sys
import warnings

import click
import typer
from typer.core import TyperGroup

from onlinedeep_cli import evaluate, experiment, generate, ordering_variance, train

# (module, class, exit status), most specific first. Looked up in sys.modules only: an exception
# can only come from a module that was imported, and --help stays free of torch and numba.
USER_ERRORS: tuple[tuple[str, str, int], ...] = (
    ("onlinedeep.config", "ConfigError", 2),             # an option or configuration value
    ("onlinedeep.snapshot", "SnapshotError", 2),         # a snapshot file (damaged, inconsistent)
    ("onlinedeep.evaluate", "EvaluationError", 2),       # an evaluation that cannot be made so
    ("onlinedeep.run_folder", "RunDirError", 2),         # a run or job folder that cannot be used so
    ("infinite_mnist.mnist", "MnistNotFoundError", 2),   # --mnist-dir / $ONLINEDEEP_MNIST_DIR
    ("infinite_mnist.mnist", "MnistFormatError", 2),     # a damaged or foreign MNIST file
    ("onlinedeep.training.loop", "NonFiniteLossError", 1),  # training diverged
    ("onlinedeep.training.producer", "ProducerError", 1),  # generating the stream failed
)


def _exit_status(exc: BaseException) -> int | None:
    """The exit status of a user-facing error, or None for a bug."""
    for module, name, status in USER_ERRORS:
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(exc, cls):
            return status
    if isinstance(exc, OSError):  # a file or folder that cannot be read or written, a network
        return 1
    return None


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        # "[Errno 13] Permission denied: '/sys/x'" → "/sys/x: Permission denied"
        return f"{exc.filename}: {exc.strerror}"
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__
    if cause is not None and type(exc).__name__ == "ProducerError":
        text += f" (cause: {type(cause).__name__}: {cause})"
    return text


def _show_warning(message, category, filename, lineno, file=None, line=None):
    # One line per warning, without the source line Python adds by default.
    print(f"warning: {message}", file=file or sys.stderr)


class _ReportingGroup(TyperGroup):
    """The top-level command group: user-facing errors as one line, see the module docstring."""

    def invoke(self, ctx: click.Context):
        shown = warnings.showwarning
        warnings.showwarning = _show_warning
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:
            status = _exit_status(exc)
            if status is None:
                raise
            typer.secho(f"error: {_message(exc)}", err=True, fg=typer.colors.RED)
            raise typer.Exit(status) from None
        finally:
            warnings.showwarning = shown


app = typer.Typer(
    cls=_ReportingGroup,
    help="Streaming online learning of deep networks on InfiniteMNIST, batch size 1 "
    "(Erhan et al., JMLR 2010).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

for _module in (generate, train, evaluate, ordering_variance, experiment):
    _module.register(app)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
