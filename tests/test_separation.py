"""Known sensor groups, raw-value statistics, and the separation of Los-loop's road communities by region features."""

from __future__ import annotations

import numpy as np
import pytest

import stpatch
from stpatch.analysis.inputs import as_run
from stpatch.analysis.separation import known_sensor_groups, sensor_separation, sensor_value_statistics

try:
    from data_helpers import DATA_DIR, require
except ImportError:  # tests/ imported as a package
    from tests.data_helpers import DATA_DIR, require


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Labels equal up to renaming the groups."""
    return len(set(zip(a.tolist(), b.tolist()))) == len(set(a.tolist())) == len(set(b.tolist()))


def test_known_groups_come_from_the_graph_or_the_coordinates():
    # two cliques of 5 joined by one weak edge: the graph's communities are the cliques
    a = np.zeros((10, 10))
    a[:5, :5] = a[5:, 5:] = 1.0
    a[4, 5] = 0.01
    truth = np.repeat([0, 1], 5)
    assert _same_partition(known_sensor_groups({"adjacency": a}, 2, "adjacency"), truth)
    # coordinates: two clusters far apart, interleaved in index order
    coords = np.array([[50.0 + (i % 2) * 5, 10.0 + 0.01 * i] for i in range(10)])
    assert _same_partition(known_sensor_groups({"coords": coords}, 2, "coords"), np.arange(10) % 2)
    with pytest.raises(ValueError, match="needs the data's adjacency"):
        known_sensor_groups({"coords": coords}, 2, "adjacency")
    with pytest.raises(ValueError, match="grouping must be one of"):
        known_sensor_groups({"coords": coords}, 2, "highway")


def test_value_statistics_per_sensor():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 4, 3)) + np.array([0.0, 10.0, -5.0])  # (W, T, N): sensors at different levels
    stats = sensor_value_statistics(x)
    assert stats.shape == (3, 5)
    np.testing.assert_allclose(stats[:, 0], x.mean((0, 1)))
    np.testing.assert_allclose(stats[:, 1], x.std((0, 1)))
    np.testing.assert_allclose(stats[:, 3], np.median(x.reshape(-1, 3), 0))


def test_los_loop_features_separate_road_communities_better_than_value_statistics(tmp_path, monkeypatch):
    """The measure of issue 13 on real data: stpnet_sensor with the Los-loop suite's settings, trained 3
    epochs; its sensor features separate the road graph's 4 communities better than each sensor's value
    statistics. Measured: after 1 epoch 0.50 vs 0.47 (this assertion fails there), 3 epochs 0.60, 6 epochs
    0.73, the 20-minute benchmark run 0.78 (README.md, region features)."""
    require("traffic/los_loop/los_speed.csv", "traffic/los_loop/los_adj.csv")
    from stpatch.bench.suites import SUITES

    suite = SUITES["los_loop"]
    # one member of the suite's ensemble: the features are the first member's anyway, at a third of the time
    model = {k: v for k, v in suite.models[0].items() if k not in ("train", "members")}
    monkeypatch.setenv("STPATCH_DATA_DIR", str(DATA_DIR))
    stpatch.train({"data": dict(suite.data), "model": model, "run_dir": str(tmp_path / "run"),
                   "train": {"max_epochs": 3, "seed": 0, "progress": False, "loss": "mae", "lr": 2e-3}})
    run = as_run(tmp_path / "run")  # loaded once for both calls
    res = sensor_separation(run, groups=4, grouping="adjacency")
    assert res.windows > 300 and res.labels.shape == (207,) and len(set(res.labels.tolist())) == 4
    assert res.features > res.statistics + 0.05, (res.features, res.statistics)
    run.meta["kind"] = "grid"
    with pytest.raises(ValueError, match="needs a sensor run"):
        sensor_separation(run)
