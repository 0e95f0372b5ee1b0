"""Named data sets: registry entries, loading the real files, documented shapes and splits."""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
from pathlib import Path

import numpy as np
import pytest

import stpatch.data as D
from stpatch.data import sets
from stpatch.data.registry import _fetch, dataset_table, families

try:
    from data_helpers import DATA_DIR, require
except ImportError:  # tests/ imported as a package
    from tests.data_helpers import DATA_DIR, require

# the data sets the tests below rely on; a new family needs no edit here (the union test covers it)
ALL = ["chickenpox", "digits", "era5_uk_t2m", "los_loop", "moving_mnist", "radar_fmi", "radar_mch"]


def test_list_and_info_entries_are_complete():
    assert set(ALL) <= set(D.list_datasets())
    for name in D.list_datasets():
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
    assert "csi@1.0" in D.info("radar_mch").metrics
    assert D.info("era5_uk_t2m").metrics == ("lat_weighted_rmse", "lat_weighted_acc")
    assert D.info("los_loop").metrics == ("masked_mae", "masked_rmse", "masked_mape")


def test_every_family_module_registers_and_the_registry_is_their_union():
    modules = [m.name for m in pkgutil.iter_modules(sets.__path__) if not m.name.startswith("_")]
    assert set(modules) == set(families())
    union = set()
    for name in modules:
        module = importlib.import_module(f"stpatch.data.sets.{name}")
        declared = {entry.name for entry, _ in module.DATASETS}
        assert declared, f"sets.{name} declares no data set"
        assert set(families()[name]) == declared
        for entry, loader in module.DATASETS:
            assert D.info(entry.name) is entry and callable(loader)
        assert not declared & union, f"sets.{name} declares a name another family has"
        union |= declared
    assert sorted(union) == D.list_datasets()


def test_readme_table_is_the_generated_one():
    readme = Path(__file__).resolve().parents[1] / "README.md"
    if not readme.exists():
        pytest.skip(f"{readme} not found (tests run outside the source tree)")
    text = readme.read_text()
    start, end = "<!-- datasets:table -->\n", "\n<!-- /datasets:table -->"
    assert start in text and end in text, "README.md lost its data-set table markers"
    block = text[text.index(start) + len(start) : text.index(end)]
    builtin = sorted(n for names in families().values() for n in names)
    assert block == dataset_table("markdown", names=builtin), (
        "README.md's data-set table is stale: run `make docs` (stpatch.data.registry.write_dataset_table)"
    )


def test_write_dataset_table_replaces_only_the_block(tmp_path):
    from stpatch.data.registry import write_dataset_table

    page = tmp_path / "README.md"
    page.write_text("intro\n<!-- datasets:table -->\nold\n<!-- /datasets:table -->\noutro\n")
    assert write_dataset_table(page, names=["los_loop"]) is True
    text = page.read_text()
    assert text.startswith("intro\n<!-- datasets:table -->\n| name |") and text.endswith("<!-- /datasets:table -->\noutro\n")
    assert "old" not in text and "`los_loop`" in text
    assert write_dataset_table(page, names=["los_loop"]) is False  # unchanged the second time
    page.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        write_dataset_table(page)


def test_dataset_table_formats():
    md = dataset_table("markdown", names=["los_loop"]).splitlines()
    assert md[0] == "| name | field | source | sample shape | split | metrics | baselines |"
    assert md[2].startswith("| `los_loop` | sensor | L. Zhao") and "`masked_mape`" in md[2]
    text = dataset_table("text")
    assert text.splitlines()[0].startswith("name") and text.splitlines()[0].endswith("baselines")
    assert all(name in text for name in D.list_datasets())
    with pytest.raises(ValueError, match="format"):
        dataset_table("html")


def test_old_module_paths_still_import():
    from stpatch.data import catalog, moving, radar, sensors, weather
    from stpatch.data.sets import graph, traffic
    from stpatch.data.sets import moving as moving_set
    from stpatch.data.sets import radar as radar_set
    from stpatch.data.sets import weather as weather_set

    assert moving.load_moving_mnist is moving_set.load_moving_mnist
    assert moving.sklearn_digit_images is moving_set.sklearn_digit_images
    assert radar.load_radar is radar_set.load_radar and radar.RADAR_EVENTS["mch"][0] == "20150515"
    assert weather.load_era5_uk_t2m is weather_set.load_era5_uk_t2m
    assert sensors.load_los_loop is traffic.load_los_loop and sensors.load_chickenpox is graph.load_chickenpox
    assert catalog.ERA5 is D.info("era5_uk_t2m") and catalog.MOVING_MNIST is D.info("moving_mnist")
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        radar.nope  # noqa: B018


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
    for name in D.list_datasets():
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


def test_carphone_is_the_real_clip_in_rgb_with_a_chronological_split():
    require("video/carphone_pristine.mp4")
    d = D.load("carphone", data_dir=DATA_DIR)
    assert d.segments[0].shape == (120, 3, 144, 176) and d.channels == ["red", "green", "blue"]
    x = d.segments[0]
    assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    assert not np.array_equal(x[:, 0], x[:, 1])  # colour, not grey stored three times
    grey = D.load("carphone", data_dir=DATA_DIR, grayscale=True, max_frames=10)
    assert grey.segments[0].shape == (10, 1, 144, 176)
    dm = D.make_datamodule("carphone", data_dir=DATA_DIR)
    dm.setup()
    assert (dm.t_in, dm.t_out) == (4, 4)
    assert dm.ranges["train"] == [(0, 0, 72)] and dm.ranges["test"] == [(0, 96, 120)]
    b = next(iter(dm.test_dataloader()))
    np.testing.assert_array_equal(b["x"][0].numpy(), x[96:100])  # identity scaler: the frames as read


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
    pytest.importorskip("cfgrib", reason="reading GRIB needs the grib extra: pip install 'stpatch[grib]'")
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


def local_set(monkeypatch, name, urls, after_download=None):
    """Register a throwaway data set with local URLs for the length of one test."""
    from stpatch.data import registry

    entry = D.DatasetInfo(
        name=name, kind="sensor", field="sensor", description="test", source="local", urls=urls
    )
    monkeypatch.setitem(registry._REGISTRY, name, (entry, lambda data_dir, info: None))
    if after_download is not None:
        monkeypatch.setitem(registry._AFTER_DOWNLOAD, name, after_download)
    return entry


def test_download_with_local_urls(tmp_path, monkeypatch):
    import zipfile

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.csv").write_text("1,2\n")
    with zipfile.ZipFile(src / "repo.zip", "w") as z:
        z.writestr("repo-master/radar/x/20200101/f1.gif", b"GIF")
        z.writestr("repo-master/other/ignored.txt", b"no")
    urls = {
        "t/a.csv": (
            ("file:///nonexistent/a.csv", (src / "a.csv").as_uri()),
            hashlib.sha256(b"1,2\n").hexdigest(),
        ),
        "radar/x/": ((src / "repo.zip").as_uri(), None),
        "t/optional.bin": ("file:///nonexistent/o.bin", None, "optional"),
    }
    local_set(monkeypatch, "tmp_set", urls)
    out = D.download("tmp_set", data_dir=tmp_path / "data")
    assert (tmp_path / "data/t/a.csv").read_text() == "1,2\n"
    assert (tmp_path / "data/radar/x/20200101/f1.gif").read_bytes() == b"GIF"
    assert not (tmp_path / "data/other").exists() and len(out) == 2
    assert D.download("tmp_set", data_dir=tmp_path / "data")  # present: kept, no error


def test_download_runs_the_after_download_step(tmp_path, monkeypatch):
    from stpatch.data import registry

    src = tmp_path / "a.csv"
    src.write_text("1\n")
    calls = []

    def after(info, data_dir):
        calls.append((info.name, data_dir))
        return [data_dir / "t/converted.nc"]

    local_set(monkeypatch, "tmp_hooked", {"t/a.csv": (src.as_uri(), None)}, after_download=after)
    out = D.download("tmp_hooked", data_dir=tmp_path / "data")
    assert calls == [("tmp_hooked", tmp_path / "data")]
    assert out == [tmp_path / "data/t/a.csv", tmp_path / "data/t/converted.nc"]
    from stpatch.data.sets import weather

    assert registry._AFTER_DOWNLOAD["era5_uk_t2m"] is weather.after_download
    assert weather.after_download(D.info("era5_uk_t2m"), tmp_path / "empty") == []  # nothing to convert
