"""Tiny trained runs for the deploy tests (export, ONNX engine, service), reusing test_engine_run's builders."""

from __future__ import annotations

from pathlib import Path

try:
    from test_engine_run import DIGITS, digit_windows, sensor_data, tiny_grid_config
except ImportError:  # tests/ imported as a package
    from tests.test_engine_run import DIGITS, digit_windows, sensor_data, tiny_grid_config

__all__ = ["DIGITS", "digit_windows", "grid_run", "sensor_data", "sensor_run"]


def grid_run(run_dir: Path) -> Path:
    """stpnet_tiny, one epoch on the tiny digits set (t_in 4, t_out 3, 32 x 32), no evaluation."""
    import stpatch

    stpatch.train(tiny_grid_config(run_dir))
    return Path(run_dir)


def sensor_run(run_dir: Path) -> Path:
    """stpnet_sensor on a linear base, one epoch on a 6-sensor daily cycle with timestamps (so it reads
    time of day and day of week), standard-scaled (t_in 6, t_out 4)."""
    import stpatch

    config = {
        "data": {"name": "ignored", "t_in": 6, "t_out": 4, "batch_size": 16},
        "model": {"name": "stpnet_sensor", "base": "linear"},
        "train": {"max_epochs": 1, "seed": 0, "progress": False},
        "run_dir": str(run_dir),
    }
    stpatch.train(config, data=sensor_data())
    return Path(run_dir)
