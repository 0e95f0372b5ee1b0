"""Attention as importance: maps sum to 1, a model made to attend to one place reports that place, sensors, the map."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from stpatch.analysis.importance import RegionImportance, importance_of, save_importance_map
from stpatch.engine.module import ForecastModule
from stpatch.nn import SpacetimeAttention

try:
    from test_engine_run import assert_figure
except ImportError:  # tests/ imported as a package
    from tests.test_engine_run import assert_figure


class _Beacon(nn.Module):
    """One attention layer whose queries all look for feature 0: the token carrying it draws the attention.

    Input ``batch["x"]``: tokens ``(B, nT, nH, nW, D)``.
    """

    def __init__(self, mode: str, dim: int = 4):
        super().__init__()
        self.attn = SpacetimeAttention(dim, heads=1, mode=mode, window=(1, 4, 4))
        qkv = self.attn.passes[0].qkv
        with torch.no_grad():
            qkv.weight.zero_()
            qkv.bias.zero_()
            qkv.bias[:dim] = 1.0  # q = ones
            qkv.weight[dim:2 * dim] = torch.eye(dim)  # k = the token itself

    def forward(self, x):
        return self.attn(x)


def tokens_with_beacon(where, b=3, grid=(2, 8, 8), dim=4, strength=20.0):
    x = torch.zeros(b, *grid, dim)
    x[:, :, where[0], where[1], 0] = strength
    return x


@pytest.mark.parametrize("mode", ["joint", "window", "axial"])
def test_a_model_made_to_attend_to_one_place_reports_that_place(mode):
    where = (5, 2)
    series = importance_of(_Beacon(mode), [{"x": tokens_with_beacon(where)}, {"x": tokens_with_beacon(where, b=2)}], "grid")
    assert series.shape == (5, 8, 8)
    np.testing.assert_allclose(series.sum((1, 2)), 1.0, rtol=1e-6)
    assert (series >= 0).all()
    for one in series:
        assert np.unravel_index(one.argmax(), one.shape) == where
    if mode == "joint":  # every query looks at the beacon
        assert series[0][where] > 0.9
    if mode == "window":  # only its own 4 x 4 window can: 16 of the 64 queries
        assert series[0][where] == pytest.approx(16 / 64, rel=0.01)


def test_no_attention_layers_is_a_clear_error():
    meta = {"kind": "grid", "in_channels": 1, "t_in": 4, "t_out": 2, "spatial_shape": [8, 8]}
    with pytest.raises(ValueError, match="no attention layers"):
        importance_of(ForecastModule({"name": "persistence"}, meta, {}), [{"x": torch.zeros(1, 4, 1, 8, 8)}], "grid")


def test_sensor_importance_one_share_per_sensor_and_the_sensor_map(tmp_path):
    n = 10
    coords = np.random.default_rng(0).uniform([34, -118.5], [34.2, -118.1], (n, 2))
    meta = {"kind": "sensor", "in_channels": 1, "t_in": 6, "t_out": 2, "spatial_shape": [n], "num_nodes": n,
            "coords": coords.tolist(), "adjacency": None}
    torch.manual_seed(0)
    module = ForecastModule({"name": "stpnet_sensor", "group_size": 4}, meta, {})
    series = importance_of(module, [{"x": torch.randn(4, 6, n, 1)}], "sensor")
    assert series.shape == (4, n)
    np.testing.assert_allclose(series.sum(1), 1.0, rtol=1e-6)
    # a group's share is split evenly among its sensors: sensors of one group get equal shares
    groups = module.model.groups
    group_of = (groups.inverse // groups.group_size).numpy()
    for g in np.unique(group_of):
        assert np.ptp(series[:, group_of == g], axis=1).max() < 1e-9
    mean = series.mean(0)
    path = save_importance_map(RegionImportance(mean / mean.sum(), series, "sensor", coords), tmp_path / "imp.png")
    assert_figure(path)


def test_grid_importance_map(tmp_path):
    series = importance_of(_Beacon("window"), [{"x": tokens_with_beacon((1, 6))}], "grid")
    path = save_importance_map(RegionImportance(series.mean(0), series, "grid"), tmp_path / "imp.png")
    assert_figure(path)
