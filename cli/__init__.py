"""Typer command-line interface of onlinedeep (console script ``onlinedeep``)."""
