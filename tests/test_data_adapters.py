"""Adapters round-trip small files written here: NetCDF, Zarr, CSV (wide, long), GIF, npy/npz."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import stpatch.data as D


def make_field(T=30, H=5, W=6, with_nan=True):
    rng = np.random.default_rng(0)
    t = np.datetime64("2020-01-01T00:00", "ns") + np.arange(T) * np.timedelta64(1, "h")
    a = rng.normal(280, 5, (T, H, W)).astype(np.float32)
    b = rng.normal(0, 1, (T, H, W)).astype(np.float32)
    if with_nan:
        a[3, 1, 2] = np.nan
    return xr.Dataset(
        {"t2m": (("time", "latitude", "longitude"), a), "u10": (("time", "latitude", "longitude"), b)},
        coords={"time": t, "latitude": np.linspace(60, 50, H), "longitude": np.linspace(-5, 5, W)},
    )


# ----------------------------------------------------------------------------- numpy
@pytest.mark.parametrize(
    "layout, shape, seg_shape, kind",
    [
        ("TCHW", (9, 2, 4, 5), (9, 2, 4, 5), "grid"),
        ("THWC", (9, 4, 5, 3), (9, 3, 4, 5), "grid"),
        ("THW", (9, 4, 5), (9, 1, 4, 5), "grid"),
        ("TNC", (9, 7, 2), (9, 7, 2), "sensor"),
        ("TN", (9, 7), (9, 7, 1), "sensor"),
    ],
)
def test_from_numpy_layouts_are_views(layout, shape, seg_shape, kind):
    a = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    d = D.from_numpy(a, layout=layout)
    assert d.kind == kind and d.segments[0].shape == seg_shape
    assert np.shares_memory(d.segments[0], a)


def test_from_numpy_batch_times_mask_and_torch():
    a = torch.zeros(4, 6, 1, 3, 3)
    times = np.datetime64("2020-01-01") + np.arange(24).reshape(4, 6) * np.timedelta64(1, "h")
    mask = np.ones((4, 6, 1, 3, 3), bool)
    mask[2, 5] = False
    d = D.from_numpy(a, layout="BTCHW", times=times, mask=mask)
    assert d.num_segments == 4 and d.segments[2].shape == (6, 1, 3, 3)
    assert d.times[3][0] == times[3, 0]
    assert not d.mask[2][5].any() and d.mask[1].all()


def test_from_numpy_errors():
    with pytest.raises(ValueError, match=r"layout 'TCHW' expects 4 dims, found shape \(3, 4, 5\)"):
        D.from_numpy(np.zeros((3, 4, 5)), layout="TCHW")
    with pytest.raises(ValueError, match="unknown layout"):
        D.from_numpy(np.zeros((3, 4)), layout="XY")
    with pytest.raises(ValueError, match=r"times have shape \(5,\)"):
        D.from_numpy(np.zeros((3, 4)), layout="TN", times=np.arange(5).astype("datetime64[h]"))
    with pytest.raises(ValueError, match=r"adjacency should be \(4, 4\) for 4 sensors, found \(3, 3\)"):
        D.from_numpy(np.zeros((3, 4)), layout="TN", adjacency=np.eye(3))
    with pytest.raises(ValueError, match=r"\(4, 2\) latitude/longitude for 4 sensors, found \(5, 2\)"):
        D.from_numpy(np.zeros((3, 4)), layout="TN", coords=np.zeros((5, 2)))


# ----------------------------------------------------------------------------- xarray
def test_netcdf_roundtrip_lazy(tmp_path):
    ds = make_field()
    path = tmp_path / "field.nc"
    ds.to_netcdf(path)
    d = D.from_xarray(path, chunks=8)
    assert d.kind == "grid" and d.channels == ["t2m", "u10"]
    assert d.lazy and d.segments[0].chunks[0][:2] == (8, 8)
    assert d.segments[0].shape == (30, 2, 5, 6)
    np.testing.assert_array_equal(d.lat, ds.latitude.values)
    np.testing.assert_array_equal(d.times[0], ds.time.values)
    window = np.asarray(d.segments[0][10:14])
    np.testing.assert_array_equal(window[:, 1], ds.u10.values[10:14])
    dm = D.make_datamodule(d, t_in=4, t_out=2, batch_size=2, split=(0.6, 0.2, 0.2))
    b = next(iter(dm.train_dataloader()))
    assert b["x"].shape == (2, 4, 2, 5, 6) and "tod" in b
    # the NaN at step 3 becomes a False in the mask of every window that covers it
    ds0 = dm.train_dataset
    item = ds0[0]  # steps 0..5
    assert not bool(item["x_mask"][3, 0, 1, 2]) and int((~item["x_mask"]).sum()) == 1
    # one variable only
    d1 = D.from_xarray(path, variables="u10", chunks=None)
    assert d1.channels == ["u10"] and isinstance(d1.segments[0], np.ndarray)


@pytest.mark.filterwarnings("ignore:Consolidated metadata")
def test_zarr_roundtrip(tmp_path):
    ds = make_field(with_nan=False)
    path = tmp_path / "field.zarr"
    ds.to_zarr(path)
    d = D.from_xarray(path, variables=["t2m"])
    assert d.lazy and d.segments[0].shape == (30, 1, 5, 6)
    np.testing.assert_allclose(np.asarray(d.segments[0][5:9])[:, 0], ds.t2m.values[5:9])


def test_xarray_extra_dims_fold_into_channels_and_sensors():
    ds = make_field(with_nan=False)
    lev = xr.concat([ds.t2m, ds.t2m + 1], dim="level").assign_coords(level=[850, 500])
    d = D.from_xarray(xr.Dataset({"t": lev}))
    assert d.channels == ["t[level=850]", "t[level=500]"]
    np.testing.assert_allclose(d.segments[0][:, 1] - d.segments[0][:, 0], 1.0)
    st = xr.Dataset(
        {"flow": (("time", "station"), np.ones((10, 3)))},
        coords={
            "time": ds.time.values[:10],
            "station": ["a", "b", "c"],
            "lat": ("station", [1.0, 2, 3]),
            "lon": ("station", [4.0, 5, 6]),
        },
    )
    s = D.from_xarray(st, space=("station",))
    assert s.kind == "sensor" and s.segments[0].shape == (10, 3, 1)
    assert s.coords.shape == (3, 2) and s.attrs["sensor_ids"] == ["a", "b", "c"]


def test_xarray_windows_read_only_their_chunks():
    import dask.array as da

    class Counting:
        """An array-like that records which time steps are read."""

        def __init__(self, a):
            self.a, self.shape, self.dtype, self.ndim = a, a.shape, a.dtype, a.ndim
            self.steps = set()

        def __getitem__(self, idx):
            sl = idx[0] if isinstance(idx, tuple) else idx
            self.steps.update(range(*sl.indices(self.shape[0])))
            return self.a[idx]

    src = Counting(np.random.default_rng(0).normal(size=(400, 1, 4, 4)).astype(np.float32))
    lazy = da.from_array(src, chunks=(10, 1, 4, 4), asarray=False)
    ds = xr.Dataset(
        {"v": (("time", "c", "y", "x"), lazy)},
        coords={"time": np.datetime64("2020-01-01", "ns") + np.arange(400) * np.timedelta64(1, "h")},
    )
    d = D.from_xarray(ds["v"].isel(c=0).to_dataset(), space=("y", "x"))
    assert d.lazy
    w = D.WindowDataset(d, 6, 6, [(0, 200, 400)], empty_windows="keep", scaler=None)
    src.steps.clear()
    item = w[5]  # steps 205..216
    assert item["x"].shape == (6, 1, 4, 4)
    assert src.steps and min(src.steps) >= 200 and max(src.steps) < 220  # two chunks, not the file


def test_xarray_errors_name_file_and_names(tmp_path):
    path = tmp_path / "f.nc"
    make_field().to_netcdf(path)
    with pytest.raises(ValueError, match=r"f\.nc: variable 'sst' not found; the file has \['t2m', 'u10'\]"):
        D.from_xarray(path, variables=["sst"])
    with pytest.raises(ValueError, match=r"f\.nc: no variable has the dimensions \('time', 'lat', 'lon'\)"):
        D.from_xarray(path, space=("lat", "lon"))
    with pytest.raises(
        ValueError,
        match=r"variable 't2m' has dimensions \('time', 'latitude', 'longitude'\).*missing \['valid_time'\]",
    ):
        D.from_xarray(path, variables="t2m", time="valid_time")
    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"this is not a netcdf file" * 10)
    with pytest.raises(ValueError, match=r"bad\.nc: cannot open as NetCDF"):
        D.from_xarray(bad)
    with pytest.raises(FileNotFoundError, match="missing.nc"):
        D.from_xarray(tmp_path / "missing.nc")


# ----------------------------------------------------------------------------- CSV
def write_sensor_files(tmp_path, n=4, T=20):
    rng = np.random.default_rng(0)
    ids = [f"s{i}" for i in range(n)]
    times = pd.date_range("2021-03-01", periods=T, freq="5min")
    vals = rng.uniform(30, 60, (T, n)).round(2)
    vals[7, 2] = 0.0  # a missing reading
    wide = pd.DataFrame(vals, columns=ids)
    wide.insert(0, "timestamp", times)
    wide.to_csv(tmp_path / "wide.csv", index=False)
    locs = pd.DataFrame(
        {
            "sensor_id": ids[::-1],
            "latitude": np.arange(n)[::-1] + 30.0,
            "longitude": -np.arange(n)[::-1] - 100.0,
        }
    )
    locs.to_csv(tmp_path / "locs.csv", index=False)
    pd.DataFrame(np.eye(n)).to_csv(tmp_path / "adj.csv", index=False, header=False)
    return ids, times, vals


def test_csv_wide_with_coords_adjacency_and_null(tmp_path):
    ids, times, vals = write_sensor_files(tmp_path)
    d = D.from_csv(
        tmp_path / "wide.csv", coords=tmp_path / "locs.csv", adjacency=tmp_path / "adj.csv", null_value=0
    )
    assert d.kind == "sensor" and d.segments[0].shape == (20, 4, 1)
    np.testing.assert_allclose(d.segments[0][:, :, 0], vals, rtol=1e-6)
    np.testing.assert_array_equal(d.times[0], times.values)
    np.testing.assert_array_equal(d.coords[:, 0], [30, 31, 32, 33])  # reordered by sensor id
    assert d.attrs["sensor_ids"] == ids and d.adjacency.shape == (4, 4)
    dm = D.make_datamodule(d, t_in=3, t_out=3, batch_size=32, split=(0.7, 0.0, 0.3), empty_windows="keep")
    b = next(iter(dm.train_dataloader()))
    assert int((~b["y_mask"]).sum()) == 3 and int((~b["x_mask"]).sum()) == 3  # step 7 in 3 windows each


def test_csv_long_layout_with_two_channels(tmp_path):
    rows = []
    for t in pd.date_range("2021-01-01", periods=5, freq="h"):
        for s in ("b", "a"):
            if (t.hour, s) != (3, "a"):
                rows.append({"time": t, "sensor": s, "flow": t.hour * 10.0, "speed": 50.0})
    pd.DataFrame(rows).to_csv(tmp_path / "long.csv", index=False)
    d = D.from_csv(tmp_path / "long.csv", layout="long", value_col=["flow", "speed"])
    assert d.segments[0].shape == (5, 2, 2) and d.channels == ["flow", "speed"]
    assert d.attrs["sensor_ids"] == ["b", "a"]
    assert np.isnan(d.segments[0][3, 1]).all() and d.segments[0][4, 0, 0] == 40.0
    with pytest.raises(ValueError, match=r"column 'value' not found"):
        D.from_csv(tmp_path / "long.csv", layout="long")


def test_csv_inconsistent_adjacency_and_coords(tmp_path):
    write_sensor_files(tmp_path)
    pd.DataFrame(np.eye(3)).to_csv(tmp_path / "adj3.csv", index=False, header=False)
    with pytest.raises(
        ValueError,
        match=r"adj3\.csv: expected an adjacency matrix of shape \(4, 4\) for 4 sensors, found \(3, 3\)",
    ):
        D.from_csv(tmp_path / "wide.csv", adjacency=tmp_path / "adj3.csv")
    locs = pd.read_csv(tmp_path / "locs.csv").iloc[:3]
    locs.to_csv(tmp_path / "locs3.csv", index=False)
    with pytest.raises(ValueError, match=r"locs3\.csv: no coordinates for 1 of 4 sensors, e\.g\. \['s0'\]"):
        D.from_csv(tmp_path / "wide.csv", coords=tmp_path / "locs3.csv")
    (tmp_path / "text.csv").write_text("time,a\n2020-01-01,x\n2020-01-02,y\n")
    with pytest.raises(
        ValueError, match=r"text\.csv: wide layout expects numeric sensor columns, but \['a'\]"
    ):
        D.from_csv(tmp_path / "text.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match=r"empty\.csv: cannot read as CSV"):
        D.from_csv(tmp_path / "empty.csv")


# ----------------------------------------------------------------------------- video
def test_gif_roundtrip(tmp_path):
    import imageio.v3 as iio

    frames = (np.random.default_rng(0).random((6, 16, 20)) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "clip.gif", frames, duration=100, loop=0)
    d = D.from_video(tmp_path / "clip.gif")
    assert d.kind == "grid" and d.segments[0].shape == (6, 1, 16, 20) and d.channels == ["gray"]
    np.testing.assert_allclose(d.segments[0][:, 0], frames / 255.0, atol=1e-6)
    assert d.attrs["fps"] == pytest.approx(10.0)
    rgb = np.zeros((4, 8, 8, 3), np.uint8)
    rgb[..., 0] = 255
    rgb[:, :4, :, 2] = 128
    rgb[np.arange(4), np.arange(4), 0, 1] = 200  # frames differ (GIF writers merge equal frames)
    iio.imwrite(tmp_path / "rgb.gif", rgb, duration=50)
    c = D.from_video(tmp_path / "rgb.gif")
    assert c.segments[0].shape == (4, 3, 8, 8) and float(c.segments[0].max()) <= 1.0
    assert D.from_video(tmp_path / "rgb.gif", grayscale=True).segments[0].shape == (4, 1, 8, 8)
    (tmp_path / "broken.gif").write_bytes(b"GIF89a broken")
    with pytest.raises(ValueError, match=r"broken\.gif: cannot read as video"):
        D.from_video(tmp_path / "broken.gif")


def test_mp4_reads_with_the_video_extra(tmp_path):
    pytest.importorskip("av", reason="MP4 needs the video extra (PyAV): pip install 'stpatch[video]'")
    import imageio.v3 as iio

    frames = np.zeros((5, 32, 48, 3), np.uint8)
    for t in range(5):  # a bright square moving right: lossy codecs keep that much
        frames[t, 8:24, 4 + 6 * t : 20 + 6 * t] = 255
    iio.imwrite(tmp_path / "clip.mp4", frames, fps=5, codec="libx264")
    d = D.from_video(tmp_path / "clip.mp4")
    assert d.kind == "grid" and d.segments[0].shape == (5, 1, 32, 48)  # equal RGB channels -> gray
    column_of_max = d.segments[0][:, 0].mean(axis=1).argmax(axis=1)
    assert np.all(np.diff(column_of_max) > 0)


# ----------------------------------------------------------------------------- predict I/O
def test_read_array_file_npy_npz_and_errors(tmp_path):
    a = np.random.default_rng(0).random((8, 1, 4, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", a)
    d = D.read_array_file(tmp_path / "x.npy")
    assert d.segments[0].shape == (8, 1, 4, 4)
    np.testing.assert_array_equal(d.segments[0], a)
    s = D.read_array_file(tmp_path / "x.npy", layout="BTHW")
    assert s.num_segments == 8 and s.segments[0].shape == (1, 1, 4, 4)
    t = np.datetime64("2020-01-01", "ns") + np.arange(8) * np.timedelta64(10, "m")
    np.savez(tmp_path / "x.npz", x=a, times=t)
    z = D.read_array_file(tmp_path / "x.npz")
    np.testing.assert_array_equal(z.times[0], t)
    raw = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "trunc.npy").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(
        ValueError, match=r"trunc\.npy: cannot read as \.npy, the file is corrupt or truncated"
    ):
        D.read_array_file(tmp_path / "trunc.npy")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match=r"bad\.npz: cannot read as \.npz"):
        D.read_array_file(tmp_path / "bad.npz")
    (tmp_path / "x.xyz").write_text("?")
    with pytest.raises(ValueError, match=r"unsupported file type '\.xyz'"):
        D.read_array_file(tmp_path / "x.xyz")
    with pytest.raises(FileNotFoundError):
        D.read_array_file(tmp_path / "nothing.npy")


def test_write_forecast_netcdf_continues_time(tmp_path):
    path = tmp_path / "in.nc"
    make_field(with_nan=False).to_netcdf(path)
    like = D.read_array_file(path)
    fc = np.ones((3, 2, 5, 6), np.float32)
    out = D.write_forecast(tmp_path / "fc.nc", torch.from_numpy(fc), like=like)
    ds = xr.open_dataset(out)
    assert set(ds.data_vars) == {"t2m", "u10"} and ds.t2m.dims == ("time", "latitude", "longitude")
    last = like.times[0][-1]
    np.testing.assert_array_equal(ds.time.values, last + np.arange(1, 4) * np.timedelta64(1, "h"))
    np.testing.assert_array_equal(ds.latitude.values, like.lat)
    back = D.read_array_file(out)  # and it reads back as input
    assert back.segments[0].shape == (3, 2, 5, 6)
    ds.close()
    b = D.write_forecast(tmp_path / "fcb.nc", np.zeros((2, 3, 2, 5, 6)), like=like)
    with xr.open_dataset(b) as dsb:
        assert dsb.t2m.dims == ("sample", "lead_time", "latitude", "longitude")


def test_write_forecast_csv_npy_npz(tmp_path):
    write_sensor_files(tmp_path)
    like = D.read_array_file(tmp_path / "wide.csv")
    out = D.write_forecast(tmp_path / "fc.csv", np.full((2, 4, 1), 7.0), like=like)
    df = pd.read_csv(out, parse_dates=["time"])
    assert list(df.columns) == ["time", "s0", "s1", "s2", "s3"]
    assert df["time"].iloc[0] == pd.Timestamp(like.times[0][-1]) + pd.Timedelta("5min")
    back = D.read_array_file(out)
    assert back.segments[0].shape == (2, 4, 1) and back.attrs["sensor_ids"] == ["s0", "s1", "s2", "s3"]
    np.testing.assert_array_equal(
        np.load(D.write_forecast(tmp_path / "f.npy", np.ones((2, 4, 1)))), np.ones((2, 4, 1))
    )
    with np.load(D.write_forecast(tmp_path / "f.npz", np.ones((2, 4, 1)), like=like)) as z:
        assert z["forecast"].shape == (2, 4, 1) and z["times"].shape == (2,)
    with pytest.raises(ValueError, match="CSV output is for sensor data"):
        D.write_forecast(tmp_path / "g.csv", np.ones((2, 1, 3, 3)))


def test_prediction_roundtrip_input_batch_and_forecast(tmp_path):
    path = tmp_path / "in.nc"
    make_field(with_nan=True).to_netcdf(path)
    data = D.read_array_file(path)
    dm = D.make_datamodule(data, t_in=6, t_out=3, split=(0.4, 0.3, 0.3))
    batch = D.input_batch(data, 6, dm.scaler)
    assert batch["x"].shape == (1, 6, 2, 5, 6) and batch["tod"].shape == (1, 6)
    fc = dm.inverse_transform(batch["x"][0, -3:])  # a stand-in "forecast"
    out = D.write_forecast(tmp_path / "fc.nc", fc, like=data)
    with xr.open_dataset(out) as ds:
        np.testing.assert_allclose(ds.t2m.values, data.segments[0][-3:, 0].compute(), rtol=1e-5)
    with pytest.raises(ValueError, match="fewer than t_in = 40"):
        D.input_batch(data, 40)


# ----------------------------------------------------------------------------- the format table
@pytest.fixture
def format_table():
    """The format table, restored after the test (tests register throwaway formats in it)."""
    from stpatch.data.adapters import formats

    saved = dict(formats.FORMATS)
    yield formats
    formats.FORMATS.clear()
    formats.FORMATS.update(saved)


def test_register_format_adds_a_reader_and_a_writer(tmp_path, format_table):
    from stpatch.data.adapters import array_reader, register_format

    a = np.arange(12, dtype=float).reshape(4, 3)
    np.savetxt(tmp_path / "x.dat", a)
    with pytest.raises(ValueError, match=r"unsupported file type '\.dat'; known: NumPy array \(\.npy\)"):
        D.read_array_file(tmp_path / "x.dat")

    def save_text(tmp, forecast):
        np.savetxt(tmp, forecast.array.reshape(forecast.steps, -1))

    fmt = register_format(".DAT", reader=array_reader(np.loadtxt), writer=save_text, name="text array")
    assert fmt.suffixes == (".dat",) and format_table.FORMATS[".dat"] is fmt
    d = D.read_array_file(tmp_path / "x.dat")  # 2-D: (T, N) by default
    assert d.kind == "sensor" and d.segments[0].shape == (4, 3, 1)
    np.testing.assert_array_equal(d.segments[0][:, :, 0], a)
    assert d.attrs["source_file"] == str(tmp_path / "x.dat")
    g = D.read_array_file(tmp_path / "x.dat", layout="TN", null_value=0, channels=["speed"])  # to from_numpy
    assert g.null_value == 0 and g.channels == ["speed"]
    out = D.write_forecast(tmp_path / "fc.dat", np.ones((2, 3, 1)))
    np.testing.assert_array_equal(np.loadtxt(out), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"unsupported forecast format '\.xyz'; known: .*text array \(\.dat\)"):
        D.write_forecast(tmp_path / "f.xyz", a[:, :, None])
    # a suffix is claimed once, unless replaced on purpose
    with pytest.raises(ValueError, match=r"\['\.csv'\] already read/written as CSV; pass replace=True"):
        register_format(".csv", reader=array_reader(np.loadtxt))
    with pytest.raises(ValueError, match="a reader or a writer"):
        register_format(".abc")
    register_format(".csv", reader=array_reader(np.loadtxt), replace=True)
    np.savetxt(tmp_path / "y.csv", a)
    assert D.read_array_file(tmp_path / "y.csv").segments[0].shape == (4, 3, 1)


def test_format_table_is_restored_and_lists_the_built_in_formats():
    from stpatch.data.adapters import FORMATS

    assert ".dat" not in FORMATS and FORMATS[".csv"].name == "CSV"
    reads = {".npy", ".npz", ".nc", ".nc4", ".cdf", ".zarr", ".grib", ".grb", ".grib2", ".csv", ".gif", ".mp4"}
    assert reads <= {s for s, f in FORMATS.items() if f.reader is not None}
    assert {s for s, f in FORMATS.items() if f.writer is not None} >= {".npy", ".npz", ".nc", ".csv"}
    assert FORMATS[".csv"].kind_hint == "sensor" and FORMATS[".gif"].kind_hint == "grid"


@pytest.mark.parametrize(
    "shape, kind, seg_shape, data_kind",
    [
        ((6, 4, 5), "grid", (6, 1, 4, 5), "grid"),  # THW
        ((6, 4, 5), "sensor", (6, 4, 5), "sensor"),  # TNC
        ((6, 4, 5), None, (6, 1, 4, 5), "grid"),  # THW, as before the kind existed
        ((2, 6, 4, 5), "sensor", (6, 4, 5), "sensor"),  # BTNC
        ((2, 6, 4, 5), "grid", (2, 6, 4, 5), "grid"),  # TCHW
        ((6, 4), "grid", (6, 4, 1), "sensor"),  # no grid layout has 2 dims: read as TN, the caller sees sensors
    ],
)
def test_read_array_file_guesses_the_layout_for_the_kind(tmp_path, shape, kind, seg_shape, data_kind):
    a = np.zeros(shape, np.float32)
    np.save(tmp_path / "x.npy", a)
    np.savez(tmp_path / "x.npz", x=a)
    for name in ("x.npy", "x.npz"):
        d = D.read_array_file(tmp_path / name, kind=kind)
        assert d.kind == data_kind and d.segments[-1].shape == seg_shape


def test_default_layout_and_bad_kind(tmp_path):
    from stpatch.data.adapters import default_layout

    assert [default_layout(n, "grid") for n in (5, 4, 3)] == ["BTCHW", "TCHW", "THW"]
    assert [default_layout(n, "sensor") for n in (4, 3, 2)] == ["BTNC", "TNC", "TN"]
    assert default_layout(1, "grid") is None and default_layout(6) is None
    np.save(tmp_path / "x.npy", np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"kind should be one of \('grid', 'sensor'\) or None, got 'video'"):
        D.read_array_file(tmp_path / "x.npy", kind="video")
    # formats that know their own layout ignore the kind (the caller compares the kinds)
    write_sensor_files(tmp_path)
    assert D.read_array_file(tmp_path / "wide.csv", kind="grid").kind == "sensor"


@pytest.mark.filterwarnings("ignore:Consolidated metadata")
def test_a_folder_of_no_known_suffix_is_read_as_zarr(tmp_path):
    ds = make_field(with_nan=False)
    ds.to_zarr(tmp_path / "store")
    d = D.read_array_file(tmp_path / "store")
    assert d.kind == "grid" and d.segments[0].shape == (30, 2, 5, 6)


def test_write_forecast_is_atomic(tmp_path, format_table):
    from stpatch.data.adapters import register_format

    out = D.write_forecast(tmp_path / "f.npy", np.ones((2, 4, 1)))
    D.write_forecast(out, np.full((2, 4, 1), 3.0))  # replaced in place
    np.testing.assert_array_equal(np.load(out), np.full((2, 4, 1), 3.0))

    def crash(tmp, forecast):
        tmp.write_bytes(b"half of a file")
        raise RuntimeError("disk full")

    register_format(".half", writer=crash)
    (tmp_path / "g.half").write_text("the previous forecast")
    with pytest.raises(RuntimeError, match="disk full"):
        D.write_forecast(tmp_path / "g.half", np.ones((2, 4, 1)))
    assert (tmp_path / "g.half").read_text() == "the previous forecast"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.npy", "g.half"]  # no temporary file left
    with pytest.raises(ValueError, match=r"CSV output is for sensor data \(T, N, C\); write grid data as \.npy, \.npz"):
        D.write_forecast(tmp_path / "g.csv", np.ones((2, 1, 3, 3)))
    assert not (tmp_path / "g.csv").exists()
