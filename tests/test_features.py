"""Region features: shapes, pixel boxes and coordinates, files and their round trip, similarity, maps, separation."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

import stpatch
from stpatch.analysis.feature_maps import kmeans_regions, pca_rgb, save_feature_maps, separation
from stpatch.analysis.features import RegionFeatures, load_features, region_features_of, with_geometry
from stpatch.engine.module import ForecastModule

try:
    from test_engine_run import assert_figure, tiny_grid_config
except ImportError:  # tests/ imported as a package
    from tests.test_engine_run import assert_figure, tiny_grid_config


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("features") / "run"
    stpatch.train(tiny_grid_config(run_dir))
    return run_dir


def test_grid_features_of_a_run_tile_the_image_and_round_trip_through_netcdf(grid_run, tmp_path):
    rf = stpatch.features(grid_run)
    # 32 x 32 digits, patch 4: 8 x 8 regions of 4 x 4 pixels, the vectors the patch head reads (dims[0] = 32)
    assert rf.kind == "grid" and rf.values.shape == (8, 8, 32) and rf.windows == 8  # the 8 test windows
    assert np.isfinite(rf.values).all() and rf.values.std() > 0
    covered = np.zeros((32, 32), int)
    for y0, y1, x0, x1 in rf.boxes.reshape(-1, 4):
        covered[y0:y1, x0:x1] += 1
    assert (covered == 1).all(), "the regions' pixel boxes must tile the image exactly once"
    path = rf.save(tmp_path / "f.nc")
    import xarray as xr

    with xr.open_dataset(path) as ds:
        assert ds.features.dims == ("region_y", "region_x", "feature")
        assert ds.y0.values.tolist() == list(range(0, 32, 4)) and ds.x1.values.tolist() == list(range(4, 33, 4))
    back = load_features(path)
    np.testing.assert_allclose(back.values, rf.values, rtol=1e-6)
    np.testing.assert_array_equal(back.boxes, rf.boxes)
    # fewer windows pooled: a different mean
    assert stpatch.features(grid_run, limit_batches=1).windows == 4


def test_features_command_writes_the_file_the_maps_and_the_similar_regions(grid_run):
    from stpatch.cli import app

    res = CliRunner().invoke(app, ["features", "--checkpoint", str(grid_run), "--similar-to", "1,2", "--k", "3"])
    assert res.exit_code == 0, res.output
    folder = grid_run / "features"
    assert load_features(folder / "features.nc").values.shape == (8, 8, 32)
    for name in ("features_pca.png", "features_clusters.png"):
        assert_figure(folder / name)
    first = [line for line in res.output.splitlines() if "\t" in line][0]
    assert first.startswith("(1, 2)\t1.000")


def test_lat_lon_bounds_of_each_region():
    lat = np.linspace(60, 50, 10)  # north first, as ERA5 stores it
    lon = np.linspace(-8, 2, 12)
    run = SimpleNamespace(meta={"kind": "grid", "spatial_shape": [10, 12], "lat": lat.tolist()}, checkpoint="x")
    dm = SimpleNamespace(data=SimpleNamespace(coords={"lat": lat, "lon": lon}))
    rf = with_geometry(np.zeros((3, 4, 2), np.float32), 5, run, dm)
    # ceil(10/3) = 4 rows per region: rows 0-3, 4-7, 8-9; 3 columns per region
    assert rf.boxes[2, 3].tolist() == [8, 10, 9, 12]
    np.testing.assert_allclose(rf.lat_bounds[0], [lat[3], lat[0]])
    np.testing.assert_allclose(rf.lat_bounds[2], [lat[9], lat[8]])
    np.testing.assert_allclose(rf.lon_bounds[1], [lon[3], lon[5]])
    ds = rf.to_xarray()
    np.testing.assert_allclose(ds.lat_max.values, [lat[0], lat[4], lat[8]])


def sensor_module(n=10, coords=None):
    meta = {"kind": "sensor", "in_channels": 1, "t_in": 6, "t_out": 2, "spatial_shape": [n], "num_nodes": n,
            "coords": coords, "adjacency": None}
    torch.manual_seed(0)
    return ForecastModule({"name": "stpnet_sensor", "group_size": 4}, meta, {}), meta


def test_sensor_features_one_row_per_sensor_with_coordinates_csv_round_trip(tmp_path):
    coords = np.random.default_rng(0).uniform([34, -118.5], [34.2, -118.1], (10, 2))
    module, meta = sensor_module(coords=coords.tolist())
    batches = [{"x": torch.randn(5, 6, 10, 1)}, {"x": torch.randn(3, 6, 10, 1)}]
    values, windows = region_features_of(module, batches, "sensor")
    assert values.shape == (10, 32) and windows == 8
    rf = with_geometry(values, windows, SimpleNamespace(meta=meta, checkpoint="x"))
    np.testing.assert_allclose(rf.coords, coords)
    back = load_features(rf.save(tmp_path / "s.csv"))
    np.testing.assert_allclose(back.values, values, rtol=1e-5)
    np.testing.assert_allclose(back.coords, coords)
    assert rf.similar(3)[0][0] == 3
    for path in save_feature_maps(rf, tmp_path):
        assert_figure(path)


def test_a_model_without_region_features_is_refused():
    meta = {"kind": "grid", "in_channels": 1, "t_in": 4, "t_out": 2, "spatial_shape": [8, 8]}
    module = ForecastModule({"name": "persistence"}, meta, {})
    with pytest.raises(ValueError, match="no region features"):
        region_features_of(module, [{"x": torch.zeros(1, 4, 1, 8, 8)}], "grid")


def test_similarity_query_returns_the_region_itself_first_even_beside_a_duplicate():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(3, 3, 8)).astype(np.float32)
    values[0, 0] = values[2, 2]  # an identical twin of the query
    values[1, 1] = values[2, 2] * 0.9 + 0.01 * values[0, 1]  # and a near one
    rf = RegionFeatures(values, "grid")
    found = rf.similar((2, 2), k=3)
    assert [i for i, _ in found] == [8, 0, 4]
    assert found[0][1] == pytest.approx(1.0) and found[1][1] == pytest.approx(1.0)
    assert found[2][1] < found[1][1]


def test_pca_colours_and_kmeans_chooses_k_by_silhouette():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0, 0, 0], [10, 0, 0, 0], [0, 10, 0, 0]])
    x = np.concatenate([c + rng.normal(0, 0.3, (20, 4)) for c in centres])
    labels, k = kmeans_regions(x)
    assert k == 3
    assert all(len(set(labels[i * 20:(i + 1) * 20])) == 1 for i in range(3))
    rgb = pca_rgb(x)
    assert rgb.shape == (60, 3) and rgb.min() == 0 and rgb.max() == 1
    assert kmeans_regions(x, k=5)[1] == 5


class _ChangeEnergy(nn.Module):
    """A grid model whose region features are known: the mean squared step-to-step change of each 8 x 8 block.

    ``forward_features``: ``(B, T, 1, H, W) -> (B, 1, H/8, W/8, 2)``.
    """

    kind = "grid"

    def forward_features(self, x, tod=None):
        change = x.diff(dim=1)[:, :, 0] ** 2  # (B, T-1, H, W)
        lag2 = (x[:, 2:, 0] - x[:, :-2, 0]) ** 2
        feats = torch.stack([F.avg_pool2d(change.mean(1, keepdim=True), 8)[:, 0],
                             F.avg_pool2d(lag2.mean(1, keepdim=True), 8)[:, 0]], -1)
        return feats[:, None]

    def forward(self, x, tod=None):
        return x[:, -1:]


class _Wrapped(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model(batch["x"])


def test_features_separate_what_raw_value_statistics_cannot():
    """Mechanism with a known answer: regions oscillate fast or slow (same values, same spread), in a
    random layout; features that see dynamics separate them, per-region value statistics do not."""
    rng = np.random.default_rng(0)
    ny, b, t = 8, 32, 8
    labels = rng.permutation(np.arange(ny * ny) % 2).reshape(ny, ny)
    period = np.where(labels == 1, 3.0, 12.0)
    steps = np.arange(t)[None, :, None, None]
    waves = np.sin(2 * np.pi * steps / period + rng.uniform(0, 2 * np.pi, (b, 1, ny, ny)))  # (B, T, nY, nX)
    x = np.kron(waves, np.ones((8, 8)))[:, :, None].astype(np.float32)
    x += rng.normal(0, 0.05, x.shape).astype(np.float32)
    batches = [{"x": torch.from_numpy(x[i:i + 8])} for i in range(0, b, 8)]
    values, windows = region_features_of(_Wrapped(_ChangeEnergy()), batches, "grid")
    assert values.shape == (ny, ny, 2) and windows == b
    blocks = x[:, :, 0].reshape(b, t, ny, 8, ny, 8)
    stats = np.stack([f(blocks, axis=(0, 1, 3, 5)) for f in (np.mean, np.std, np.min, np.max)], -1)
    feat_score = separation(values.reshape(-1, 2), labels.reshape(-1))
    stat_score = separation(stats.reshape(-1, 4), labels.reshape(-1))
    assert feat_score == 1.0
    assert stat_score < 0.8 and feat_score - stat_score > 0.2
