"""The ``onlinedeep`` command: one Typer app, each sub-command in its own module.

Each module exposes ``register(app)``, which adds its commands; this file assembles them and owns
how every command reports errors (:class:`_ReportingGroup`): the project's own error classes, whose
messages already say what was expected, what was found and where, become one ``error: ...`` line
and an exit status (2: a usage or input error the user can fix by changing the command or its
files; 1: a failure while running); anything else is a bug and keeps its traceback. Click's own
usage errors (bad value, unknown option, missing argument) are one ``error: ...`` line too.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import typing
import warnings
from pathlib import PurePath

import click
import typer
from typer.core import TyperGroup

from onlinedeep_cli import evaluate, experiment, generate, ordering_variance, train
from onlinedeep_cli.options import OPTION_NAMES, option_name as _option_name, remember_typed
from onlinedeep_cli import show  # onlinedeep show filters|trajectories|landscape (issue 15)

# (module, class, exit status), most specific first. Looked up in sys.modules only: an exception
# can only come from a module that was imported, and --help stays free of torch and numba.
USER_ERRORS: tuple[tuple[str, str, int], ...] = (
    ("onlinedeep.config", "ConfigError", 2),             # an option or configuration value
    ("onlinedeep.snapshot", "SnapshotError", 2),         # a snapshot file (damaged, inconsistent)
    ("onlinedeep.evaluate", "EvaluationError", 2),       # an evaluation that cannot be made so
    ("onlinedeep.run_folder", "RunDirError", 2),         # a run or job folder that cannot be used so
    ("onlinedeep.show.sources", "ShowError", 2),         # a run lacking what a picture needs
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


# A configuration field that begins the message or one of its ": "-separated parts (after the
# file or configuration at fault).
_FIELD_PREFIX = re.compile(r"(^|: )([a-z][a-z0-9_]*)(?=: )")
# A configuration field quoted with its value inside a message ("a multiple of chunk_size=500").
_FIELD_ASSIGNED = re.compile(r"(?<![\w-])([a-z][a-z0-9_]*)=(?=\S)")
# Options that are not configuration fields but are checked by the configuration's code.
_OPTION_FIELDS = ("preset",)


def _with_option_names(text: str) -> str:
    """``"learning_rate: expected ..."`` → ``"--lr: expected ..."`` for a configuration field, also
    after a location (``"snap.h5: configuration ...: snapshot_every: ..."``)."""
    from onlinedeep.config import RunConfig

    def option(m: re.Match) -> str:
        name = m.group(2)
        if (name in RunConfig.__dataclass_fields__ or name in OPTION_NAMES
                or name in _OPTION_FIELDS):
            return m.group(1) + _option_name(name)
        return m.group(0)

    def assigned(m: re.Match) -> str:  # "multiple of chunk_size=500" → "of --chunk-size=500"
        name = m.group(1)
        return _option_name(name) + "=" if name in RunConfig.__dataclass_fields__ else m.group(0)

    return _FIELD_ASSIGNED.sub(assigned, _FIELD_PREFIX.sub(option, text))


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        # "[Errno 13] Permission denied: '/sys/x'" → "/sys/x: Permission denied"
        return f"{exc.filename}: {exc.strerror}"
    text = str(exc) or type(exc).__name__
    if type(exc).__name__ == "ConfigError":
        text = _with_option_names(text)
    cause = exc.__cause__
    if cause is not None and type(exc).__name__ == "ProducerError":
        text += f" (cause: {type(cause).__name__}: {cause})"
    return text


def _show_warning(message, category, filename, lineno, file=None, line=None):
    # One line per warning, without the source line Python adds by default.
    print(f"warning: {message}", file=file or sys.stderr)


def _usage_error(exc) -> typer.Exit:
    """A click usage error (bad value, unknown option, missing argument) as one ``error:`` line,
    instead of click's usage block; the exit status stays click's (2)."""
    where = f"; see '{exc.ctx.command_path} --help'" if exc.ctx is not None else ""
    typer.secho(f"error: {exc.format_message().rstrip('.')}{where}", err=True, fg=typer.colors.RED)
    return typer.Exit(exc.exit_code)


# click's usage error, and the copy of it in recent typer versions (which bundle their own click)
_USAGE_ERRORS = tuple({click.UsageError, *(cls for cls in typer.BadParameter.__mro__
                                           if cls.__name__ == "UsageError")})


def _is_help(exc: BaseException) -> bool:
    """A command group run without arguments shows its help through a usage error: left as is."""
    return type(exc).__name__ == "NoArgsIsHelpError"


def _takes_a_path(param) -> bool:
    """Whether a command's parameter is typed ``Path`` or a list of them (click's own parameter
    type, or the annotation that typer >= 0.20, which carries its own click, keeps on it)."""
    click_type = getattr(param, "type", None)
    if click_type is not None:
        return type(click_type).__name__ == "Path"
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    candidates = (annotation, *typing.get_args(annotation))  # Optional[Path], List[Path]
    return any(isinstance(a, type) and issubclass(a, PurePath) for a in candidates)


def _empty_path(group, args: list[str]) -> tuple[str, str] | None:
    """The first path parameter of the command ``args`` name that is given an empty value
    (``--out ""``, ``--out=``, ``evaluate ""``), and that command's path; ``None`` if none is.

    An unset shell variable (``--out "$RUN"``) gives an empty path, which click reads as ``.``: a
    run would write into, or resume, the current folder.
    """
    command, names, rest = group, [], list(args)
    while isinstance(getattr(command, "commands", None), dict) and rest:  # groups take flags only
        token = rest.pop(0)
        if not token.startswith("-"):
            command = command.commands.get(token)
            names.append(token)
            if command is None:
                return None
    if command is None or isinstance(getattr(command, "commands", None), dict):
        return None
    where = " ".join(["onlinedeep", *names])
    options = {opt: p for p in command.params if getattr(p, "param_type_name", "") == "option"
               for opt in (*p.opts, *p.secondary_opts)}
    arguments = [p for p in command.params if getattr(p, "param_type_name", "") == "argument"]
    i = 0
    while i < len(rest):
        option, eq, value = rest[i].partition("=")
        param = options.get(option) if rest[i].startswith("-") else None
        if param is not None:
            takes_value = not (getattr(param, "is_flag", False) or getattr(param, "count", False))
            given = value if eq else (rest[i + 1] if takes_value and i + 1 < len(rest) else None)
            if takes_value and given == "" and _takes_a_path(param):
                return option, where
            i += 1 if eq or not takes_value else 2
            continue
        if (rest[i] == "" and arguments and all(_takes_a_path(p) for p in arguments)):
            return (getattr(arguments[0], "metavar", None) or arguments[0].name.upper()), where
        i += 1
    return None


class _ReportingGroup(TyperGroup):
    """The top-level command group: user-facing errors as one line, see the module docstring."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        remember_typed(args)
        empty = _empty_path(self, args)
        if empty is not None:
            option, command = empty
            typer.secho(f"error: Invalid value for {option}: expected a path, found an empty "
                        f"string (an unset shell variable?); see '{command} --help'", err=True,
                        fg=typer.colors.RED)
            raise typer.Exit(2)
        try:  # the group's own options (`onlinedeep --bogus`)
            return super().parse_args(ctx, args)
        except _USAGE_ERRORS as exc:
            if _is_help(exc):
                raise
            raise _usage_error(exc) from None

    def invoke(self, ctx: click.Context):
        shown = warnings.showwarning
        warnings.showwarning = _show_warning
        try:
            return super().invoke(ctx)
        except _USAGE_ERRORS as exc:  # a sub-command's arguments, or no such command
            if _is_help(exc):
                raise
            raise _usage_error(exc) from None
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except BrokenPipeError:  # `onlinedeep ... | head`: the reader has all it wanted
            _silence_stdout()  # silent; status 1 as click gives for a closed pipe
            raise typer.Exit(1) from None
        except Exception as exc:
            status = _exit_status(exc)
            if status is None:
                raise
            typer.secho(f"error: {_message(exc)}", err=True, fg=typer.colors.RED)
            raise typer.Exit(status) from None
        finally:
            warnings.showwarning = shown


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so flushing it at exit into a closed pipe raises nothing."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"onlinedeep {version('onlinedeep')}")
        except PackageNotFoundError:
            typer.echo("onlinedeep (version unknown: not installed)")
        raise typer.Exit(0)


app = typer.Typer(
    cls=_ReportingGroup,
    help="Streaming online learning of deep networks on InfiniteMNIST, batch size 1 "
    "(Erhan et al., JMLR 2010).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    # Help texts give defaults as "[0.05]"; Rich markup would take that for a style tag and drop it
    # (leaving "... ."). Plain help, for every sub-command (the mode is inherited).
    rich_markup_mode=None,
)



@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Streaming online learning of deep networks on InfiniteMNIST, batch size 1 (Erhan et al.,
    JMLR 2010)."""


for _module in (generate, train, evaluate, ordering_variance, experiment):
    _module.register(app)
show.register(app)


def main() -> None:  # pragma: no cover - console entry point
    try:
        app()
    except BrokenPipeError:  # raised outside a command (help text, --version) into `| head`
        _silence_stdout()
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
