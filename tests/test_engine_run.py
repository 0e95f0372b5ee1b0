"""End to end on tiny settings: train -> evaluate -> predict on grids and sensors, resume, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from stpatch.engine.checkpoint import read_checkpoint
from stpatch.engine.config import ConfigError
from stpatch.engine.runner import evaluate, load_run, predict, train


def tiny_grid_config(run_dir, **train):
    return {
        "data": {"name": "digits", "t_in": 4, "t_out": 3, "batch_size": 4,
                 "options": {"train_size": 16, "val_size": 4, "test_size": 8, "image_size": 32}},
        "model": {"name": "stpnet_tiny"},
        "train": {"max_epochs": 1, "seed": 0, "progress": False, **train},
        "run_dir": str(run_dir),
    }


def sensor_data(steps=300, nodes=6):
    """A synthetic daily cycle with noise on a small sensor network, as a user's own array."""
    from stpatch.data import from_numpy

    t = np.arange(steps)
    rng = np.random.default_rng(0)
    values = 50 + 10 * np.sin(2 * np.pi * t / 48)[:, None] + rng.normal(0, 1, (steps, nodes))
    values[5, 2] = 0.0  # a missing reading
    times = np.datetime64("2024-01-01T00:00") + t * np.timedelta64(30, "m")
    return from_numpy(values.astype(np.float32), layout="TN", times=times, null_value=0.0)


def test_grid_train_evaluate_predict(tmp_path):
    result = train(tiny_grid_config(tmp_path / "run"))
    assert result.best_checkpoint.is_file() and result.last_checkpoint.is_file()
    assert (tmp_path / "run" / "config.yaml").is_file()
    assert (tmp_path / "run" / "metrics.csv").is_file()
    ev = evaluate(tmp_path / "run")
    assert set(ev["per_horizon"]) == {"stpnet_tiny", "persistence"}
    assert len(ev["per_horizon"]["stpnet_tiny"]["mse_per_frame"]) == 3
    assert ev["windows"] == 8
    saved = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert saved["mean"]["persistence"]["mse_per_frame"] == pytest.approx(ev["mean"]["persistence"]["mse_per_frame"])
    assert (tmp_path / "run" / "figures" / "forecast_strip.png").stat().st_size > 0
    assert (tmp_path / "run" / "figures" / "forecast.gif").stat().st_size > 0
    assert (tmp_path / "run" / "figures" / "attention.png").stat().st_size > 0  # stpnet has attention

    # predict on new data without ground truth: 6 frames in a file, the model takes the last 4
    frames = np.random.default_rng(1).uniform(size=(6, 1, 32, 32)).astype(np.float32)
    np.save(tmp_path / "new.npy", frames)
    out = predict(tmp_path / "run", tmp_path / "new.npy", tmp_path / "forecast.npy")
    assert out.shape == (1, 3, 1, 32, 32)
    written = np.load(tmp_path / "forecast.npy")
    np.testing.assert_allclose(written.reshape(out.shape), out)
    # same answer from an in-memory array
    np.testing.assert_allclose(predict(result.best_checkpoint, frames), out, rtol=1e-5, atol=1e-6)


def test_sensor_train_evaluate_predict(tmp_path):
    config = {
        "data": {"name": "ignored", "t_in": 6, "t_out": 4, "batch_size": 16},
        "model": {"name": "stpnet_sensor"},
        "train": {"max_epochs": 2, "seed": 0, "progress": False},
        "run_dir": str(tmp_path / "run"),
    }
    data = sensor_data()
    train(config, data=data)
    ev = evaluate(tmp_path / "run", data=data)
    assert ev["suite"] == "sensor"
    assert len(ev["per_horizon"]["stpnet_sensor"]["masked_mae"]) == 4
    history = np.asarray(data.segments[0])[-20:]
    forecast = predict(tmp_path / "run", history)
    assert forecast.shape == (1, 4, 6, 1)
    # physical units: near the series' level, not standardised values
    assert 20 < float(np.mean(forecast)) < 80

    # the same from files: a (T, N) .npy and a wide CSV table (time x sensors), written back alike
    np.save(tmp_path / "recent.npy", history[:, :, 0])
    np.testing.assert_allclose(predict(tmp_path / "run", tmp_path / "recent.npy"), forecast, rtol=1e-5, atol=1e-4)
    import pandas as pd

    table = pd.DataFrame(history[:, :, 0], columns=[f"s{i}" for i in range(6)],
                         index=pd.date_range("2024-01-07", periods=20, freq="30min", name="time"))
    table.to_csv(tmp_path / "recent.csv")
    from_csv = predict(tmp_path / "run", tmp_path / "recent.csv", tmp_path / "forecast.csv")
    assert from_csv.shape == forecast.shape and 20 < float(np.mean(from_csv)) < 80  # times here: tod/dow used
    written = pd.read_csv(tmp_path / "forecast.csv")
    assert len(written) == 4 and all(f"s{i}" in written.columns for i in range(6))


class CrashAtEpoch(Callback):
    """Simulates a crash (power cut, kill) when the given epoch begins."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated crash")


def test_resume_equals_uninterrupted(tmp_path):
    full = train(tiny_grid_config(tmp_path / "full", max_epochs=3))
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(tiny_grid_config(tmp_path / "parts", max_epochs=3), callbacks=[CrashAtEpoch(2)])
    assert read_checkpoint(tmp_path / "parts" / "checkpoints" / "last.ckpt")["epoch"] == 1
    resumed = train(tiny_grid_config(tmp_path / "parts", max_epochs=3), resume=True)
    import pandas as pd

    epochs = set(pd.read_csv(tmp_path / "parts" / "metrics.csv")["epoch"].dropna().astype(int))
    assert epochs == {0, 1, 2}  # the metrics of the interrupted part are kept
    a = read_checkpoint(full.last_checkpoint)["state_dict"]
    b = read_checkpoint(resumed.last_checkpoint)["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=f"{key} differs after resume")


def test_existing_run_is_not_overwritten(tmp_path):
    train(tiny_grid_config(tmp_path / "run", max_steps=1))
    with pytest.raises(FileExistsError, match="--resume"):
        train(tiny_grid_config(tmp_path / "run", max_steps=1))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(tiny_grid_config(tmp_path / "other", max_steps=1), resume=True)


def test_parameter_free_baseline_runs_without_training(tmp_path):
    config = tiny_grid_config(tmp_path / "run")
    config["model"] = {"name": "persistence"}
    train(config)
    ev = evaluate(tmp_path / "run", figures=False)
    assert ev["mean"]["persistence"]["mse_per_frame"] == pytest.approx(ev["mean"]["persistence"]["mse_per_frame"])
    assert list(ev["per_horizon"]) == ["persistence"]


def test_mismatched_and_broken_checkpoints(tmp_path):
    train(tiny_grid_config(tmp_path / "run", max_steps=1))
    with pytest.raises(ValueError, match="channel"):
        predict(tmp_path / "run", np.zeros((4, 3, 32, 32), dtype=np.float32))
    with pytest.raises(ValueError, match="last 4 steps"):
        predict(tmp_path / "run", np.zeros((2, 1, 32, 32), dtype=np.float32))
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not be read"):
        load_run(broken)
    with pytest.raises(FileNotFoundError, match="no checkpoints"):
        load_run(tmp_path)
    bad = tiny_grid_config(tmp_path / "bad")
    bad["train"]["max_epoch"] = 1
    with pytest.raises(ConfigError, match="max_epoch"):
        train(bad)


def test_weather_evaluation_scores_acc_against_the_training_climatology(tmp_path, monkeypatch):
    from pathlib import Path

    data_dir = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (data_dir / "weather" / "era5_t2m_2019-03_uk.nc").is_file():
        pytest.skip(f"ERA5 sample not found under {data_dir} (set STPATCH_DATA_DIR)")
    monkeypatch.setenv("STPATCH_DATA_DIR", str(data_dir))
    config = {
        "data": {"name": "era5_uk_t2m", "t_in": 6, "t_out": 3, "batch_size": 16},
        "model": {"name": "stpnet_tiny"},
        "train": {"max_steps": 2, "seed": 0, "progress": False},
        "run_dir": str(tmp_path / "run"),
    }
    train(config)
    ev = evaluate(tmp_path / "run", baselines=["persistence", "climatology"], figures=False)
    assert ev["suite"] == "weather"
    for name in ("stpnet_tiny", "persistence", "climatology"):
        assert set(ev["per_horizon"][name]) == {"lat_weighted_rmse", "lat_weighted_acc"}
        assert len(ev["per_horizon"][name]["lat_weighted_acc"]) == 3
    # the climatology is the reference of ACC: its own anomaly is zero, so it scores no skill
    assert abs(ev["mean"]["climatology"]["lat_weighted_acc"]) < 1e-3 or np.isnan(ev["mean"]["climatology"]["lat_weighted_acc"])
    assert ev["mean"]["persistence"]["lat_weighted_acc"] > 0.3


def test_metrics_csv_set_aside_twice_keeps_all_rows_oldest_first(tmp_path):
    """A resume interrupted before joining its CSV, then resumed again, loses no rows and keeps their order."""
    import pandas as pd

    from stpatch.engine.training import _join_csv, _set_aside

    current = tmp_path / "metrics.csv"
    pd.DataFrame({"step": [0, 1]}).to_csv(current, index=False)
    aside = _set_aside(current)                      # first resume sets the original rows aside
    pd.DataFrame({"step": [2, 3]}).to_csv(current, index=False)  # ...and is interrupted after writing more
    aside = _set_aside(current)                      # second resume
    assert not current.exists()
    pd.DataFrame({"step": [4]}).to_csv(current, index=False)
    _join_csv(aside, current)
    assert pd.read_csv(current)["step"].tolist() == [0, 1, 2, 3, 4]
    assert not aside.exists()
