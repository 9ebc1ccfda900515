"""Configuration fields → the option a user types, one table for every command: an error about a
field the user set on the command line names the option (``--lr``, not ``learning_rate``).
"""
from __future__ import annotations

__all__ = ["OPTION_NAMES", "option_name"]

OPTION_NAMES: dict[str, str] = {
    "learning_rate": "--lr", "unsup_learning_rate": "--unsup-lr",
    "corruption_level": "--corruption", "n_segments": "--segments", "n_draws": "--draws",
}


def option_name(field: str) -> str:
    """The option of a configuration field: ``"learning_rate"`` → ``"--lr"``, otherwise the field
    with dashes (``"sup_updates"`` → ``"--sup-updates"``)."""
    return OPTION_NAMES.get(field, "--" + field.replace("_", "-"))
