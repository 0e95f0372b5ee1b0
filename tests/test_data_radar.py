"""Radar rain rates from the pysteps example data (MeteoSwiss GIF, FMI PGM), with a cache."""

from __future__ import annotations

import gzip
import time

import numpy as np
import pytest

import stpatch.data as D
from stpatch.data.radar import block_mean, radar_transform, rainrate, read_fmi_pgm

try:
    from data_helpers import DATA_DIR, require
except ImportError:  # tests/ imported as a package
    from tests.data_helpers import DATA_DIR, require

pytest.importorskip("pysteps")

MCH_EVENTS = ("20150515", "20160711", "20170131")
FMI_EVENTS = ("20160928", "20170509")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("radar_cache")


@pytest.fixture(scope="module")
def mch(cache):
    require(*(f"radar/mch/{e}" for e in MCH_EVENTS))
    return D.load("radar_mch", data_dir=DATA_DIR, cache_dir=cache)


def test_block_mean_ignores_nan():
    a = np.array([[1.0, 3.0, np.nan, np.nan], [np.nan, 2.0, np.nan, np.nan]])
    np.testing.assert_array_equal(block_mean(a, 2), [[2.0, np.nan]])
    assert block_mean(np.ones((5, 7)), 2).shape == (2, 3)


def test_transforms_invert():
    r = np.array([0.0, 0.1, 0.5, 12.0, np.nan])
    np.testing.assert_allclose(rainrate(radar_transform(r, "dbr"), "dbr"), r, rtol=1e-12)
    np.testing.assert_allclose(rainrate(radar_transform(r, "log"), "log"), r, rtol=1e-12)
    assert radar_transform(r, "dbr")[0] == -15.0
    with pytest.raises(ValueError, match="unknown radar transform"):
        radar_transform(r, "sqrt")


def test_mch_default_shapes_times_and_event_split(mch):
    assert mch.kind == "grid" and mch.num_segments == 3
    assert all(s.shape == (40, 1, 128, 128) for s in mch.segments)
    assert mch.attrs["units"] == "mm/h" and mch.attrs["events"] == list(MCH_EVENTS)
    t = mch.times[0]
    assert t[0] == np.datetime64("2015-05-15T15:45") and (np.diff(t) == np.timedelta64(5, "m")).all()
    r = np.concatenate([s.ravel() for s in mch.segments])
    assert np.nanmin(r) >= 0 and np.nanmax(r) > 5 and np.isnan(r).any()  # rain, and no-coverage pixels
    assert mch.coords["x"].shape == (128,) and mch.lat is None
    dm = D.make_datamodule(mch, batch_size=4)
    dm.setup()
    assert (dm.t_in, dm.t_out) == (4, 12)
    assert dm.ranges == {"train": [(0, 0, 40)], "val": [(1, 0, 40)], "test": [(2, 0, 40)]}
    assert isinstance(dm.scaler, D.DBScaler)
    b = next(iter(dm.test_dataloader()))
    assert b["x"].shape == (4, 4, 1, 128, 128) and b["y"].shape == (4, 12, 1, 128, 128)
    assert not b["y_mask"].all() and b["tod"].shape == (4, 4)
    # back to mm/h where observed
    i = int(b["index"][0])
    _, s = dm.test_dataset.index[i]
    truth = mch.segments[2][s + 4 : s + 16]
    back = dm.inverse_transform(b["y"][0]).numpy()
    obs = b["y_mask"][0].numpy()
    keep = obs & (truth >= 0.1)
    np.testing.assert_allclose(back[keep], truth[keep], rtol=1e-4)
    assert (back[obs & (truth == 0)] == 0).all()


def test_cache_is_used_and_options_change_the_key(mch, cache):
    files = sorted(cache.glob("radar_mch_*.npz"))
    assert len(files) == 3
    t0 = time.perf_counter()
    again = D.load("radar_mch", data_dir=DATA_DIR, cache_dir=cache)
    assert time.perf_counter() - t0 < 1.0
    np.testing.assert_array_equal(again.segments[1], mch.segments[1])
    small = D.load(
        "radar_mch",
        data_dir=DATA_DIR,
        cache_dir=cache,
        events="20160711",
        downsample=8,
        crop=(24, 40),
        max_frames=10,
    )
    assert small.num_segments == 1 and small.segments[0].shape == (10, 1, 24, 40)
    assert len(sorted(cache.glob("radar_mch_*.npz"))) == 4
    dbr = D.load("radar_mch", data_dir=DATA_DIR, cache_dir=cache, events="20160711", transform="dbr")
    assert dbr.attrs["units"] == "dBR" and np.nanmin(dbr.segments[0]) == pytest.approx(-15.0)
    np.testing.assert_allclose(
        rainrate(dbr.segments[0], "dbr")[mch.segments[1] >= 0.1],
        mch.segments[1][mch.segments[1] >= 0.1],
        rtol=1e-5,
    )
    dm = D.make_datamodule(dbr, t_in=4, t_out=4, split=(0.5, 0.2, 0.3))
    assert isinstance(dm.scaler, D.StandardScaler)  # already in dB: just standardise


def test_mch_bad_options_and_missing_event(tmp_path, cache):
    require("radar/mch/20150515")
    with pytest.raises(ValueError, match=r"crop \(200, 200\) does not fit the downsampled grid \(160, 177\)"):
        D.load("radar_mch", data_dir=DATA_DIR, cache=False, events="20150515", crop=(200, 200), max_frames=1)
    with pytest.raises(ValueError, match="transform should be"):
        D.load("radar_mch", data_dir=DATA_DIR, transform="sqrt")
    with pytest.raises(FileNotFoundError, match=r"radar/mch/20990101/.*stpatch datasets download radar_mch"):
        D.load("radar_mch", data_dir=DATA_DIR, events="20990101")
    bad = tmp_path / "radar/mch/20150515"
    bad.mkdir(parents=True)
    (bad / "AQC151351545F_00005.801.gif").write_bytes(b"GIF89a not a radar image")
    with pytest.raises(ValueError, match=r"AQC151351545F_00005\.801\.gif: cannot decode the radar MCH file"):
        D.load("radar_mch", data_dir=tmp_path, events="20150515", cache=False)


def test_fmi_small_load(cache):
    require(*(f"radar/fmi/{e}" for e in FMI_EVENTS))
    d = D.load("radar_fmi", data_dir=DATA_DIR, cache_dir=cache, max_frames=17, downsample=8, crop=64)
    assert d.num_segments == 2 and all(s.shape == (17, 1, 64, 64) for s in d.segments)
    assert d.times[1][0] == np.datetime64("2017-05-09T10:45")
    assert np.nanmin(d.segments[0]) >= 0 and np.nanmax(d.segments[0]) > 1
    dm = D.make_datamodule(d, t_in=4, t_out=4, batch_size=2)
    dm.setup()
    assert dm.ranges["test"] == [(1, 0, 17)] and dm.ranges["val"] == [(0, 9, 17)]


def test_fmi_fallback_reader_matches_pysteps(tmp_path):
    path = (
        require("radar/fmi/20160928")
        / "radar/fmi/20160928/201609281445_fmi.radar.composite.lowest_FIN_SUOMI1.pgm.gz"
    )
    dbz, meta = read_fmi_pgm(path)
    assert dbz.shape == (1226, 760) and np.nanmin(dbz) == -32.0 and np.isnan(dbz).any()
    try:
        import pyproj  # noqa: F401
    except ImportError:
        pass
    else:
        from pysteps.io import import_fmi_pgm

        ref, _, _ = import_fmi_pgm(str(path), gzipped=True)
        np.testing.assert_array_equal(np.isnan(ref), np.isnan(dbz))
        np.testing.assert_allclose(ref[~np.isnan(ref)], dbz[~np.isnan(dbz)])
    (tmp_path / "bad.pgm.gz").write_bytes(gzip.compress(b"P5 not really")[:10])
    with pytest.raises(ValueError, match=r"bad\.pgm\.gz: cannot decode the FMI PGM composite"):
        read_fmi_pgm(tmp_path / "bad.pgm.gz")
