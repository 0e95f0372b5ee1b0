"""The model registry and the baselines' own behaviour."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stpatch.models import (
    Climatology,
    LinearAR,
    Persistence,
    create_model,
    get_model_entry,
    list_models,
    register_model,
)
from stpatch.models import registry as reg

EXPECTED = {
    "persistence", "climatology", "linear", "convlstm", "stpnet", "stpnet_tiny", "stpnet_small",
    "stpnet_base", "stpformer", "stpconv", "stpnet_sensor", "stid",
}


def test_list_models_content_and_filters():
    names = list_models()
    assert EXPECTED <= set(names) and names == sorted(names)
    assert list_models("stpnet_*") == ["stpnet_base", "stpnet_sensor", "stpnet_small", "stpnet_tiny"]
    assert "stpnet_sensor" not in list_models(kind="grid")
    assert {"persistence", "climatology", "linear", "stpnet_sensor", "stid"} <= set(list_models(kind="sensor"))
    assert "stpnet" not in list_models(kind="sensor")


def test_unknown_model_lists_available():
    with pytest.raises(ValueError, match="unknown model 'stpnett'.*available models: .*stpnet"):
        create_model("stpnett")


def test_every_model_declares_its_kind():
    for name in list_models():
        entry = get_model_entry(name)
        assert entry.kind in ("grid", "sensor")
        kw = {"num_nodes": 6} if entry.kind == "sensor" else {}
        try:
            model = create_model(name, in_channels=1, t_in=3, t_out=2, **kw)
        except ImportError:  # an optional dependency (e.g. pysteps) is not installed
            continue
        assert model.kind == entry.kind


def test_context_args_are_dropped_for_models_that_do_not_take_them():
    model = create_model("stpnet_tiny", in_channels=1, t_in=3, t_out=2, num_nodes=5, coords=None, adjacency=None)
    assert model.kind == "grid"
    sensor = create_model("persistence", in_channels=1, t_in=3, t_out=2, num_nodes=5)
    assert sensor.kind == "sensor"
    with pytest.raises(TypeError):
        create_model("stpnet_tiny", in_channels=1, t_in=3, t_out=2, dimz=3)


def test_register_model_decorator():
    @register_model("tmp_test_model")
    class Tmp(nn.Module):
        """A test model."""

        kind = "sensor"

        def __init__(self, in_channels=1, t_in=1, t_out=1, num_nodes=None):
            super().__init__()
            self.num_nodes = num_nodes

    try:
        assert "tmp_test_model" in list_models(kind="sensor")
        assert create_model("tmp_test_model", num_nodes=4).num_nodes == 4
        assert get_model_entry("tmp_test_model").description == "A test model."
        with pytest.raises(ValueError, match="already registered"):
            register_model("tmp_test_model")(lambda **kw: None)
    finally:
        reg._REGISTRY.pop("tmp_test_model")


# --------------------------------------------------------------------------- baselines


def test_persistence_grid_and_sensor():
    x = torch.randn(2, 4, 3, 5, 6)
    torch.testing.assert_close(Persistence(3, 4, 2)(x), x[:, -1:].expand(2, 2, 3, 5, 6))
    s = torch.randn(2, 4, 7, 1)
    torch.testing.assert_close(Persistence(1, 4, 3, num_nodes=7)(s), s[:, -1:].expand(2, 3, 7, 1))


def test_climatology_window_mean_then_fitted_by_time_of_day():
    model = Climatology(1, 4, 3, num_nodes=2, slots=4)
    x = torch.randn(1, 4, 2, 1)
    torch.testing.assert_close(model(x), x.mean(1, keepdim=True).expand(1, 3, 2, 1))
    # training series: value = slot index at sensor 0, -slot at sensor 1
    t = torch.arange(40) / 40.0
    slot = (t * 4).floor()
    series = torch.stack([slot, -slot], dim=1)[None, :, :, None]
    model.fit(series, tod=t[None])
    assert model.fitted
    tod = torch.tensor([[0.1, 0.15, 0.2, 0.45]])  # next steps at 0.5+0.25k... step 0.25 -> 0.7, 0.95, 0.2
    out = model(x, tod=tod)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([2.0, 3.0, 0.0]))
    torch.testing.assert_close(out[0, :, 1, 0], torch.tensor([-2.0, -3.0, 0.0]))
    # without tod: the overall mean
    torch.testing.assert_close(model(x)[0, 0, 0, 0], slot.mean())
    # buffers survive a state_dict round trip into a fresh model
    fresh = Climatology(1, 4, 3, num_nodes=2, slots=4)
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(fresh(x, tod=tod), out)


def test_climatology_fit_from_batches():
    model = Climatology(1, 3, 2)
    batches = [(torch.ones(2, 3, 1, 4, 4), None), (3 * torch.ones(2, 3, 1, 4, 4), None)]
    model.fit(batches)
    torch.testing.assert_close(model(torch.zeros(1, 3, 1, 4, 4)), torch.full((1, 2, 1, 4, 4), 2.0))


def test_linear_shared_and_per_location():
    x = torch.randn(2, 5, 1, 4, 6)
    shared = LinearAR(1, 5, 3)
    torch.testing.assert_close(shared(x), x[:, -1:].expand(2, 3, 1, 4, 6))  # starts as persistence
    assert not shared.per_location and shared.weight.numel() + shared.bias.numel() == 3 * 5 + 3
    assert sum(p.numel() for p in shared.parameters()) == 0  # fitted in closed form, not by an optimiser
    assert sum(p.numel() for p in LinearAR(1, 5, 3, trainable=True).parameters()) == 3 * 5 + 3
    per = LinearAR(1, 5, 3, grid_size=(4, 6))  # per location whenever the locations are known
    assert per.per_location and per.weight.shape == (24, 3, 5)
    assert per(x).shape == (2, 3, 1, 4, 6)
    sensors = create_model("linear", in_channels=2, t_in=5, t_out=3, num_nodes=7)
    assert sensors.per_location and sensors(torch.randn(2, 5, 7, 2)).shape == (2, 3, 7, 2)
    assert create_model("linear", in_channels=1, t_in=5, t_out=3, grid_size=(4, 6)).per_location
    with pytest.raises(ValueError, match="per_location"):
        LinearAR(1, 5, 3, per_location=True)


def test_linear_fits_a_linear_rule_exactly():
    torch.manual_seed(0)
    x = torch.randn(8, 4, 1, 5, 5)
    y = torch.stack([0.5 * x[:, 3] + 0.5 * x[:, 2], x[:, 0] - 1.0], dim=1)
    closed = LinearAR(1, 4, 2, ridge=0.0).fit([(x, y)])  # shared weights, least squares in closed form
    torch.testing.assert_close(closed(x), y, atol=1e-5, rtol=1e-5)
    model = LinearAR(1, 4, 2, trainable=True)
    opt = torch.optim.LBFGS(model.parameters(), max_iter=100)

    def closure():
        opt.zero_grad()
        loss = (model(x) - y).square().mean()
        loss.backward()
        return loss

    opt.step(closure)
    assert closure().item() < 1e-8


def test_convlstm_horizon_independent_of_input():
    model = create_model("convlstm", in_channels=2, t_in=3, t_out=7, hidden=(8,))
    assert model(torch.randn(1, 3, 2, 10, 14)).shape == (1, 7, 2, 10, 14)
    assert model(torch.randn(1, 5, 2, 10, 14)).shape == (1, 7, 2, 10, 14)  # any input length
