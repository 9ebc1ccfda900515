"""Configuration fields → the option a user types, one table for every command: an error about a
field the user set on the command line names the option (``--lr``, not ``learning_rate``), and
the spelling typed where an option has two (``--units`` for ``--n-hidden``).
"""
from __future__ import annotations

__all__ = ["OPTION_NAMES", "OPTION_ALIASES", "option_name", "remember_typed"]

OPTION_NAMES: dict[str, str] = {
    "learning_rate": "--lr", "unsup_learning_rate": "--unsup-lr",
    "corruption_level": "--corruption", "n_segments": "--segments", "n_draws": "--draws",
}
# Other spellings of an option, accepted for compatibility.
OPTION_ALIASES: dict[str, tuple[str, ...]] = {"--n-hidden": ("--units",)}

# The command line of this invocation (set by the top-level command group before it parses).
_typed: list[str] = []


def remember_typed(args: list[str]) -> None:
    """Record the command line being run, so that messages use the spelling typed."""
    _typed[:] = [str(a) for a in args]


def _given(option: str) -> bool:
    return any(a == option or a.startswith(option + "=") for a in _typed)


def option_name(field: str) -> str:
    """The option of a configuration field: ``"learning_rate"`` → ``"--lr"``, otherwise the field
    with dashes (``"sup_updates"`` → ``"--sup-updates"``); an alias instead where only it was
    typed (``"n_hidden"`` → ``"--units"`` after ``--units 0``)."""
    name = OPTION_NAMES.get(field, "--" + field.replace("_", "-"))
    if not _given(name):
        for alias in OPTION_ALIASES.get(name, ()):
            if _given(alias):
                return alias
    return name
