"""The data guard's catalogue (issue 17): input that makes no sense, at every entry point, gets the exact
error, warning or masked result the policy states, and nothing the user had is overwritten or half-written.

Runs are tiny and weight-free (``persistence``: training only validates), shared per module:
a radar-like grid of rain rates (mm/h, NaN = no coverage), a wide CSV sensor table (mph) and moving digits.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from typer.testing import CliRunner

import stpatch
from stpatch.cli import app
from stpatch.data import DataGuardError, DataGuardWarning, input_batch
from stpatch.data.adapters import from_csv, from_numpy, from_video, from_xarray
from stpatch.engine.config import ConfigError

try:
    from test_engine_run import tiny_grid_config
except ImportError:  # tests/ imported as a package
    from tests.test_engine_run import tiny_grid_config

STEP = np.timedelta64(5, "m")
runner = CliRunner()
SENSORS = [f"s{i}" for i in range(5)]


# ============================================================================ data and runs
def rain(steps=60, size=12, seed=0, start="2024-06-01T12:00", step=STEP, x0=0.0) -> object:
    """Rain rates ``(T, 1, size, size)`` in mm/h; the first 3 columns are outside the radar's coverage (NaN)."""
    values = np.random.default_rng(seed).gamma(0.5, 2.0, (steps, 1, size, size)).astype(np.float32)
    values[..., :3] = np.nan
    times = np.datetime64(start, "ns") + np.arange(steps) * step
    coords = {"y": np.arange(size) * 1000.0, "x": x0 + np.arange(size) * 1000.0}
    return from_numpy(values, layout="TCHW", times=times, channels=["rain_rate"], coords=coords, name="my_radar",
                      attrs={"units": "mm/h", "field": "precip", "suite": "radar"})


def with_values(data, values):
    """``data`` with other values (same layout, times and attributes)."""
    return data.replace(segments=[np.asarray(values)])


def sensor_table(path, steps=120, sensors=SENSORS, start="2024-01-01", step="30min", times=None):
    """A wide CSV: a time column and one speed column per sensor, ~ 50 mph with a daily cycle."""
    t = np.arange(steps)
    values = 50 + 10 * np.sin(2 * np.pi * t / 48)[:, None] + np.random.default_rng(0).normal(0, 1, (steps, len(sensors)))
    table = pd.DataFrame(values, columns=list(sensors))
    table.insert(0, "time", pd.date_range(start, periods=steps, freq=step) if times is None else times)
    table.to_csv(path, index=False)
    return path


def speeds(path, **kw):
    data = from_csv(path, **kw)
    data.attrs["units"] = "mph"
    return data


def persistence_config(run_dir, t_in, t_out, **data):
    return {"data": {"name": "my_data", "t_in": t_in, "t_out": t_out, "batch_size": 4, "split": [0.6, 0.2, 0.2], **data},
            "model": {"name": "persistence"}, "train": {"max_epochs": 1, "seed": 0, "progress": False},
            "eval": {"baselines": ["persistence"], "figures": False}, "run_dir": str(run_dir)}


@pytest.fixture(scope="module")
def radar_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("radar") / "run"
    stpatch.train(persistence_config(run_dir, 4, 3), data=rain())
    return run_dir


@pytest.fixture(scope="module")
def sensor_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sensor")
    stpatch.train(persistence_config(folder / "run", 6, 4), data=speeds(sensor_table(folder / "speeds.csv")))
    return folder / "run"


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("digits") / "run"
    config = tiny_grid_config(run_dir)
    config["model"] = {"name": "persistence"}
    stpatch.train(config)
    return run_dir


def recent(seed=1, **kw):
    """Six new frames of rain, continuing the training times."""
    return rain(steps=6, seed=seed, start="2024-06-01T18:00", **kw)


def unchanged(folder, before: dict) -> None:
    """Every file of ``before`` (name -> bytes) is still there, byte for byte, and no temporary file is left."""
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(before), names
    for name, content in before.items():
        assert (folder / name).read_bytes() == content, f"{name} was changed"


# ============================================================================ from_numpy
@pytest.mark.parametrize("values, message", [
    (np.zeros((5, 4, 4), bool), r"segment 0 holds bool values; expected numbers \(float, or integer\)"),
    (np.zeros((5, 4, 4), complex), r"holds complex128 values; expected numbers"),
    (np.full((5, 4, 4), "1.0"), r"holds <U3 values; expected numbers"),
    (np.zeros((0, 4, 4), np.float32), r"shape \(0, 1, 4, 4\): no steps; expected at least one of each of steps, channels"),
    (np.zeros((5, 4, 0), np.float32), r"shape \(5, 1, 4, 0\): no columns"),
])
def test_from_numpy_refuses_values_that_are_not_numbers_and_empty_axes(values, message):
    with pytest.raises(DataGuardError, match=message):
        from_numpy(values, layout="THW")


def test_from_numpy_refuses_a_sensor_table_without_sensors():
    with pytest.raises(DataGuardError, match=r"shape \(5, 0, 1\): no sensors"):
        from_numpy(np.zeros((5, 0)), layout="TN")


@pytest.mark.parametrize("times, message", [
    (["2024-01-01T00:00", "2024-01-01T01:00", "2024-01-01T01:00", "2024-01-01T03:00"],
     r"the time of step 2 \(2024-01-01T01:00:00.000000000\) repeats the time of step 1 .* \(1 repeated, 0 out of order\)"),
    (["2024-01-01T00:00", "2024-01-01T02:00", "2024-01-01T01:00", "2024-01-01T03:00"],
     r"the time of step 2 \(2024-01-01T01:00:00.000000000\) comes before the time of step 1 .*sort the rows by time"),
    (["2024-01-01T00:00", "NaT", "2024-01-01T02:00", "2024-01-01T03:00"],
     r"1 missing time\(s\) \(NaT\), the first at step 1"),
])
def test_from_numpy_refuses_repeated_unsorted_and_missing_times(times, message):
    with pytest.raises(DataGuardError, match=message):
        from_numpy(np.zeros((4, 3)), layout="TN", times=np.array(times, dtype="datetime64[ns]"))


def test_from_numpy_nan_and_a_false_mask_become_masked_values():
    values = np.ones((4, 3), np.float32)
    values[1, 2] = np.nan
    mask = np.ones((4, 3), bool)
    mask[3, 0] = False
    batch = input_batch(from_numpy(values, layout="TN", mask=mask), t_in=4)
    observed = batch["x_mask"][0, :, :, 0].numpy()
    assert (~observed).sum() == 2 and not observed[1, 2] and not observed[3, 0]
    assert batch["x"][0, 1, 2, 0] == 0.0  # never NaN in the model's input


def test_from_numpy_times_of_another_length_are_refused():
    with pytest.raises(ValueError, match=r"segment 0 has 4 steps but its times have shape \(3,\)"):
        from_numpy(np.zeros((4, 3)), layout="TN", times=np.arange(3).astype("datetime64[h]"))


# ============================================================================ from_xarray
def rain_netcdf(path, values=None, times=None, space=("y", "x")):
    """Rain rates ``(time, *space)`` in a NetCDF file, with CF units and valid_min."""
    values = np.random.default_rng(0).gamma(0.5, 2.0, (6, 4, 5)).astype(np.float32) if values is None else values
    times = pd.date_range("2024-06-01", periods=len(values), freq="5min") if times is None else times
    coords = {"time": times, space[0]: np.arange(values.shape[1] * 1.0), space[1]: np.arange(values.shape[2] * 1.0)}
    xr.Dataset({"rain": (("time", *space), values, {"units": "mm/h", "valid_min": 0.0})}, coords=coords).to_netcdf(path)
    return path


def test_from_xarray_refuses_unsorted_times_in_a_file(tmp_path):
    times = pd.DatetimeIndex(["2024-06-01T00:00", "2024-06-01T00:10", "2024-06-01T00:05", *pd.date_range(
        "2024-06-01T00:15", periods=3, freq="5min")])
    rain_netcdf(tmp_path / "rain.nc", times=times)
    with pytest.raises(DataGuardError, match=r"'rain': segment 0: the time of step 2 .* comes before the time of step 1"):
        from_xarray(tmp_path / "rain.nc", space=("y", "x"))


def test_from_xarray_reads_the_variables_cf_range_and_units(tmp_path):
    from stpatch.data.profile import valid_ranges

    data = from_xarray(rain_netcdf(tmp_path / "rain.nc"), space=("y", "x"))
    assert valid_ranges(data) == [{"units": "mm/h", "valid_range": [0.0, None],
                                   "range_source": "the variable's valid_range attribute"}]


def test_from_xarray_file_without_the_dimensions_names_them(tmp_path):
    xr.Dataset({"rain": (("t", "row"), np.zeros((3, 4)))}).to_netcdf(tmp_path / "odd.nc")
    with pytest.raises(ValueError, match=r"no variable has the dimensions \('time', 'y', 'x'\); found \{'rain': \('t', 'row'\)\}"):
        from_xarray(tmp_path / "odd.nc", space=("y", "x"))


def test_inf_in_a_netcdf_reads_lazily_but_predict_refuses_it(tmp_path, radar_run):
    values = np.random.default_rng(0).gamma(0.5, 2.0, (6, 12, 12)).astype(np.float32)
    values[5, 2, 7] = np.inf
    path = rain_netcdf(tmp_path / "rain.nc", values=values, space=("latitude", "longitude"))
    assert from_xarray(path).lazy  # reading is lazy: nothing is judged yet
    with pytest.raises(DataGuardError, match=r"channel 'rain_rate' holds 1 infinite value\(s\) \(the first \+inf at "
                                             r"segment 0, step 5 \(2024-06-01T00:25:00.000000000\), row 2, column 7\)"):
        stpatch.predict(radar_run, path, tmp_path / "out.nc")
    assert not (tmp_path / "out.nc").exists()


# ============================================================================ from_csv
def test_from_csv_empty_file_and_header_only(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match=r"empty\.csv: cannot read as CSV \(EmptyDataError"):
        from_csv(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("time,s0,s1\n")
    with pytest.raises(ValueError, match=r"header\.csv: the CSV has no rows"):
        from_csv(tmp_path / "header.csv")


def test_from_csv_text_in_a_sensor_column_is_refused(tmp_path):
    (tmp_path / "t.csv").write_text("time,s0,s1\n2024-01-01,1.0,fast\n2024-01-02,2.0,slow\n")
    with pytest.raises(ValueError, match=r"wide layout expects numeric sensor columns, but \['s1'\] are not numeric"):
        from_csv(tmp_path / "t.csv")


@pytest.mark.filterwarnings("ignore:Could not infer format")
def test_from_csv_unreadable_dates_are_refused(tmp_path):
    (tmp_path / "t.csv").write_text("time,s0\nmonday,1.0\ntuesday,2.0\n")
    with pytest.raises(ValueError, match=r"column 'time' cannot be read as dates"):
        from_csv(tmp_path / "t.csv")


def test_from_csv_repeated_and_unsorted_timestamps_are_refused(tmp_path):
    times = list(pd.date_range("2024-01-01", periods=4, freq="30min"))
    sensor_table(tmp_path / "dup.csv", steps=4, times=[times[0], times[1], times[1], times[3]])
    with pytest.raises(DataGuardError, match=r"'dup': segment 0: the time of step 2 .* repeats the time of step 1"):
        from_csv(tmp_path / "dup.csv")
    sensor_table(tmp_path / "order.csv", steps=4, times=[times[0], times[2], times[1], times[3]])
    with pytest.raises(DataGuardError, match=r"'order': .* comes before .* keep one row per time"):
        from_csv(tmp_path / "order.csv")


def test_from_csv_long_table_repeated_pair_is_refused_and_absent_rows_are_masked(tmp_path):
    rows = [("2024-01-01T00:00", "a", 1.0), ("2024-01-01T00:00", "b", 2.0), ("2024-01-01T00:30", "a", 3.0)]
    pd.DataFrame(rows, columns=["time", "sensor", "value"]).to_csv(tmp_path / "long.csv", index=False)
    data = from_csv(tmp_path / "long.csv", layout="long")
    observed = input_batch(data, t_in=2)["x_mask"][0, :, :, 0].numpy()
    assert observed.tolist() == [[True, True], [True, False]]  # b has no row at 00:30: masked
    pd.DataFrame([*rows, rows[0]], columns=["time", "sensor", "value"]).to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(ValueError, match=r"2 rows repeat a \(time, sensor\) pair, e\.g\. rows 0 \.\. with "
                                         r"\(2024-01-01T00:00:00.000000000, 'a'\); expected one row per time and sensor"):
        from_csv(tmp_path / "dup.csv", layout="long")


# ============================================================================ from_video
def test_from_video_broken_file_and_missing_file(tmp_path):
    (tmp_path / "clip.gif").write_bytes(b"GIF89a")
    with pytest.raises(ValueError, match=r"clip\.gif: cannot read as video"):
        from_video(tmp_path / "clip.gif")
    with pytest.raises(FileNotFoundError, match="no such video file"):
        from_video(tmp_path / "none.gif")


def test_from_video_uint8_frames_become_intensities_the_guard_knows(tmp_path, digits_run):
    iio = pytest.importorskip("imageio.v3")
    frames = (np.random.default_rng(0).random((6, 32, 32)) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "clip.gif", frames, duration=100, loop=0)
    data = from_video(tmp_path / "clip.gif")
    assert data.segments[0].dtype == np.float32 and data.attrs["valid_range"] == (0.0, 1.0)
    forecast = stpatch.predict(digits_run, tmp_path / "clip.gif")
    np.testing.assert_allclose(forecast[0, :, 0], np.repeat(frames[-1:] / 255.0, 3, axis=0), atol=1e-6)


# ============================================================================ predict
def test_predict_entirely_nan_radar_input_is_refused(radar_run, tmp_path):
    x = recent()
    with pytest.raises(DataGuardError, match=r"the last 4 steps of segment 0 \(the forecast's input\) have no observed "
                                             r"value at all .* step 2 \(2024-06-01T18:10:00.000000000\): 100 %"):
        stpatch.predict(radar_run, with_values(x, np.full((6, 1, 12, 12), np.nan, np.float32)))


def test_predict_inf_is_an_error_not_a_missing_value(radar_run):
    values = recent().segments[0].copy()
    values[4, 0, 5, 6] = -np.inf
    with pytest.raises(DataGuardError, match=r"holds 1 infinite value\(s\) \(the first -inf at segment 0, step 4 .*row 5, "
                                             r"column 6\); expected finite numbers, NaN where a value is missing"):
        stpatch.predict(radar_run, with_values(recent(), values))


def test_predict_negative_rain_is_physically_impossible(radar_run):
    values = recent().segments[0].copy()
    values[5, 0, 3:, 3] = -100.0
    with pytest.raises(DataGuardError, match=r"channel 'rain_rate' has 9 value\(s\) below the physically valid minimum 0 "
                                             r"mm/h \(units mm/h\): the lowest is -100.*Expected rain_rate >= 0 mm/h"):
        stpatch.predict(radar_run, with_values(recent(), values))


def test_predict_1e30_warns_and_strict_refuses_without_touching_the_output(radar_run, tmp_path):
    values = recent().segments[0].copy()
    values[5, 0, 4, 4] = 1e30
    x = with_values(recent(), values)
    with pytest.warns(DataGuardWarning, match=r"1 value\(s\) far above what training saw \(up to 1e\+30 mm/h, the first at "
                                              r"segment 0, step 5 .*row 4, column 4; training range \[[0-9.e-]+, 15\.\d+\] mm/h\)"):
        forecast = stpatch.predict(radar_run, x)
    assert forecast[0, 0, 0, 4, 4] == pytest.approx(1e30)  # persistence: the warning is the only defence
    np.save(tmp_path / "forecast.npy", np.zeros(3))
    before = {"forecast.npy": (tmp_path / "forecast.npy").read_bytes()}
    with pytest.raises(DataGuardError, match=r"far above what training saw.*refused because strict is on"):
        stpatch.predict(radar_run, x, tmp_path / "forecast.npy", strict=True)
    unchanged(tmp_path, before)


def test_predict_values_beyond_float32_are_refused(radar_run):
    values = recent().segments[0].astype(np.float64)
    values[5, 0, 4, 4] = 1e39
    with pytest.raises(DataGuardError, match=r"1 value\(s\) beyond float32's range \(e\.g\. 1e\+39 at segment 0, step 5"):
        stpatch.predict(radar_run, with_values(recent(), values))


def test_predict_sparse_input_is_refused_unless_max_missing_allows_it(radar_run):
    values = recent().segments[0].copy()
    values[..., :8] = np.nan  # 8 of 12 columns: 66.7 % missing, the training split had 25 %
    x = with_values(recent(), values)
    with pytest.raises(DataGuardError, match=r"66\.7 % of its 576 values missing, more than the limit of 50 %.*--max-missing"):
        stpatch.predict(radar_run, x)
    forecast = stpatch.predict(radar_run, x, max_missing=0.9)
    assert np.isnan(forecast[..., :8]).all() and np.isfinite(forecast[..., 8:]).all()


def test_predict_keeps_no_coverage_as_nan_in_the_radar_forecast(radar_run):
    values = recent().segments[0].copy()
    values[2:5, 0, 6, 6] = np.nan  # a pixel seen only in the last input step: covered
    values[2:, 0, 7, 7] = np.nan   # a pixel never seen in the input steps: no coverage
    forecast = stpatch.predict(radar_run, with_values(recent(), values))
    nan = np.isnan(forecast[0, :, 0])
    assert nan[:, :, :3].all() and nan[:, 7, 7].all()
    assert nan.sum() == 3 * (12 * 3 + 1)  # nowhere else
    np.testing.assert_allclose(forecast[0, :, 0, 6, 6], values[5, 0, 6, 6], rtol=1e-5)


def test_predict_another_time_step_or_grid_warns_and_strict_refuses(radar_run):
    slower = recent(step=np.timedelta64(10, "m"))
    with pytest.warns(DataGuardWarning, match=r"the input has a time step of 10 min, the model was trained on steps of 5 min"):
        stpatch.predict(radar_run, slower)
    with pytest.raises(DataGuardError, match=r"time step of 10 min.*refused because strict is on"):
        stpatch.predict(radar_run, slower, strict=True)
    elsewhere = recent(x0=100_000.0)
    with pytest.warns(DataGuardWarning, match=r"the input spans x 1e\+05\.\.1\.11e\+05, the model was trained on x 0\.\.1\.1e\+04"):
        stpatch.predict(radar_run, elsewhere)


def test_predict_integers_convert_only_where_the_scale_is_known(radar_run, digits_run):
    with pytest.raises(DataGuardError, match=r"the input holds int64 values, but the run was trained on float32 values "
                                             r"\(rain_rate \(mm/h\)\) and the scale of integers is not known"):
        stpatch.predict(radar_run, with_values(recent(), np.ones((6, 1, 12, 12), np.int64)))
    frames = (np.random.default_rng(2).random((6, 1, 32, 32)) * 255).astype(np.uint8)
    np.testing.assert_allclose(stpatch.predict(digits_run, frames),
                               stpatch.predict(digits_run, frames.astype(np.float32) / 255), atol=1e-6)
    with pytest.raises(DataGuardError, match=r"holds int16 values.*scale of integers is not known"):
        stpatch.predict(digits_run, frames.astype(np.int16))


def test_predict_sensor_table_with_a_missing_sensor_is_refused(sensor_run, tmp_path):
    sensor_table(tmp_path / "recent.csv", steps=10, sensors=["s0", "s1", "s2", "s4"])
    with pytest.raises(DataGuardError, match=r"trained on 5 sensors; the input has 4, lacking \['s3'\]\. Give one column "
                                             r"per training sensor \(NaN where a sensor has no reading\)"):
        stpatch.predict(sensor_run, tmp_path / "recent.csv", tmp_path / "forecast.csv")
    assert not (tmp_path / "forecast.csv").exists()


def test_predict_sensor_columns_in_another_order_are_put_in_the_training_order(sensor_run, tmp_path):
    sensor_table(tmp_path / "ordered.csv", steps=10)
    table = pd.read_csv(tmp_path / "ordered.csv")
    table[["time", "s3", "s0", "s4", "s1", "s2"]].to_csv(tmp_path / "shuffled.csv", index=False)
    expected = stpatch.predict(sensor_run, tmp_path / "ordered.csv")
    np.testing.assert_allclose(stpatch.predict(sensor_run, tmp_path / "shuffled.csv"), expected)
    np.testing.assert_allclose(expected[0, 0, :, 0], table[SENSORS].to_numpy()[-1], rtol=1e-5)


def test_predict_with_a_checkpoint_of_another_data_kind(sensor_run, radar_run):
    with pytest.raises(DataGuardError, match=r"the checkpoint forecasts sensor data \(B, T, N, C\), but the input is grid data"):
        stpatch.predict(sensor_run, from_numpy(np.zeros((6, 1, 4, 4), np.float32)))
    with pytest.raises(DataGuardError, match=r"trained on 1 channel\(s\); the input has 2"):
        stpatch.predict(radar_run, np.ones((6, 2, 12, 12), np.float32))


def test_a_checkpoint_of_another_model_is_refused(digits_run, tmp_path):
    from stpatch.engine.checkpoint import read_checkpoint

    ckpt = read_checkpoint(digits_run / "checkpoints" / "best.ckpt")
    ckpt["hyper_parameters"]["model_options"] = {"name": "stpnet_tiny"}
    torch.save(ckpt, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match=r"other\.ckpt: the weights do not fit the model \{'name': 'stpnet_tiny'\}"):
        stpatch.predict(tmp_path / "other.ckpt", np.zeros((6, 1, 32, 32), np.float32))
    (tmp_path / "broken.ckpt").write_bytes(b"\x80\x04 half a checkpoint")
    with pytest.raises(ValueError, match=r"broken\.ckpt could not be read as a checkpoint"):
        stpatch.predict(tmp_path / "broken.ckpt", np.zeros((6, 1, 32, 32), np.float32))


def test_a_run_from_before_profiles_still_predicts_and_info_says_so(radar_run, tmp_path):
    from stpatch.engine.checkpoint import read_checkpoint

    ckpt = read_checkpoint(radar_run / "checkpoints" / "best.ckpt")
    del ckpt["stpatch"]["profile"]
    torch.save(ckpt, tmp_path / "old.ckpt")
    values = recent().segments[0].copy()
    values[5, 0, 4, 4] = -1.0  # judged by the input's own declared range (mm/h) when the run has no profile
    with pytest.raises(DataGuardError, match=r"below the physically valid minimum 0 mm/h"):
        stpatch.predict(tmp_path / "old.ckpt", with_values(recent(), values))
    assert stpatch.predict(tmp_path / "old.ckpt", recent()).shape == (1, 3, 1, 12, 12)
    result = runner.invoke(app, ["info", str(tmp_path / "old.ckpt")])
    assert result.exit_code == 0 and "no data profile stored" in result.output


# ============================================================================ evaluate
def test_evaluate_refuses_inf_in_the_test_split_and_keeps_eval_json(radar_run):
    before = (radar_run / "eval.json").read_bytes() if (radar_run / "eval.json").exists() else None
    data = rain()
    values = data.segments[0].copy()
    values[-1, 0, 5, 5] = np.inf
    with pytest.raises(DataGuardError, match=r"the test split: channel 'rain_rate' holds 1 infinite value\(s\) \(the first "
                                             r"\+inf at segment 0, step 59"):
        stpatch.evaluate(radar_run, data=with_values(data, values))
    after = (radar_run / "eval.json").read_bytes() if (radar_run / "eval.json").exists() else None
    assert after == before


def test_evaluate_far_values_warn_and_strict_refuses(radar_run):
    data = rain()
    values = data.segments[0].copy()
    values[-2, 0, 5, 5] = 5e3
    far = with_values(data, values)
    with pytest.warns(DataGuardWarning, match=r"the test split: channel 'rain_rate' has 1 value\(s\) far above what training saw"):
        result = stpatch.evaluate(radar_run, data=far, write=False, figures=False)
    assert result["suite"] == "radar"
    with pytest.raises(DataGuardError, match=r"far above what training saw.*refused because strict is on"):
        stpatch.evaluate(radar_run, data=far, write=False, figures=False, strict=True)


def test_evaluate_refuses_data_of_another_kind_or_missing_sensors(radar_run, sensor_run, tmp_path):
    table = speeds(sensor_table(tmp_path / "speeds.csv"))
    with pytest.raises(DataGuardError, match=r"the checkpoint forecasts grid data \(B, T, C, H, W\), but the evaluation "
                                             r"data is sensor data"):
        stpatch.evaluate(radar_run, data=table, write=False, figures=False)
    four = speeds(sensor_table(tmp_path / "four.csv", sensors=SENSORS[:4]))
    with pytest.raises(DataGuardError, match=r"trained on 5 sensors; the evaluation data has 4, lacking \['s4'\]"):
        stpatch.evaluate(sensor_run, data=four, write=False, figures=False)


# ============================================================================ train
def test_train_refuses_inf_and_impossible_values_before_any_checkpoint(tmp_path):
    data = rain()
    values = data.segments[0].copy()
    values[3, 0, 4, 4] = np.inf
    with pytest.raises(DataGuardError, match=r"the training split of 'my_radar': channel 'rain_rate' holds 1 infinite"):
        stpatch.train(persistence_config(tmp_path / "inf", 4, 3), data=with_values(data, values))
    assert not (tmp_path / "inf" / "checkpoints").exists() and not (tmp_path / "inf" / "profile.json").exists()
    values[3, 0, 4, 4] = -9999.0  # a fill value for "missing"
    with pytest.raises(DataGuardError, match=r"below the physically valid minimum 0 mm/h .*the lowest is -9999.*"
                                             r"a missing value is NaN, not a fill value"):
        stpatch.train(persistence_config(tmp_path / "fill", 4, 3), data=with_values(data, values))


def test_train_on_data_with_no_observed_value_is_refused(tmp_path):
    data = rain(steps=20)
    with pytest.raises(ValueError, match=r"the train split has no window of t_in \+ t_out = 7 steps.*all-missing windows dropped"):
        stpatch.train(persistence_config(tmp_path / "run", 4, 3), data=with_values(data, np.full((20, 1, 12, 12), np.nan, np.float32)))


@pytest.mark.parametrize("override, message", [
    ("train.max_epoch=3", r"unknown key\(s\) config\.train\.max_epoch; valid keys:"),
    ("model.dimm=3", r"unknown option\(s\) model\.dimm for model 'stpnet'; valid options:"),
    ("eval.suite=weathr", r"eval\.suite 'weathr' is not a metric suite"),
    ("eval.baselines=[persistance]", r"eval\.baselines: 'persistance' not registered model\(s\)"),
    ("train.loss=huber2", r"train\.loss must be one of .*got 'huber2'"),
])
def test_config_errors_come_before_any_data_is_loaded(override, message, tmp_path, monkeypatch):
    import stpatch.engine.training as training

    monkeypatch.setattr(training, "make_data", lambda *a, **k: pytest.fail("data were loaded before the config was checked"))
    config = tiny_grid_config(tmp_path / "run")
    config["model"] = {"name": "stpnet"}
    with pytest.raises(ConfigError, match=message):
        stpatch.train(config, [override])
    assert not (tmp_path / "run").exists()


def test_profile_is_stored_with_the_run(radar_run):
    from stpatch.engine.runs import load_run

    profile = load_run(radar_run).profile
    assert json.loads((radar_run / "profile.json").read_text()) == profile
    (channel,) = profile["channels"]
    train_values = rain().segments[0][:36]  # the 0.6 training share of 60 steps
    assert channel["name"] == "rain_rate" and channel["units"] == "mm/h" and channel["valid_range"] == [0.0, None]
    assert channel["missing"] == pytest.approx(0.25)
    assert channel["min"] == pytest.approx(np.nanmin(train_values)) and channel["max"] == pytest.approx(np.nanmax(train_values))
    assert channel["quantiles"]["0.5"] == pytest.approx(np.nanmedian(train_values), rel=1e-6)
    assert profile["no_coverage_nan"] and profile["step_seconds"] == 300 and profile["grid"]["shape"] == [12, 12]


# ============================================================================ the command line


def test_cli_model_option_typo_fails_before_data_load(tmp_path, monkeypatch):
    import stpatch.engine.training as training

    monkeypatch.setattr(training, "make_data", lambda *a, **k: pytest.fail("data were loaded before the config was checked"))
    result = runner.invoke(app, ["train", "--set", "model.name=stpnet", "--set", "model.dimm=3",
                                 "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2 and "error: unknown option(s) model.dimm for model 'stpnet'" in result.output
    assert "Traceback" not in result.output


def test_cli_predict_warns_and_strict_refuses(radar_run, tmp_path):
    values = recent().segments[0].copy()
    values[5, 0, 4, 4] = 1e30
    np.save(tmp_path / "in.npy", values)
    args = ["predict", "--checkpoint", str(radar_run), "--input", str(tmp_path / "in.npy")]
    result = runner.invoke(app, [*args, "--output", str(tmp_path / "out.npy")])
    assert result.exit_code == 0 and "warning: the input: channel 'rain_rate' has 1 value(s) far above" in result.output
    result = runner.invoke(app, [*args, "--output", str(tmp_path / "strict.npy"), "--strict"])
    assert result.exit_code == 2 and "error: the input: channel 'rain_rate'" in result.output
    assert not (tmp_path / "strict.npy").exists()
    values[:] = np.nan
    np.save(tmp_path / "nan.npy", values)
    result = runner.invoke(app, ["predict", "--checkpoint", str(radar_run), "--input", str(tmp_path / "nan.npy"),
                                 "--output", str(tmp_path / "nan_out.npy")])
    assert result.exit_code == 2 and "no observed value at all" in result.output


def test_cli_evaluate_takes_strict_and_info_shows_the_profile(digits_run, radar_run):
    result = runner.invoke(app, ["evaluate", "--run", str(digits_run), "--strict", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["windows"] == 8
    result = runner.invoke(app, ["info", str(radar_run)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "model: persistence" in lines
    assert "NaN means no coverage: the forecast stays NaN where the input had none" in lines
    row = next(line for line in lines if line.startswith("rain_rate"))
    assert row.split()[:4] == ["rain_rate", "mm/h", "[0,", "inf]"] and row.endswith("25.0 %")
    assert "valid range from: rain_rate: units mm/h" in lines
    result = runner.invoke(app, ["info", str(radar_run), "--json"])
    assert json.loads(result.output)["profile"]["channels"][0]["valid_range"] == [0.0, None]
