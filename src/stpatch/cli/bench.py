"""The ``bench`` command: accuracy under a fixed budget (see ``stpatch.bench``)."""

from __future__ import annotations

import typer

from stpatch.bench.suites import SUITES, suite_names
from stpatch.cli._common import fail


def bench(
    # the help is built from the suite table, so it offers exactly the suites that run
    suite: str = typer.Argument("all", help=f"{', '.join(SUITES)}, or all."),
    budget: str | None = typer.Option(None, help="Training budget per model, HH:MM:SS."),
    quick: bool = typer.Option(False, help="Seconds-long smoke run on tiny subsets."),
    write: bool = typer.Option(False, help="Write the tables into BENCHMARKS.md."),
) -> None:
    """Accuracy under a fixed budget against the baselines, and speed (see BENCHMARKS.md)."""
    from stpatch.bench import run_benchmarks

    try:
        suite_names(suite)  # an unknown name fails before anything trains
    except ValueError as err:
        fail(err)
    typer.echo(run_benchmarks(suite, budget=budget, quick=quick, write=write))
