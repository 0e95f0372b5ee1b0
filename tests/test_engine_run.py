"""End to end on tiny settings: train -> evaluate -> predict on grids and sensors, resume, errors.

Metric values from ``evaluate`` are checked against NumPy computed here on the same windows, the
model's forecasts coming from ``predict`` (a separate path from ``evaluate``'s batch loop).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

import stpatch
from stpatch.engine.checkpoint import read_checkpoint
from stpatch.engine.config import ConfigError
from stpatch.engine.runner import evaluate, load_run, predict, train

try:
    from data_helpers import DATA_DIR, require
except ImportError:  # tests/ imported as a package
    from tests.data_helpers import DATA_DIR, require

DIGITS = {"train_size": 16, "val_size": 4, "test_size": 8, "image_size": 32}


def tiny_grid_config(run_dir, **train):
    return {
        "data": {"name": "digits", "t_in": 4, "t_out": 3, "batch_size": 4, "options": dict(DIGITS)},
        "model": {"name": "stpnet_tiny"},
        "train": {"max_epochs": 1, "seed": 0, "progress": False, **train},
        "run_dir": str(run_dir),
    }


def digit_windows(split: str, t_in: int = 4, t_out: int = 3):
    """The ``split``'s windows of the tiny digits set, straight from the generator: x, y ``(B, T, 1, H, W)``."""
    source = stpatch.datasets.load("digits", **DIGITS)
    seqs = np.stack([source.sequence(split, i, t_in + t_out) for i in range(source.sizes[split])])
    return seqs[:, :t_in], seqs[:, t_in:]


def per_frame(pred, target, power):
    """OpenSTL's MSE / MAE per frame in NumPy: error summed over C, H, W, averaged over windows."""
    return (np.abs(pred.astype(np.float64) - target) ** power).sum(axis=(2, 3, 4)).mean(axis=0)


def assert_figure(path, min_size=(50, 50)):
    """A drawn picture: at least ``min_size`` pixels and not one flat colour."""
    import matplotlib.image as mpimg

    pixels = mpimg.imread(path)
    assert pixels.shape[0] >= min_size[0] and pixels.shape[1] >= min_size[1], pixels.shape
    assert pixels[..., :3].std() > 0.01, f"{path} is blank"


def sensor_data(steps=300, nodes=6):
    """A synthetic daily cycle with noise on a small sensor network, as a user's own array."""
    from stpatch.data import from_numpy

    t = np.arange(steps)
    rng = np.random.default_rng(0)
    values = 50 + 10 * np.sin(2 * np.pi * t / 48)[:, None] + rng.normal(0, 1, (steps, nodes))
    values[5, 2] = 0.0  # a missing reading in the training split
    values[-2, 3] = 0.0  # and one among the test targets only (never an input of a test window)
    times = np.datetime64("2024-01-01T00:00") + t * np.timedelta64(30, "m")
    return from_numpy(values.astype(np.float32), layout="TN", times=times, null_value=0.0)


def test_grid_train_evaluate_predict_through_the_top_level_api(tmp_path):
    result = stpatch.train(tiny_grid_config(tmp_path / "run"))
    assert result.best_checkpoint.is_file() and result.last_checkpoint.is_file()
    assert (tmp_path / "run" / "config.yaml").is_file()
    assert (tmp_path / "run" / "metrics.csv").is_file()
    ev = stpatch.evaluate(tmp_path / "run")
    assert set(ev["per_horizon"]) == {"stpnet_tiny", "persistence"}
    assert ev["windows"] == 8

    # the numbers: persistence repeats the last input frame; the model's forecasts come from predict
    x, y = digit_windows("test")
    model_forecast = stpatch.predict(tmp_path / "run", x)
    assert model_forecast.shape == y.shape
    persistence = np.repeat(x[:, -1:], 3, axis=1)
    for name, forecast in (("persistence", persistence), ("stpnet_tiny", model_forecast)):
        for metric, power in (("mse_per_frame", 2), ("mae_per_frame", 1)):
            np.testing.assert_allclose(ev["per_horizon"][name][metric], per_frame(forecast, y, power),
                                       rtol=1e-4, err_msg=f"{name} {metric}")
        assert ev["mean"][name]["mse_per_frame"] == pytest.approx(per_frame(forecast, y, 2).mean(), rel=1e-4)
    saved = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert saved["per_horizon"] == ev["per_horizon"]

    # another split and a batch limit score other windows, with their own numbers
    val = stpatch.evaluate(tmp_path / "run", split="val", write=False, figures=False)
    vx, vy = digit_windows("val")
    assert val["split"] == "val" and val["windows"] == 4
    np.testing.assert_allclose(val["per_horizon"]["persistence"]["mse_per_frame"],
                               per_frame(np.repeat(vx[:, -1:], 3, axis=1), vy, 2), rtol=1e-4)
    first = stpatch.evaluate(tmp_path / "run", limit_batches=1, write=False, figures=False)
    assert first["windows"] == 4
    np.testing.assert_allclose(first["per_horizon"]["persistence"]["mse_per_frame"],
                               per_frame(persistence[:4], y[:4], 2), rtol=1e-4)
    assert json.loads((tmp_path / "run" / "eval.json").read_text())["windows"] == 8  # write=False kept it

    # the pictures: a strip, an animation and the attention map (stpnet has attention), all drawn
    figures = tmp_path / "run" / "figures"
    assert sorted(Path(p).name for p in ev["figures"]) == ["attention.png", "forecast.gif", "forecast_strip.png"]
    assert_figure(figures / "forecast_strip.png")
    assert_figure(figures / "attention.png")
    import imageio.v3 as iio

    assert iio.imread(figures / "forecast.gif", index=None).shape[0] == 3  # one frame per lead time

    # predict on new data without ground truth: 6 frames in a file, the model takes the last 4
    frames = np.random.default_rng(1).uniform(size=(6, 1, 32, 32)).astype(np.float32)
    np.save(tmp_path / "new.npy", frames)
    out = stpatch.predict(tmp_path / "run", tmp_path / "new.npy", tmp_path / "forecast.npy")
    assert out.shape == (1, 3, 1, 32, 32)
    written = np.load(tmp_path / "forecast.npy")
    np.testing.assert_allclose(written.reshape(out.shape), out)
    # same answer from an in-memory array, and from the last 4 frames alone
    np.testing.assert_allclose(stpatch.predict(result.best_checkpoint, frames), out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stpatch.predict(result.best_checkpoint, frames[2:]), out, rtol=1e-5, atol=1e-6)


def test_sensor_train_evaluate_predict(tmp_path):
    from stpatch.datasets import from_numpy, make_datamodule

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

    # the same test windows, scored in NumPy: targets equal to the null value (0) are left out
    dm = make_datamodule(data, t_in=6, t_out=4)
    dm.setup("test")
    windows = [dm.test_dataset.window(i) for i in range(len(dm.test_dataset))]
    assert ev["windows"] == len(windows) > 0
    x = np.stack([np.asarray(w[0]) for w in windows])  # (B, 6, N, 1)
    y = np.stack([np.asarray(w[1]) for w in windows]).astype(np.float64)  # (B, 4, N, 1)
    valid = y != 0.0
    assert (~valid).sum() == 2  # the missing test reading is a target of two windows
    times = [dm.test_dataset.window_times(i)[0] for i in range(len(windows))]
    model_forecast = predict(tmp_path / "run", from_numpy(list(x), layout="TNC", times=times, null_value=0.0))
    for name, forecast in (("persistence", np.repeat(x[:, -1:], 4, axis=1)), ("stpnet_sensor", model_forecast)):
        err = np.where(valid, forecast - y, 0.0)
        count = valid.sum(axis=(0, 2, 3))
        np.testing.assert_allclose(ev["per_horizon"][name]["masked_mae"], np.abs(err).sum(axis=(0, 2, 3)) / count,
                                   rtol=1e-4, err_msg=name)
        np.testing.assert_allclose(ev["per_horizon"][name]["masked_rmse"],
                                   np.sqrt((err**2).sum(axis=(0, 2, 3)) / count), rtol=1e-4, err_msg=name)

    history = np.asarray(data.segments[0])[-24:-4]
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
    np.testing.assert_allclose(written[[f"s{i}" for i in range(6)]].to_numpy(), from_csv[0, :, :, 0], rtol=1e-5)

    # what predict refuses: another number of sensors, grid data, an array of the wrong rank
    with pytest.raises(ValueError, match=r"trained on 6 sensors.*has 5"):
        predict(tmp_path / "run", history[:, :5])
    with pytest.raises(ValueError, match=r"sensor data.*input is grid data"):
        predict(tmp_path / "run", from_numpy(np.zeros((8, 1, 4, 4), np.float32), layout="TCHW"))
    with pytest.raises(ValueError, match=r"predict expects \(B, T, N, C\)"):
        predict(tmp_path / "run", np.zeros(20, np.float32))


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


def test_parameter_free_baseline_takes_no_training_step(tmp_path, monkeypatch):
    import pandas as pd

    from stpatch.engine.module import ForecastModule

    def no_training_step(self, batch, batch_idx):
        raise AssertionError("a model without parameters was trained")

    monkeypatch.setattr(ForecastModule, "training_step", no_training_step)
    config = tiny_grid_config(tmp_path / "run", max_epochs=3)
    config["model"] = {"name": "persistence"}
    result = train(config)
    for path in (result.best_checkpoint, result.last_checkpoint):
        ckpt = read_checkpoint(path)
        assert ckpt["global_step"] == 0 and ckpt["epoch"] == 0
        assert not ckpt.get("optimizer_states")  # no optimiser was ever built
    logged = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert "val_loss" in logged.columns and not any(c.startswith("train_loss") for c in logged.columns)
    ev = evaluate(tmp_path / "run", figures=False)
    assert list(ev["per_horizon"]) == ["persistence"]
    x, y = digit_windows("test")
    np.testing.assert_allclose(ev["per_horizon"]["persistence"]["mse_per_frame"],
                               per_frame(np.repeat(x[:, -1:], 3, axis=1), y, 2), rtol=1e-4)


def test_mismatched_and_broken_checkpoints(tmp_path):
    from stpatch.datasets import from_numpy

    train(tiny_grid_config(tmp_path / "run", max_steps=1))
    with pytest.raises(ValueError, match="channel"):
        predict(tmp_path / "run", np.zeros((4, 3, 32, 32), dtype=np.float32))
    with pytest.raises(ValueError, match="last 4 steps"):
        predict(tmp_path / "run", np.zeros((2, 1, 32, 32), dtype=np.float32))
    with pytest.raises(ValueError, match=r"grid data.*input is sensor data"):
        predict(tmp_path / "run", from_numpy(np.zeros((6, 3, 1), np.float32), layout="TNC"))
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


def _wb1_acc(pred, target, clim, w):
    """WeatherBench 1's centred, latitude-weighted ACC of one lead time, pooled over windows and space."""
    fa, a = pred - clim, target - clim
    fa, a = fa - fa.mean(), a - a.mean()
    with np.errstate(invalid="ignore"):
        return np.sum(w * fa * a) / np.sqrt(np.sum(w * fa**2) * np.sum(w * a**2))


@pytest.fixture(scope="module")
def weather_run(tmp_path_factory):
    """A 2-step stpnet_tiny run on the ERA5 sample, scored beside persistence and climatology, and the
    same test windows in NumPy: ``(ev, y, forecasts, climatology of each target, latitude weights)``."""
    from stpatch.datasets import from_numpy, load, make_datamodule

    require("weather/era5_t2m_2019-03_uk.nc")
    run_dir = tmp_path_factory.mktemp("weather") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STPATCH_DATA_DIR", str(DATA_DIR))
        train({"data": {"name": "era5_uk_t2m", "t_in": 6, "t_out": 3, "batch_size": 16},
               "model": {"name": "stpnet_tiny"},
               "train": {"max_steps": 2, "seed": 0, "progress": False},
               "run_dir": str(run_dir)})
        ev = evaluate(run_dir, baselines=["persistence", "climatology"], figures=False)
        data = load("era5_uk_t2m")
    # the climatology, in NumPy: the mean of the training windows' input frames by hour of day (a
    # frame counts once per window that holds it, as the windows are what the baseline is fitted on)
    dm = make_datamodule(data, t_in=6, t_out=3)
    dm.setup()
    series = np.asarray(data.segments[0], dtype=np.float64)  # (T, 1, H, W)
    hour = data.times[0].astype("datetime64[h]").astype(np.int64) % 24
    counts = np.zeros(len(series))
    for _, start in dm.train_dataset.index:
        counts[start : start + 6] += 1
    clim = np.stack([np.average(series[hour == h], axis=0, weights=counts[hour == h]) for h in range(24)])
    starts = np.array([start for _, start in dm.test_dataset.index])
    assert ev["windows"] == len(starts)
    x = np.stack([series[s : s + 6] for s in starts])
    y = np.stack([series[s + 6 : s + 9] for s in starts])
    c = np.stack([clim[hour[s + 6 : s + 9]] for s in starts])  # the climatology of each target step
    inputs = from_numpy([a.astype(np.float32) for a in x], layout="TCHW",
                        times=[data.times[0][s : s + 6] for s in starts])
    forecasts = {"persistence": np.repeat(x[:, -1:], 3, axis=1), "climatology": c,
                 "stpnet_tiny": predict(run_dir, inputs).astype(np.float64)}
    w = np.cos(np.deg2rad(np.asarray(data.lat, dtype=np.float64)))
    return ev, y, forecasts, c, (w / w.mean())[:, None]


def _lat_weighted_rmse(f, y, w):
    """Per window: sqrt of the latitude-weighted mean squared error over H, W; then the window mean."""
    return np.sqrt((w * (f - y) ** 2).mean(axis=(-2, -1)) / w.mean()).mean(axis=(0, 2))


def test_weather_evaluation_scores_rmse_and_a_finite_acc(weather_run):
    ev, y, forecasts, _, w = weather_run
    assert ev["suite"] == "weather"
    for name in ("stpnet_tiny", "persistence", "climatology"):
        assert set(ev["per_horizon"][name]) == {"lat_weighted_rmse", "lat_weighted_acc"}
    for name in ("stpnet_tiny", "persistence"):
        np.testing.assert_allclose(ev["per_horizon"][name]["lat_weighted_rmse"],
                                   _lat_weighted_rmse(forecasts[name], y, w), rtol=1e-4, err_msg=name)
        assert np.isfinite(ev["per_horizon"][name]["lat_weighted_acc"]).all(), name
    assert ev["mean"]["persistence"]["lat_weighted_acc"] > 0.3
    # the climatology is ACC's reference: its anomaly is zero everywhere, a correlation with nothing
    # to correlate, reported as undefined (NaN) rather than as a number
    assert np.isnan(ev["per_horizon"]["climatology"]["lat_weighted_acc"]).all()


def test_weather_acc_and_climatology_equal_numpy_with_the_hour_of_day_climatology(weather_run):
    ev, y, forecasts, c, w = weather_run
    np.testing.assert_allclose(ev["per_horizon"]["climatology"]["lat_weighted_rmse"],
                               _lat_weighted_rmse(forecasts["climatology"], y, w), rtol=1e-4)
    for name, f in forecasts.items():
        acc = [_wb1_acc(f[:, k, 0], y[:, k, 0], c[:, k, 0], w) for k in range(3)]
        np.testing.assert_allclose(ev["per_horizon"][name]["lat_weighted_acc"], acc, rtol=1e-4, atol=1e-6,
                                   err_msg=name)


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
    # a run killed before its logger wrote a row leaves an empty metrics.csv: the resume keeps its own rows
    aside = _set_aside(current)
    aside.write_text("")
    pd.DataFrame({"step": [5]}).to_csv(current, index=False)
    _join_csv(aside, current)
    assert pd.read_csv(current)["step"].tolist() == [5] and not aside.exists()


class RecordLearningRate(Callback):
    """The learning rate after every optimiser step."""

    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_cosine_under_a_time_budget_anneals_by_the_epochs_when_they_end_first(tmp_path):
    # a run whose epochs end long before its wall-clock budget must still anneal to the end of the
    # cosine (2 % of the rate); annealing by elapsed time alone would stop it at almost the full rate
    record = RecordLearningRate()
    train(tiny_grid_config(tmp_path / "run", max_epochs=30, max_time="01:00:00", lr=1e-3), callbacks=[record])
    assert len(record.rates) >= 100  # 4 steps per epoch; the warm-up is 50 steps
    peak, last = max(record.rates), record.rates[-1]
    assert peak > 0.4e-3 and last < 0.05e-3, (peak, last)
    assert record.rates.index(peak) < len(record.rates) // 2
