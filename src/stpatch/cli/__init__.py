"""The ``stpatch`` command: train, evaluate, predict, demo, models, datasets, info, profile, export, serve, bench.

Each command is a thin wrapper over the Python API; they live by group:

* :mod:`stpatch.cli.run`: ``train``, ``evaluate``, ``predict``, ``demo``
* :mod:`stpatch.cli.catalog`: ``models``, ``configs``, ``datasets list|info|download``, ``info RUN``, ``profile``
* :mod:`stpatch.cli.deploy`: ``export``, ``serve``
* :mod:`stpatch.cli.bench`: ``bench``
* :mod:`stpatch.cli.report`: ``report``, ``features``
* :mod:`stpatch.cli.anomaly`: ``anomaly``
* :mod:`stpatch.cli.tune`: ``tune``
"""

from __future__ import annotations

import sys

import typer

from stpatch.cli import bench, catalog, deploy, run
from stpatch.cli import report as report_cli
from stpatch.cli.anomaly import anomaly
from stpatch.cli.tune import tune
from stpatch.engine.wiring import CONFIG_DIR

__all__ = ["CONFIG_DIR", "app", "datasets_app", "main"]

app = typer.Typer(help="Spatio-temporal forecasting with spacetime patches.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
datasets_app = typer.Typer(help="Named data sets: list, describe, download.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")

# registration order is the order of `stpatch --help`
for command in (run.train, run.evaluate, run.predict, catalog.models, catalog.configs):
    app.command()(command)
datasets_app.command("list")(catalog.datasets_list)
datasets_app.command("info")(catalog.datasets_info)
datasets_app.command("download")(catalog.datasets_download)
for command in (catalog.info, catalog.profile, run.demo, deploy.export, deploy.serve, bench.bench):
    app.command()(command)
app.command()(anomaly)  # stpatch anomaly: surveillance (stpatch.cli.anomaly)
for command in (report_cli.report, report_cli.features):  # stpatch.cli.report
    app.command()(command)
app.command()(tune)  # stpatch tune: patch size, width, depth, lr under a budget (stpatch.cli.tune)


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted; the last checkpoint is kept, continue with `stpatch train --resume RUN_DIR`", err=True)
        sys.exit(130)
