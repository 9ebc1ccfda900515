"""The ``onlinedeep`` command: one Typer app, each sub-command in its own module.

Each module exposes ``register(app)``, which adds its commands; this file only assembles them.
"""
from __future__ import annotations

import typer

from cli import generate, ordering_variance, train

app = typer.Typer(
    help="Streaming online learning of deep networks on InfiniteMNIST, batch size 1 "
    "(Erhan et al., JMLR 2010).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

for _module in (generate, train, ordering_variance):
    _module.register(app)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
