"""What every command group shares: the error exit and printing an evaluation."""

from __future__ import annotations

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
