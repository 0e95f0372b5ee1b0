"""Radar rain rates from the pysteps example data (MeteoSwiss GIF, FMI PGM, RMI HDF5), with a cache;
the multi-source radar_mix set and the training augmentations."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import stpatch.data as D
from stpatch.data.augment import augment_batch, check_augment
from stpatch.data.radar import block_mean, radar_transform, rainrate

try:
    from data_helpers import DATA_DIR, require
except ImportError:  # tests/ imported as a package
    from tests.data_helpers import DATA_DIR, require


def radar_extra():
    """Skip unless the radar extra is installed: the radar files are read with pysteps' importers.
    Its other packages (pyproj, h5py, OpenCV) are then required, not skipped: the extra declares them."""
    pytest.importorskip("pysteps", reason="reading radar files needs the radar extra: pip install 'stpatch[radar]'")


MCH_EVENTS = ("20150515", "20160711", "20170131")
FMI_EVENTS = ("20160928", "20170509")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("radar_cache")


@pytest.fixture(scope="module")
def mch(cache):
    radar_extra()
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


def test_cache_is_used_and_options_change_the_key(mch, cache, monkeypatch):
    import stpatch.data.sets.radar as radar_set

    decoded = []  # the events read from radar files (a cache miss), by their number of files
    read_files = radar_set.from_radar

    def spy(files, *args, **kwargs):
        decoded.append(len(files))
        return read_files(files, *args, **kwargs)

    monkeypatch.setattr(radar_set, "from_radar", spy)
    files = sorted(cache.glob("radar_mch_*.npz"))
    assert len(files) == 3
    again = D.load("radar_mch", data_dir=DATA_DIR, cache_dir=cache)
    assert decoded == []  # all three events came from the cache
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
    assert len(decoded) == 1  # other options: another key, read from the files once
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
    radar_extra()
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
    with pytest.raises(ValueError, match=r"AQC151351545F_00005\.801\.gif: cannot decode the radar file with the pysteps importer 'mch_gif'"):
        D.load("radar_mch", data_dir=tmp_path, events="20150515", cache=False)


def test_fmi_small_load(cache):
    radar_extra()
    require(*(f"radar/fmi/{e}" for e in FMI_EVENTS))
    d = D.load("radar_fmi", data_dir=DATA_DIR, cache_dir=cache, max_frames=17, downsample=8, crop=64)
    assert d.num_segments == 2 and all(s.shape == (17, 1, 64, 64) for s in d.segments)
    assert d.times[1][0] == np.datetime64("2017-05-09T10:45")
    assert np.nanmin(d.segments[0]) >= 0 and np.nanmax(d.segments[0]) > 1
    dm = D.make_datamodule(d, t_in=4, t_out=4, batch_size=2)
    dm.setup()
    assert dm.ranges["test"] == [(1, 0, 17)] and dm.ranges["val"] == [(0, 9, 17)]


def test_fmi_values_are_pysteps_importer_values(cache):
    """The hand-written PGM reader is gone: FMI frames are pysteps' importer + to_rainrate, unchanged.
    (pysteps' FMI importer georeferences with pyproj, which the radar extra declares: this compares.)"""
    radar_extra()
    from pysteps.io import import_fmi_pgm
    from pysteps.utils import to_rainrate

    path = (
        require("radar/fmi/20160928")
        / "radar/fmi/20160928/201609281445_fmi.radar.composite.lowest_FIN_SUOMI1.pgm.gz"
    )
    dbz, _, meta = import_fmi_pgm(str(path), gzipped=True)
    assert dbz.shape == (1226, 760) and np.nanmin(dbz) == -32.0 and np.isnan(dbz).any()
    ref, _ = to_rainrate(dbz, meta)
    d = D.load("radar_fmi", data_dir=DATA_DIR, cache=False, events="20160928", max_frames=1, downsample=1, crop=None)
    np.testing.assert_array_equal(d.segments[0][0, 0], ref.astype(np.float32))
    np.testing.assert_array_equal(d.mask[0][0, 0], ~np.isnan(ref))


# ----------------------------------------------------------------------------- radar_mix
MIX = dict(downsample=8, crop=32, max_frames=20)


@pytest.fixture(scope="module")
def mix(cache):
    radar_extra()
    require("radar/mch", "radar/fmi", "radar/rmi/20210704")
    return D.load("radar_mix", data_dir=DATA_DIR, cache_dir=cache, **MIX)


def test_radar_mix_splits_hold_out_the_test_events(mix, cache):
    roles = mix.attrs["roles"]
    assert roles == {
        "train": ["mch:20150515", "fmi:20160928", "rmi:20210704"],
        "val": ["mch:20160711"],
        "test": ["mch:20170131", "fmi:20170509"],
    }
    assert mix.attrs["events"] == roles["train"] + roles["val"] + roles["test"]
    assert mix.num_segments == 6 and all(s.shape == (20, 1, 32, 32) for s in mix.segments)
    assert mix.attrs["suite"] == "radar" and mix.coords is None  # one projection per source
    dm = D.make_datamodule(mix, t_in=4, t_out=4, batch_size=2)
    dm.setup()
    used = {role: {seg for seg, _, _ in dm.ranges[role]} for role in ("train", "val", "test")}
    assert used == {"train": {0, 1, 2}, "val": {3}, "test": {4, 5}}
    assert isinstance(dm.scaler, D.DBScaler)
    # the test events are the very frames radar_mch / radar_fmi test on (same reader, same cache)
    mch = D.load("radar_mch", data_dir=DATA_DIR, cache_dir=cache, events="20170131", **MIX)
    np.testing.assert_array_equal(mix.segments[4], mch.segments[0])
    np.testing.assert_array_equal(mix.times[5][:2], np.array(["2017-05-09T10:45", "2017-05-09T10:50"], "datetime64[ns]"))
    # RMI's 700x700 at 1 km: the same 8x block mean and centre crop as the others
    assert np.nanmax(mix.segments[2]) > 1 and np.isnan(mix.segments[2]).sum() < mix.segments[2].size


def test_radar_mix_one_source_test_and_bad_roles(mix, cache):
    one = D.load("radar_mix", data_dir=DATA_DIR, cache_dir=cache, test_events=["mch:20170131"], **MIX)
    assert one.attrs["roles"]["train"] == mix.attrs["roles"]["train"]  # trains exactly as the default
    assert one.attrs["roles"]["test"] == ["mch:20170131"] and "fmi:20170509" not in one.attrs["events"]
    assert one.info.default_split == {"train": [0, 1, 2], "val": [3], "test": [4]}
    from stpatch.data.sets.radar_mix import mix_roles

    with pytest.raises(ValueError, match=r"test_events \['mch:20990101'\] are not events .*known events: mch:20150515"):
        mix_roles(test_events=["mch:20990101"])
    with pytest.raises(ValueError, match=r"\['mch:20160711'\] would be in both val and test"):
        mix_roles(test_events=["mch:20160711"])
    with pytest.raises(ValueError, match=r"no val event among the sources \['fmi', 'rmi'\].*val_events="):
        mix_roles(sources=["fmi", "rmi"])
    roles = mix_roles(sources=["fmi", "rmi"], val_events=["rmi:20210704"])
    assert roles == {"train": ["fmi:20160928"], "val": ["rmi:20210704"], "test": ["fmi:20170509"]}


def test_tile_boxes_cover_the_domain_and_drop_dry_or_uncovered_tiles():
    from stpatch.data.radar import tile_boxes

    rain = np.zeros((3, 1, 40, 70), np.float32)
    rain[:, :, :, 50:] = np.nan  # no radar east of x = 50
    rain[:, :, 20:, 10:20] = 2.0  # rain in the south-west only
    # starts 0, 16, 24 (the last flush with the edge) down; 0, 16, 32, 48, 54 across; east of 50 is
    # uncovered and only x 10-20 of the south is wet
    boxes = tile_boxes(rain, 16, 16)
    assert boxes == [(16, 0), (16, 16), (24, 0), (24, 16)]
    assert all(y0 + 16 <= 40 and x0 + 16 <= 50 for y0, x0 in boxes)
    assert len(tile_boxes(rain, 16, 16, min_coverage=0.0, min_wet=0.0)) == 3 * 5
    with pytest.raises(ValueError, match="does not fit the 40x70 grid"):
        tile_boxes(rain, 64, 16)


def test_radar_mix_training_tiles_add_windows_and_keep_val_and_test(mix, cache):
    tiled = D.load("radar_mix", data_dir=DATA_DIR, cache_dir=cache, train_tiles=8, **MIX)
    split = tiled.info.default_split
    names = tiled.attrs["segments"]
    assert len(split["train"]) > 3 and {n.split("@")[0] for n in names[: len(split["train"])]} == set(
        mix.attrs["roles"]["train"])
    for role in ("val", "test"):  # unchanged: the same centre crops as without tiles
        for i, j in zip(split[role], mix.info.default_split[role], strict=True):
            np.testing.assert_array_equal(tiled.segments[i], mix.segments[j])
    # a tile is named by its corner in the whole (downsampled) domain
    y0, x0 = (int(v) for v in names[0].split("@")[1].split(","))
    assert tiled.segments[0].shape == (20, 1, 32, 32) and y0 >= 0 and x0 >= 0
    with pytest.raises(ValueError, match="train_tiles needs a square crop"):
        D.load("radar_mix", data_dir=DATA_DIR, cache_dir=cache, train_tiles=8, crop=(32, 40), downsample=8,
               max_frames=20)


# ----------------------------------------------------------------------------- augmentation
def _batch(seed=0, b=4):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, 1, 8, 8, generator=g)
    return {"x": x, "y": x.clone(), "x_mask": x > 0.3, "y_mask": x > 0.3, "index": torch.arange(b),
            "tod": torch.zeros(b, 3)}


def _d4(a: torch.Tensor) -> list[torch.Tensor]:
    rots = [torch.rot90(a, k, dims=(-2, -1)) for k in range(4)]
    return rots + [torch.flip(r, dims=(-1,)) for r in rots]


def test_augment_keeps_inputs_and_targets_consistent_and_is_seeded():
    batch = _batch()
    out = augment_batch(batch, ("rot90", "flip"), seed=3, epoch=1)
    assert torch.equal(out["x"], out["y"]) and torch.equal(out["x_mask"], out["y_mask"])  # same transform
    assert torch.equal(out["x_mask"], out["x"] > 0.3) and torch.equal(out["tod"], batch["tod"])
    for b in range(4):  # each window is a whole-field rotation/flip of itself
        assert any(torch.equal(out["x"][b], c) for c in _d4(batch["x"][b]))
    again = augment_batch(batch, ("rot90", "flip"), seed=3, epoch=1)
    assert torch.equal(again["x"], out["x"])  # reproducible
    big = _batch(b=16)
    first = augment_batch(big, ("rot90", "flip"), seed=3, epoch=0)["x"]
    assert any(not torch.equal(augment_batch(big, ("rot90", "flip"), seed=3, epoch=e)["x"], first) for e in (1, 2))
    assert torch.equal(augment_batch(batch, (), 0, 0)["x"], batch["x"])


def test_augment_applies_to_training_batches_only():
    frames = np.random.default_rng(0).gamma(0.5, 2.0, (30, 1, 8, 8)).astype(np.float32)
    dm = D.make_datamodule(D.from_numpy(frames, layout="TCHW"), t_in=3, t_out=3, batch_size=4,
                           split=(0.6, 0.2, 0.2), augment=["rot90", "flip"])
    batch = next(iter(dm.train_dataloader()))
    dm.trainer = SimpleNamespace(training=True, current_epoch=0)
    trained = dm.on_before_batch_transfer(batch, 0)
    assert not torch.equal(trained["x"], batch["x"])  # 4 windows: some draw is not the identity
    dm.trainer = SimpleNamespace(training=False, current_epoch=0)  # validating, testing, predicting
    assert dm.on_before_batch_transfer(batch, 0) is batch
    assert D.make_datamodule(D.from_numpy(frames, layout="TCHW"), t_in=3, t_out=3, split=(0.6, 0.2, 0.2)).augment == ()
    with pytest.raises(ValueError, match=r"unknown augmentation\(s\) \['shear'\]; choose from \['rot90', 'flip'\]"):
        check_augment(["shear"], "grid", (8, 8))
    with pytest.raises(ValueError, match="rot90' needs square frames, these are \\(8, 6\\)"):
        check_augment(["rot90"], "grid", (8, 6))
    assert check_augment("flip", "grid", (8, 6)) == ("flip",)
    with pytest.raises(ValueError, match="this data is sensor data"):
        check_augment(["flip"], "sensor", (5,))
