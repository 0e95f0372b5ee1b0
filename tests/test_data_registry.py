"""Named data sets: registry entries, loading the real files, documented shapes and splits."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import stpatch.data as D
from stpatch.data.registry import _fetch

try:
    from data_helpers import DATA_DIR, require
except ImportError:  # tests/ imported as a package
    from tests.data_helpers import DATA_DIR, require

ALL = ["chickenpox", "digits", "era5_uk_t2m", "los_loop", "moving_mnist", "radar_fmi", "radar_mch"]


def test_list_and_info_entries_are_complete():
    assert D.list_datasets() == ALL
    for name in ALL:
        inf = D.info(name)
        assert inf.name == name
        assert inf.kind in ("grid", "sensor")
        assert inf.field in ("video", "sensor", "weather", "precip")
        assert inf.source and inf.split and inf.sample_shape
        assert inf.t_in >= 1 and inf.t_out >= 1
        assert inf.metrics and inf.baselines
        d = inf.to_dict()
        assert d["name"] == name and isinstance(d["metrics"], list)
    assert D.info("moving_mnist").metrics == ("mse_per_frame", "mae_per_frame", "ssim", "psnr")
    assert "csi@1mm/h" in D.info("radar_mch").metrics
    assert D.info("era5_uk_t2m").metrics == ("lat_weighted_rmse", "acc")
    assert D.info("los_loop").metrics == ("masked_mae", "masked_rmse", "masked_mape")


def test_unknown_name_and_option():
    with pytest.raises(ValueError, match="unknown data set 'nope'.*available"):
        D.load("nope")
    with pytest.raises(ValueError, match="unknown option.*'colour'.*accepted"):
        D.load("digits", colour=True)


def test_download_urls_and_checksums_are_declared():
    mm = D.info("moving_mnist").urls
    sums = {}
    sha_file = DATA_DIR / "mnist" / "SHA256SUMS"
    if sha_file.exists():
        for line in sha_file.read_text().splitlines():
            s, f = line.split()
            sums[f"mnist/{f}"] = s
        for rel, s in sums.items():
            assert mm[rel][1] == s
    for name in ALL:
        for rel, spec in D.info(name).urls.items():
            urls = spec[0] if isinstance(spec[0], tuple) else (spec[0],)
            assert all(u.startswith(("http://", "https://")) for u in urls), rel


@pytest.mark.parametrize("name", ["moving_mnist", "los_loop", "chickenpox", "era5_uk_t2m", "radar_mch"])
def test_missing_files_say_which_file_and_how(tmp_path, name):
    with pytest.raises(FileNotFoundError) as e:
        D.load(name, data_dir=tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg
    assert f"stpatch datasets download {name}" in msg
    assert "STPATCH_DATA_DIR" in msg


def test_data_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("STPATCH_DATA_DIR", str(tmp_path))
    assert D.resolve_data_dir() == tmp_path
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        D.load("chickenpox")


def test_fetch_checks_sha256(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello stpatch")
    good = hashlib.sha256(b"hello stpatch").hexdigest()
    out = _fetch(src.as_uri(), tmp_path / "out" / "a.bin", good)
    assert out.read_bytes() == b"hello stpatch"
    with pytest.raises(OSError, match="sha256 mismatch"):
        _fetch(src.as_uri(), tmp_path / "out" / "b.bin", "0" * 64)
    assert not (tmp_path / "out" / "b.bin").exists()


# ----------------------------------------------------------------------------- real files
def test_los_loop_shapes_mask_and_split():
    require(
        "traffic/los_loop/los_speed.csv",
        "traffic/los_loop/los_adj.csv",
        "traffic/los_loop/sensor_locations_metr_la.csv",
    )
    d = D.load("los_loop", data_dir=DATA_DIR)
    assert d.kind == "sensor" and d.segments[0].shape == (2016, 207, 1)
    assert d.adjacency.shape == (207, 207) and d.coords.shape == (207, 2)
    assert 33 < d.coords[:, 0].min() < d.coords[:, 0].max() < 35  # Los Angeles latitudes
    assert d.null_value == 0.0
    assert d.times[0][0] == np.datetime64("2012-03-01T00:00") and d.times[0][1] - d.times[0][
        0
    ] == np.timedelta64(5, "m")
    assert d.attrs["sensor_ids"][:2] == ["773869", "767541"]
    dm = D.make_datamodule("los_loop", data_dir=DATA_DIR, batch_size=8)
    assert (dm.t_in, dm.t_out, dm.num_nodes, dm.spatial_shape) == (12, 12, 207, (207,))
    dm.setup()
    assert dm.ranges == {"train": [(0, 0, 1411)], "val": [(0, 1411, 1613)], "test": [(0, 1613, 2016)]}
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [1388, 179, 380]
    b = next(iter(dm.test_dataloader()))
    assert b["x"].shape == (8, 12, 207, 1) and b["y_mask"].dtype == torch_bool()
    assert b["tod"].shape == (8, 12) and b["dow"].shape == (8, 12)


def torch_bool():
    import torch

    return torch.bool


def test_chickenpox_shapes_and_adjacency():
    require("graph/chickenpox.json")
    d = D.load("chickenpox", data_dir=DATA_DIR)
    assert d.segments[0].shape == (521, 20, 1)
    assert d.adjacency.shape == (20, 20) and d.adjacency.sum() == 102
    assert d.attrs["sensor_ids"][0] == "BACS"
    dm = D.make_datamodule("chickenpox", data_dir=DATA_DIR)
    dm.setup()
    assert (dm.t_in, dm.t_out) == (4, 1)
    assert dm.ranges["test"] == [(0, 417, 521)]
    b = next(iter(dm.train_dataloader()))
    assert b["x"].shape == (16, 4, 20, 1) and b["y"].shape == (16, 1, 20, 1)
    assert "tod" not in b  # no timestamps in the file


def test_era5_netcdf_keeps_latitude_and_times():
    require("weather/era5_t2m_2019-03_uk.nc")
    d = D.load("era5_uk_t2m", data_dir=DATA_DIR)
    assert d.kind == "grid" and d.segments[0].shape == (744, 1, 33, 49)
    assert d.lat.shape == (33,) and d.lat[0] == 58.0 and d.lat[-1] == 50.0
    assert d.lon.shape == (49,)
    assert 250 < float(np.nanmean(d.segments[0])) < 300  # kelvin
    assert d.times[0][0] == np.datetime64("2019-03-01T00:00") and len(d.times[0]) == 744
    dm = D.make_datamodule("era5_uk_t2m", data_dir=DATA_DIR, batch_size=4)
    np.testing.assert_array_equal(dm.lat, d.lat)
    dm.setup()
    t = d.times[0]
    a, c = dm.ranges["val"][0][1], dm.ranges["test"][0][1]
    assert str(t[a - 1])[:16] == "2019-03-22T16:00" and str(t[c - 1])[:16] == "2019-03-25T18:00"
    batch = next(iter(dm.val_dataloader()))
    assert batch["x"].shape == (4, 12, 1, 33, 49)
    assert 0 <= float(batch["tod"].min()) and float(batch["tod"].max()) < 1


def test_era5_grib_matches_netcdf():
    require("weather/era5-2mt-2019-03-uk.grib", "weather/era5_t2m_2019-03_uk.nc")
    pytest.importorskip("cfgrib")
    g = D.load("era5_uk_t2m", data_dir=DATA_DIR, source="grib")
    n = D.load("era5_uk_t2m", data_dir=DATA_DIR, source="netcdf")
    np.testing.assert_array_equal(g.segments[0], n.segments[0])
    np.testing.assert_array_equal(g.lat, n.lat)


def test_era5_lazy_option_gives_dask():
    require("weather/era5_t2m_2019-03_uk.nc")
    d = D.load("era5_uk_t2m", data_dir=DATA_DIR, chunks=48)
    assert d.lazy and d.segments[0].chunks[0][0] == 48


def test_moving_mnist_from_idx_files():
    require("mnist/train-images-idx3-ubyte.gz", "mnist/t10k-images-idx3-ubyte.gz")
    mm = D.load("moving_mnist", data_dir=DATA_DIR, train_size=16, val_size=4, test_size=8)
    assert mm.sizes == {"train": 16, "val": 4, "test": 8}
    assert mm.train_digits.shape == (60000, 28, 28) and mm.test_digits.shape == (10000, 28, 28)
    s = mm.sequence("train", 3)
    assert s.shape == (20, 1, 64, 64) and s.dtype == np.float32 and 0 <= s.min() and s.max() <= 1
    np.testing.assert_array_equal(s, mm.sequence("train", 3))  # seeded per index
    assert not np.array_equal(s, mm.sequence("train", 4))
    dm = D.make_datamodule(mm, batch_size=4)
    assert (dm.kind, dm.in_channels, dm.spatial_shape, dm.t_in, dm.t_out) == ("grid", 1, (64, 64), 10, 10)
    b = next(iter(dm.test_dataloader()))
    assert b["x"].shape == (4, 10, 1, 64, 64) and bool(b["y_mask"].all())


def test_mnist_idx_matches_official_md5():
    require("mnist/train-images-idx3-ubyte.gz")
    import gzip

    raw = gzip.decompress((DATA_DIR / "mnist/train-images-idx3-ubyte.gz").read_bytes())
    assert hashlib.md5(raw).hexdigest() == "6bbc9ace898e44ae57da46a324031adb"
    imgs = D.read_idx(DATA_DIR / "mnist/train-images-idx3-ubyte.gz")
    assert imgs.shape == (60000, 28, 28) and imgs.dtype == np.uint8
    labels = D.read_idx(DATA_DIR / "mnist/train-labels-idx1-ubyte.gz")
    assert labels.shape == (60000,) and labels.max() == 9


def test_download_with_local_urls(tmp_path, monkeypatch):
    import zipfile

    from stpatch.data import registry

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.csv").write_text("1,2\n")
    with zipfile.ZipFile(src / "repo.zip", "w") as z:
        z.writestr("repo-master/radar/x/20200101/f1.gif", b"GIF")
        z.writestr("repo-master/other/ignored.txt", b"no")
    entry = D.DatasetInfo(
        name="tmp_set",
        kind="sensor",
        field="sensor",
        description="test",
        source="local",
        urls={
            "t/a.csv": (
                ("file:///nonexistent/a.csv", (src / "a.csv").as_uri()),
                hashlib.sha256(b"1,2\n").hexdigest(),
            ),
            "radar/x/": ((src / "repo.zip").as_uri(), None),
            "t/optional.bin": ("file:///nonexistent/o.bin", None, "optional"),
        },
    )
    monkeypatch.setitem(registry._REGISTRY, "tmp_set", (entry, lambda data_dir, info: None))
    out = D.download("tmp_set", data_dir=tmp_path / "data")
    assert (tmp_path / "data/t/a.csv").read_text() == "1,2\n"
    assert (tmp_path / "data/radar/x/20200101/f1.gif").read_bytes() == b"GIF"
    assert not (tmp_path / "data/other").exists() and len(out) == 2
    assert D.download("tmp_set", data_dir=tmp_path / "data")  # present: kept, no error
