"""Your own radar files in (from_radar, every pysteps importer), a radar run scored as radar, a nowcast out."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from stpatch.data import block_mean, from_radar
from stpatch.data.adapters.radar_files import radar_file_time, radar_importers

try:
    from data_helpers import DATA_DIR, require
except ImportError:  # tests/ imported as a package
    from tests.data_helpers import DATA_DIR, require

# every test here reads radar files with pysteps' importers; pyproj and h5py come with the same extra
pytest.importorskip("pysteps", reason="reading radar files needs the radar extra: pip install 'stpatch[radar]'")


def _pysteps_rain(path, importer, **kw):
    """The reference: pysteps' own importer and to_rainrate."""
    from pysteps.io import get_method
    from pysteps.utils import to_rainrate

    r, _, meta = get_method(importer, "importer")(str(path), **kw)
    return to_rainrate(r, meta)


def _files(rel: str, pattern: str):
    return sorted((require(rel) / rel).glob(pattern))


def test_mch_gif_native_grid_times_and_values():
    files = _files("radar/mch/20160711", "*.gif")[:6]
    d = from_radar(files[::-1], "mch_gif")  # any order in, sorted by time out
    assert d.kind == "grid" and d.segments[0].shape == (6, 1, 640, 710) and d.segments[0].dtype == np.float32
    assert d.times[0][0] == np.datetime64("2016-07-11T20:45") and (np.diff(d.times[0]) == np.timedelta64(5, "m")).all()
    ref, meta = _pysteps_rain(files[2], "mch_gif", product="AQC", unit="mm", accutime=5.0)
    assert meta["unit"] == "mm/h"
    np.testing.assert_array_equal(np.isnan(ref), ~d.mask[0][2, 0])
    np.testing.assert_allclose(d.segments[0][2, 0][d.mask[0][2, 0]], ref[~np.isnan(ref)], rtol=1e-6)
    assert d.attrs["units"] == "mm/h" and d.attrs["suite"] == "radar" and d.attrs["field"] == "precip"
    assert d.attrs["step"] == "5min" and d.attrs["importer"] == "mch_gif"


def test_fmi_pgm_downsampled_and_cropped_like_block_mean():
    files = _files("radar/fmi/20160928", "*.pgm.gz")[:4]
    d = from_radar(files, "fmi_pgm", downsample=4, crop=(64, 32))
    assert d.segments[0].shape == (4, 1, 64, 32)
    assert d.times[0][0] == np.datetime64("2016-09-28T14:45")
    ref, _ = _pysteps_rain(files[1], "fmi_pgm", gzipped=True)  # dBZ -> mm/h by pysteps (Z = 223 R^1.53)
    full = block_mean(ref, 4)
    y0, x0 = (full.shape[0] - 64) // 2, (full.shape[1] - 32) // 2
    expect = block_mean(ref[y0 * 4 : (y0 + 64) * 4, x0 * 4 : (x0 + 32) * 4], 4).astype(np.float32)
    np.testing.assert_array_equal(d.segments[0][1, 0], expect)
    assert d.coords["x"].shape == (32,) and d.coords["y"].shape == (64,)


def test_rmi_odim_hdf5_times_from_the_file_mask_and_values():
    d = from_radar(str(require("radar/rmi/20210704") / "radar/rmi/20210704/*.hdf"), "odim_hdf5",
                   downsample=4, crop=128)
    r = d.segments[0]
    assert r.shape == (39, 1, 128, 128)
    assert d.times[0][0] == np.datetime64("2021-07-04T15:50") and d.times[0][-1] == np.datetime64("2021-07-04T19:00")
    np.testing.assert_array_equal(d.mask[0], np.isfinite(r))
    assert (~d.mask[0]).any() and np.nanmax(r) > 5 and np.nanmin(r) >= 0
    path = sorted((DATA_DIR / "radar/rmi/20210704").glob("*.hdf"))[7]
    ref, _ = _pysteps_rain(path, "odim_hdf5")
    y0 = (ref.shape[0] // 4 - 128) // 2
    np.testing.assert_array_equal(r[7, 0], block_mean(ref[y0 * 4 : (y0 + 128) * 4, y0 * 4 : (y0 + 128) * 4], 4).astype(np.float32))
    # the time comes from the file (ODIM /what), and the name gives the same
    assert radar_file_time(path, "odim_hdf5") == d.times[0][7]
    assert radar_file_time(path, "odim_hdf5", timestamp="%Y%m%d%H%M%S") == d.times[0][7]
    assert radar_file_time(path, "odim_hdf5", timestamp=(r"^(\d{12})", "%Y%m%d%H%M")) == d.times[0][7]


def test_a_missing_middle_frame_raises_or_becomes_nan():
    files = _files("radar/mch/20150515", "*.gif")[:5]
    holed = files[:2] + files[3:]
    with pytest.raises(ValueError, match=r"1 frame\(s\) missing on the 5min grid .*2015-05-15T15:55:00.*gaps='nan'"):
        from_radar(holed, "mch_gif", downsample=8)
    with pytest.warns(UserWarning, match="1 missing 5min frame"):
        d = from_radar(holed, "mch_gif", downsample=8, gaps="nan")
    assert d.segments[0].shape[0] == 5 and np.isnan(d.segments[0][2]).all() and not d.mask[0][2].any()
    assert d.attrs["missing_times"] == ["2015-05-15T15:55:00"]
    with pytest.raises(ValueError, match="gaps should be 'raise' or 'nan'"):
        from_radar(files, "mch_gif", gaps="zero")


def test_bad_input_names_what_to_do(tmp_path):
    with pytest.raises(ValueError, match=r"unknown radar importer 'odim'; pysteps' importers are: .*odim_hdf5"):
        from_radar("whatever/*.h5", "odim")
    assert {"odim_hdf5", "mch_gif", "fmi_pgm", "knmi_hdf5", "bom_rf3", "mrms_grib", "saf_crri"} <= set(radar_importers())
    with pytest.raises(FileNotFoundError, match="no radar file matches"):
        from_radar(str(tmp_path / "*.h5"), "odim_hdf5")
    bad = tmp_path / "AQC151351545F_00005.801.gif"
    bad.write_bytes(b"GIF89a not a radar image")
    with pytest.raises(ValueError, match=r"AQC151351545F_00005\.801\.gif: cannot decode the radar file with the pysteps importer 'mch_gif'"):
        from_radar(bad, "mch_gif")
    # a file that decodes but whose name has no time
    good = _files("radar/mch/20150515", "*.gif")[0]
    shutil.copy(good, tmp_path / "frame.gif")
    with pytest.raises(ValueError, match=r"frame\.gif: cannot read a time from the file name .*timestamp="):
        from_radar(tmp_path / "frame.gif", "mch_gif")
    assert from_radar(tmp_path / "frame.gif", "mch_gif", timestamp=lambda p: "2020-01-01T00:00").times[0][0] == \
        np.datetime64("2020-01-01")


def test_mixed_grids_and_steps_are_errors(tmp_path):
    import h5py

    src = sorted((require("radar/rmi/20210704") / "radar/rmi/20210704").glob("*.hdf"))[:3]
    for f in src[:2]:
        shutil.copy(f, tmp_path / f.name)
    small = tmp_path / src[2].name
    shutil.copy(src[2], small)
    with h5py.File(small, "r+") as f:  # the same product on a smaller grid
        data = f["dataset1/data1/data"][:350, :350]
        attrs = dict(f["dataset1/data1/data"].attrs)
        del f["dataset1/data1/data"]
        f["dataset1/data1/data"] = data
        f["dataset1/data1/data"].attrs.update(attrs)
        f["where"].attrs["xsize"], f["where"].attrs["ysize"] = 350, 350
    with pytest.raises(ValueError, match=r"mixed grids: .* is \(350, 350\) .* is \(700, 700\)"):
        from_radar(sorted(tmp_path.glob("*.hdf")), "odim_hdf5")
    # frames off the data's 5-minute grid: a 7-minute file among 5-minute ones
    files = _files("radar/mch/20150515", "*.gif")[:4]
    with pytest.raises(ValueError, match=r"not on one 5min grid: .*mixed products or time steps"):
        from_radar(files, "mch_gif", downsample=16,
                   timestamp=lambda p: np.datetime64("2015-05-15T15:45") + np.timedelta64(
                       {0: 0, 1: 5, 2: 10, 3: 17}[files.index(p)], "m"))


def test_user_radar_run_is_scored_as_radar_and_nowcast_written_as_netcdf(tmp_path, monkeypatch):
    import xarray as xr

    import stpatch
    import stpatch.data.module as module
    from stpatch.engine.runs import load_run

    augmented = []  # Lightning calls the data module's hook on training batches only

    def counting(batch, names, seed, epoch):
        augmented.append(tuple(batch["x"].shape))
        return augment_batch(batch, names, seed, epoch)

    augment_batch = module.augment_batch
    monkeypatch.setattr(module, "augment_batch", counting)

    pattern = str(require("radar/rmi/20210704") / "radar/rmi/20210704/*.hdf")
    data = from_radar(pattern, "odim_hdf5", downsample=8, crop=16)
    config = {
        "data": {"name": "my_radar", "t_in": 4, "t_out": 3, "batch_size": 4, "split": [0.6, 0.2, 0.2],
                 "options": {"augment": ["rot90", "flip"]}},
        "model": {"name": "stpnet_tiny"},
        "train": {"max_steps": 2, "max_epochs": 1, "seed": 0, "progress": False},
        "eval": {"suite": "radar", "baselines": ["persistence"], "figures": False},
        "run_dir": str(tmp_path / "run"),
    }
    stpatch.train(config, data=data)
    assert len(augmented) == 2 and augmented[0][0] == 4  # two training steps, batch of 4
    run = load_run(tmp_path / "run")
    assert run.meta["suite"] == "radar"  # the data's own suite, for a config without eval.suite
    assert run.scaler.__class__.__name__ == "DBScaler"  # from_radar's default scaler for user data
    ev = stpatch.evaluate(tmp_path / "run", data=data, figures=False)
    assert ev["suite"] == "radar" and len(augmented) == 2  # evaluation batches are never augmented
    assert list(ev["mean"]["persistence"]) == ["csi@1.0", "csi@5.0", "fss@1.0/8px", "mae_per_pixel"]
    assert set(ev["per_horizon"]) == {"stpnet_tiny", "persistence"}
    # nowcast out: the same files through the importer, NetCDF with the input's coordinates and next times
    out = stpatch.predict(tmp_path / "run", pattern, tmp_path / "nowcast.nc", importer="odim_hdf5",
                          downsample=8, crop=16)
    assert out.shape == (1, 3, 1, 16, 16) and np.isfinite(out).all()
    with xr.open_dataset(tmp_path / "nowcast.nc") as ds:
        assert ds["rain_rate"].shape == (3, 16, 16) and ds["rain_rate"].attrs["units"] == "mm/h"
        assert ds["time"].values[0] == np.datetime64("2021-07-04T19:05")
        np.testing.assert_allclose(ds["x"].values, data.coords["x"])
    with pytest.raises(ValueError, match="pass importer= as well"):
        stpatch.predict(tmp_path / "run", pattern, downsample=8)
    # the command: stpatch predict --input "radar/*.hdf" --importer odim_hdf5 --output nowcast.nc
    from typer.testing import CliRunner

    from stpatch.cli import app

    args = ["predict", "--checkpoint", str(tmp_path / "run"), "--input", pattern, "--importer", "odim_hdf5",
            "--downsample", "8", "--crop", "16", "--output", str(tmp_path / "cli.nc")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    with xr.open_dataset(tmp_path / "cli.nc") as ds:
        np.testing.assert_allclose(ds["rain_rate"].values, out[0, :, 0], rtol=1e-6)
    result = CliRunner().invoke(app, args[:5] + ["--importer", "odim", "--output", str(tmp_path / "x.nc")])
    assert result.exit_code == 2 and "unknown radar importer 'odim'" in result.output
