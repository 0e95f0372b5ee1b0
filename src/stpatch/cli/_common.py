"""What every command group shares: the error exit, the data guard's warnings, printing an evaluation."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import NoReturn

import typer


def fail(err: Exception) -> NoReturn:
    """Print ``error: ...`` in red on stderr and exit with code 2 (a user error, not a crash)."""
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def print_eval(result: dict) -> None:
    """The evaluation table of :func:`stpatch.evaluate`'s result, then the figures it drew."""
    from stpatch.engine.reports import format_eval_table

    typer.echo(format_eval_table(result))
    for path in result.get("figures", []):
        typer.echo(f"figure: {path}")


@contextlib.contextmanager
def guard_warnings() -> Iterator[None]:
    """Print the data guard's warnings as ``warning: ...`` in yellow on stderr, each one every time."""
    from stpatch.data.guard import DataGuardWarning

    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DataGuardWarning)
            yield
    finally:  # after the block, so that other warnings are shown as usual again
        for w in caught:
            if issubclass(w.category, DataGuardWarning):
                typer.secho(f"warning: {w.message}", fg=typer.colors.YELLOW, err=True)
            else:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
