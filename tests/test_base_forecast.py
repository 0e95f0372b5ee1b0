"""forecast = base + correction: an untrained model is its base; fitted bases; the engine fits them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stpatch.models import BasedForecaster, Climatology, LinearAR, create_model, fit_forecaster
from stpatch.models.base_forecast import extend_time_features

N = 7


def _sensor_batches(n_batches=3, b=8, t_in=6, t_out=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        series = torch.randn(b, t_in + t_out, N, 1, generator=g).cumsum(1)
        tod = (torch.arange(t_in, dtype=torch.float32)[None] / 48 + torch.rand(b, 1, generator=g)) % 1.0
        out.append({"x": series[:, :t_in], "y": series[:, t_in:], "tod": tod, "dow": torch.zeros(b, t_in, dtype=torch.long),
                    "x_mask": torch.ones(b, t_in, N, 1, dtype=torch.bool), "y_mask": torch.ones(b, t_out, N, 1, dtype=torch.bool)})
    return out


@pytest.mark.parametrize("name", ["stpnet_sensor", "stid"])
@pytest.mark.parametrize("base", ["persistence", "linear", "climatology"])
@pytest.mark.parametrize("feed_base", [False, True])
def test_untrained_sensor_model_is_exactly_its_base(name, base, feed_base):
    torch.manual_seed(0)
    model = create_model(name, in_channels=1, t_in=6, t_out=3, num_nodes=N, base=base, feed_base=feed_base)
    assert isinstance(model, BasedForecaster) and model.kind == "sensor"
    batches = _sensor_batches()
    fitted = fit_forecaster(model, batches)
    assert fitted == ([] if base == "persistence" else [""])  # the model fits its own base
    b = batches[0]
    out = model(b["x"], tod=b["tod"], dow=b["dow"])
    assert out.shape == (8, 3, N, 1)
    assert torch.equal(out, model.base(b["x"], tod=b["tod"]))
    # the correction learns, the base does not
    out.square().mean().backward()
    assert all(p.grad is None for p in model.base.parameters())
    assert model.correction.output_layer.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["stpnet_tiny", "stpconv", "stpformer"])
def test_untrained_grid_model_is_exactly_its_base(name):
    torch.manual_seed(0)
    model = create_model(name, in_channels=1, t_in=4, t_out=2, base="linear", grid_size=(9, 11))
    series = torch.randn(3, 30, 1, 9, 11).cumsum(1)
    model.base.fit(series)
    x = series[:, :4]
    torch.testing.assert_close(model(x), model.base(x), rtol=0, atol=0)
    assert model.base.per_location and model.base.weight.shape == (99, 2, 4)


def test_base_none_starts_at_zero_and_errors():
    model = create_model("stid", in_channels=1, t_in=6, t_out=3, num_nodes=N, base="none")
    assert model.base is None and torch.equal(model(torch.randn(2, 6, N, 1)), torch.zeros(2, 3, N, 1))
    with pytest.raises(ValueError, match="residual"):
        create_model("stpnet_sensor", in_channels=1, t_in=6, t_out=3, num_nodes=N, base="linear", residual=True)
    with pytest.raises(ValueError, match="parameter-free or fitted"):
        create_model("stpnet_sensor", in_channels=1, t_in=6, t_out=3, num_nodes=N, base="stid")
    with pytest.raises(ValueError, match="output_layer"):
        create_model("convlstm", in_channels=1, t_in=4, t_out=2, base="persistence")
    with pytest.raises(ValueError, match="unknown model"):
        create_model("stid", in_channels=1, t_in=6, t_out=3, num_nodes=N, base="persistance")
    with pytest.raises(ValueError, match="feed_base"):
        create_model("stid", in_channels=1, t_in=6, t_out=3, num_nodes=N, base="none", feed_base=True)


def test_fitted_base_lives_in_the_state_dict():
    kw = dict(in_channels=1, t_in=6, t_out=3, num_nodes=N, feed_base=True)
    model = create_model("stpnet_sensor", base="climatology", base_options={"slots": "auto"}, **kw)
    batches = _sensor_batches()
    fit_forecaster(model, lambda: batches)
    assert model.base.mean_.shape == (48, N, 1)  # tod steps of 1/48 day
    with torch.no_grad():
        model.correction.output_layer.weight.normal_()  # as if trained
    fresh = create_model("stpnet_sensor", base="climatology", base_options={"slots": "auto"}, **kw)
    fresh.load_state_dict(model.state_dict())
    assert fit_forecaster(fresh, batches) == []  # already fitted: nothing to do
    b = batches[1]
    torch.testing.assert_close(fresh(b["x"], tod=b["tod"]), model(b["x"], tod=b["tod"]))


@pytest.mark.parametrize("base", ["persistence", "linear"])
def test_scaled_correction_is_the_base_until_trained(base):
    torch.manual_seed(0)
    model = create_model("stid", in_channels=1, t_in=6, t_out=3, num_nodes=N, base=base, scale_correction=True)
    assert not model.fitted
    batches = _sensor_batches()
    assert fit_forecaster(model, batches) == [""] and model.fitted and getattr(model.base, "fitted", True)
    # the scale is the base's RMS error per lead on the training batches
    residual = torch.cat([b["y"] - model.base(b["x"]) for b in batches])
    torch.testing.assert_close(model.correction_scale, residual.square().mean((0, 2, 3)).sqrt())
    b = batches[0]
    assert torch.equal(model(b["x"], tod=b["tod"]), model.base(b["x"]))
    with torch.no_grad():
        model.correction.output_layer.bias.fill_(1.0)  # a correction of 1 at every lead ...
    out = model(b["x"], tod=b["tod"]) - model.base(b["x"])
    torch.testing.assert_close(out, model.correction_scale.reshape(1, 3, 1, 1).expand_as(out))  # ... in base-error units
    fresh = create_model("stid", in_channels=1, t_in=6, t_out=3, num_nodes=N, base=base, scale_correction=True)
    fresh.load_state_dict(model.state_dict())
    assert fresh.fitted and fit_forecaster(fresh, batches) == []


def test_fit_forecaster_keeps_the_random_state():
    model = create_model("linear", in_channels=1, t_in=6, t_out=3, num_nodes=N)
    state = torch.get_rng_state()
    assert fit_forecaster(model, _sensor_batches()) == [""]
    assert torch.equal(torch.get_rng_state(), state)


def test_extend_time_features_crosses_midnight():
    tod = torch.tensor([[22 / 24, 23 / 24]])
    dow = torch.tensor([[6, 6]])
    t, d = extend_time_features(tod, dow, 3)
    torch.testing.assert_close(t, torch.tensor([[22 / 24, 23 / 24, 0.0, 1 / 24, 2 / 24]]))
    assert d.tolist() == [[6, 6, 0, 0, 0]]


# --------------------------------------------------------------------------- the closed-form fits


def _lstsq_per_location(x: np.ndarray, y: np.ndarray, m: np.ndarray, ridge: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Independent fit: per location and lead, least squares over the rows whose target is observed.

    The ridge term (``ridge`` x the mean squared input, on the weights, not the bias) enters as
    extra rows of the system (augmented least squares), not through the normal equations.
    """
    b, t_in, p = x.shape
    t_out = y.shape[1]
    w, c = np.zeros((p, t_out, t_in)), np.zeros((p, t_out))
    for loc in range(p):
        for o in range(t_out):
            rows = m[:, o, loc]
            a = np.concatenate([x[rows, :, loc], np.ones((rows.sum(), 1))], axis=1)
            target = y[rows, o, loc]
            strength = np.sqrt(ridge * (a[:, :t_in] ** 2).sum(0).mean())
            a = np.concatenate([a, np.concatenate([strength * np.eye(t_in), np.zeros((t_in, 1))], axis=1)])
            sol = np.linalg.lstsq(a, np.concatenate([target, np.zeros(t_in)]), rcond=None)[0]
            w[loc, o], c[loc, o] = sol[:t_in], sol[t_in]
    return w, c


def test_linear_fit_is_masked_least_squares():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5, 4, 1)).astype(np.float32)
    y = (0.7 * x[:, -1:] - 0.2 * x[:, :1] + 0.1 * rng.normal(size=(200, 2, 4, 1))).astype(np.float32)
    mask = rng.uniform(size=y.shape) > 0.2
    y_bad = np.where(mask, y, 1e3).astype(np.float32)  # missing targets hold garbage: they must not count
    model = LinearAR(1, 5, 2, num_nodes=4, ridge=0.0)
    assert not model.fitted and sum(p.numel() for p in model.parameters()) == 0
    batches = [{"x": torch.from_numpy(x[i:i + 50]), "y": torch.from_numpy(y_bad[i:i + 50]),
                "y_mask": torch.from_numpy(mask[i:i + 50])} for i in range(0, 200, 50)]
    model.fit(batches)
    assert model.fitted
    w, c = _lstsq_per_location(x.reshape(200, 5, 4), y.reshape(200, 2, 4), mask.reshape(200, 2, 4))
    np.testing.assert_allclose(model.weight.numpy(), w, atol=1e-4)
    np.testing.assert_allclose(model.bias.numpy(), c, atol=1e-4)


def test_linear_fit_from_a_series_and_trainable_variant():
    torch.manual_seed(0)
    series = torch.randn(2, 60, 3, 1).cumsum(1)
    a = LinearAR(1, 4, 2, num_nodes=3).fit(series)
    windows = torch.stack([series[:, i:i + 6] for i in range(55)], 1).flatten(0, 1)
    b = LinearAR(1, 4, 2, num_nodes=3).fit([(windows[:, :4], windows[:, 4:])])
    torch.testing.assert_close(a.weight, b.weight)
    trainable = LinearAR(1, 4, 2, num_nodes=3, trainable=True).fit(series)
    assert isinstance(trainable.weight, torch.nn.Parameter) and trainable.has_parameters
    torch.testing.assert_close(trainable.weight.detach(), a.weight)


def test_climatology_fit_leaves_out_missing_entries():
    x = torch.tensor([1.0, 3.0, 0.0, 5.0]).reshape(1, 4, 1, 1)
    mask = torch.tensor([True, True, False, True]).reshape(1, 4, 1, 1)
    model = Climatology(1, 2, 1, num_nodes=1).fit(x, mask=mask)
    torch.testing.assert_close(model.overall_, torch.tensor([[3.0]]))
    batch = {"x": x, "x_mask": mask}
    torch.testing.assert_close(Climatology(1, 2, 1, num_nodes=1).fit([batch]).overall_, torch.tensor([[3.0]]))


# --------------------------------------------------------------------------- through the engine


def _sensor_data(steps=400, nodes=5):
    """A daily cycle with an AR(1) wiggle on a small sensor network, one missing reading."""
    from stpatch.data import from_numpy

    rng = np.random.default_rng(0)
    t = np.arange(steps)
    noise = np.zeros((steps, nodes))
    for i in range(1, steps):
        noise[i] = 0.8 * noise[i - 1] + rng.normal(0, 1, nodes)
    values = 50 + 10 * np.sin(2 * np.pi * t / 48)[:, None] + noise
    values[40, 2] = 0.0  # a missing reading (null value 0)
    times = np.datetime64("2024-01-01T00:00") + t * np.timedelta64(30, "m")
    return from_numpy(values.astype(np.float32), layout="TN", times=times, null_value=0.0)


def _config(tmp_path, model, baselines):
    return {"data": {"name": "mine", "t_in": 6, "t_out": 3, "batch_size": 16},
            "model": model, "train": {"max_steps": 3, "seed": 0, "progress": False},
            "eval": {"baselines": baselines}, "run_dir": str(tmp_path / "run")}


def test_evaluate_fits_the_linear_baseline_on_the_training_split(tmp_path):
    import stpatch
    from stpatch.data import make_datamodule

    data = _sensor_data()
    stpatch.train(_config(tmp_path, {"name": "persistence"}, ["linear"]), data=data)
    result = stpatch.evaluate(tmp_path / "run", data=data, write=False, figures=False)
    lin, per = result["per_horizon"]["linear"]["masked_mae"], result["per_horizon"]["persistence"]["masked_mae"]
    assert lin != pytest.approx(per, rel=1e-3)

    # an independent least-squares fit on the same scaled training windows scores the same
    dm = make_datamodule(data, t_in=6, t_out=3, batch_size=16, seed=0)
    dm.setup()
    train = list(dm.train_dataloader())
    x = torch.cat([b["x"] for b in train]).flatten(2).double().numpy()
    y = torch.cat([b["y"] for b in train]).flatten(2).double().numpy()
    m = torch.cat([b["y_mask"] for b in train]).flatten(2).numpy()
    w, c = _lstsq_per_location(x, y, m, ridge=LinearAR(1, 6, 3).ridge)
    errors, counts = np.zeros(3), np.zeros(3)
    for b in dm.test_dataloader():
        xb = b["x"].flatten(2).double().numpy()
        pred = np.einsum("btp,pot->bop", xb, w) + c.T[None]
        pred = dm.scaler.inverse_transform(torch.from_numpy(pred).float().reshape(b["y"].shape))
        truth = dm.scaler.inverse_transform(b["y"])
        mask = b["y_mask"].float()
        errors += ((pred - truth).abs() * mask).flatten(2).sum((0, 2)).numpy()
        counts += mask.flatten(2).sum((0, 2)).numpy()
    np.testing.assert_allclose(lin, errors / counts, rtol=1e-5)


def test_a_trained_run_reproduces_its_fitted_base(tmp_path):
    import stpatch

    data = _sensor_data()
    model = {"name": "stid", "base": "linear", "embed_dim": 8, "node_dim": 4, "tod_dim": 4, "dow_dim": 4}
    stpatch.train(_config(tmp_path, model, []), data=data)
    run = stpatch.load_run(tmp_path / "run")
    base = run.module.model.base
    assert isinstance(base, LinearAR) and base.fitted
    assert not torch.allclose(base.weight[:, :, -1], torch.ones(()))  # fitted, not the persistence start
    result = stpatch.evaluate(tmp_path / "run", data=data, write=False, figures=False)
    assert set(result["per_horizon"]) == {"stid"}


def test_balanced_leads_weigh_each_lead_by_the_base_error():
    """balance_leads: weights are the base's per-lead error to the power -p, mean 1, and the engine's
    loss uses them (p = 2 for MSE, 1 for MAE); without the option there are no weights."""
    from stpatch.engine.losses import masked_loss
    from stpatch.engine.module import ForecastModule

    torch.manual_seed(0)
    model = create_model("stid", in_channels=1, t_in=6, t_out=3, num_nodes=N, base="persistence", balance_leads=True)
    assert not model.fitted and model.lead_weights() is not None
    batches = _sensor_batches()
    assert fit_forecaster(model, batches) == [""] and model.fitted
    residual = torch.cat([b["y"] - model.base(b["x"]) for b in batches])
    rms = residual.square().mean((0, 2, 3)).sqrt()
    torch.testing.assert_close(model.base_lead_rms, rms)
    for power in (1.0, 2.0):
        expected = rms.pow(-power) / rms.pow(-power).mean()
        torch.testing.assert_close(model.lead_weights(power), expected)
    assert torch.equal(model.correction_scale, torch.ones(3))  # the output is not rescaled
    b = batches[0]
    assert torch.equal(model(b["x"], tod=b["tod"]), model.base(b["x"]))  # still exactly the base
    # the weighted loss of the base forecast is the mean of the per-lead losses in units of the base's own
    weighted = masked_loss(model.base(b["x"]), b["y"], None, "mse", model.lead_weights(2.0))
    per_lead = (model.base(b["x"]) - b["y"]).square().mean((0, 2, 3))
    torch.testing.assert_close(weighted, (per_lead * model.lead_weights(2.0)).mean())
    with pytest.raises(ValueError, match=r"lead_weights must be \(3,\)"):
        masked_loss(b["y"], b["y"], None, "mse", torch.ones(2))
    fresh = create_model("stid", in_channels=1, t_in=6, t_out=3, num_nodes=N, base="persistence", balance_leads=True)
    fresh.load_state_dict(model.state_dict())
    assert fresh.fitted and torch.equal(fresh.lead_weights(), model.lead_weights())
    plain = create_model("stid", in_channels=1, t_in=6, t_out=3, num_nodes=N, base="persistence")
    assert plain.lead_weights() is None and "base_lead_rms" not in plain.state_dict()

    meta = {"kind": "sensor", "in_channels": 1, "t_in": 6, "t_out": 3, "num_nodes": N}
    for loss, power in (("mse", 2.0), ("mae", 1.0)):
        module = ForecastModule({"name": "stid", "base": "persistence", "balance_leads": True}, meta, {"loss": loss})
        module.model.load_state_dict(model.state_dict())
        torch.testing.assert_close(module._lead_weights(), model.lead_weights(power))
    assert ForecastModule({"name": "stid", "base": "persistence"}, meta, {})._lead_weights() is None


def test_a_run_saved_before_the_correction_scale_still_loads():
    """State dicts written before ``correction_scale`` / ``scale_fitted_`` existed load into a model without
    scale_correction (as ones, fitted); a model that uses the scale still needs them."""
    kw = dict(in_channels=1, t_in=6, t_out=3, num_nodes=N, base="linear")
    model = create_model("stid", **kw)
    fit_forecaster(model, _sensor_batches())
    old = {k: v for k, v in model.state_dict().items() if k not in ("correction_scale", "scale_fitted_")}
    fresh = create_model("stid", **kw)
    fresh.load_state_dict(old)
    assert torch.equal(fresh.correction_scale, torch.ones(3)) and fresh.fitted
    b = _sensor_batches()[0]
    assert torch.equal(fresh(b["x"], tod=b["tod"]), model(b["x"], tod=b["tod"]))
    with pytest.raises(RuntimeError, match="correction_scale"):
        create_model("stid", **kw, scale_correction=True).load_state_dict(old)


class _FixedCorrection(torch.nn.Module):
    """A correction that returns a set tensor (its output layer exists only to be zeroed)."""

    def __init__(self):
        super().__init__()
        self.output_layer = torch.nn.Linear(1, 1)
        self.fixed = None

    def forward(self, x):
        return self.fixed


def test_fit_gain_keeps_a_correction_where_it_helps_and_drops_it_where_it_hurts():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, N, 1, generator=g)
    residual = torch.randn(64, 3, N, 1, generator=g)
    y = x[:, -1:] + residual  # persistence plus a residual
    correction = _FixedCorrection()
    model = BasedForecaster(correction, create_model("persistence", in_channels=1, t_in=4, t_out=3, num_nodes=N), 3,
                            val_gain=True)
    # lead 1: exactly the residual; lead 2: the wrong way; lead 3: 0.4 x the residual plus a little noise
    correction.fixed = torch.stack([residual[:, 0], -0.5 * residual[:, 1],
                                    0.4 * residual[:, 2] + 0.1 * torch.randn(64, N, 1, generator=g)], 1)

    def mse(pred, target, mask):
        return (pred - target).square().mean(dim=(0, 2, 3))

    result = model.fit_gain([{"x": x, "y": y}], mse)
    assert result["windows"] == 64
    assert result["gain"][0] == pytest.approx(1.0) and result["gain"][1] == pytest.approx(0.0)
    assert result["gain"][2] == pytest.approx(1.0)  # shrinking a correction that is too small only hurts
    assert all(a <= min(b, c) + 1e-9 for a, b, c in zip(result["loss_after"], result["loss_before"],
                                                      result["loss_base"], strict=True))
    out = model(x)  # the forecast applies the gains: lead 2 is persistence again
    torch.testing.assert_close(out[:, 1], x[:, -1])
    torch.testing.assert_close(out[:, 0], y[:, 0])
    correction.fixed = correction.fixed[:3]
    few = model.fit_gain([{"x": x[:3], "y": y[:3]}], mse)  # three windows: too few to choose gains on
    assert few["gain"] == [1.0, 1.0, 1.0] and "fewer than 8" in few["skipped"] and few["windows"] == 3
    assert few["loss_after"] == few["loss_before"]
    none = model.fit_gain([], mse)  # a split without validation windows: nothing to fit, no error
    assert none["windows"] == 0 and none["gain"] == [1.0, 1.0, 1.0] and "0 validation window(s)" in none["skipped"]
    with pytest.raises(ValueError, match="val_gain=True"):
        BasedForecaster(_FixedCorrection(), None, 3).fit_gain([], mse)


def test_a_run_with_val_gain_scores_and_keeps_the_gains_fitted_on_validation(tmp_path):
    import json

    import stpatch
    from stpatch.engine.checkpoint import read_checkpoint

    data = _sensor_data()
    model = {"name": "stid", "base": "linear", "val_gain": True, "embed_dim": 8, "node_dim": 4, "tod_dim": 4,
             "dow_dim": 4}
    result = stpatch.train(_config(tmp_path, model, []), data=data)
    fitted = json.loads((tmp_path / "run" / "val_gain.json").read_text())
    gain = read_checkpoint(result.best_checkpoint)["state_dict"]["model.correction_gain"]
    assert gain.tolist() == pytest.approx(fitted["gain"]) and len(fitted["gain"]) == 3
    assert all(0.0 <= v <= 1.0 for v in fitted["gain"]) and fitted["windows"] > 0
    assert all(a <= b + 1e-9 for a, b in zip(fitted["loss_after"], fitted["loss_before"], strict=True))
    run = stpatch.load_run(tmp_path / "run")
    assert run.module.model.correction_gain.tolist() == pytest.approx(fitted["gain"])


def test_an_ensemble_is_its_base_untrained_and_the_mean_of_its_members():
    torch.manual_seed(0)
    model = create_model("stpnet_sensor", in_channels=1, t_in=6, t_out=3, num_nodes=N, base="linear", members=3,
                         feed_base=True, val_gain=True)
    x = _sensor_batches(1)[0]["x"]
    assert model.members == 3 and len(model.extra_corrections) == 2
    assert torch.equal(model(x), model.base(x)) and model.member_forecasts(x).shape == (3, 8, 3, N, 1)
    # members are built apart: same design, different initial weights
    first, second = model.correction.patch_embed.weight, model.extra_corrections[0].patch_embed.weight
    assert first.shape == second.shape and not torch.equal(first, second)
    for member in (model.correction, *model.extra_corrections):  # give each member a different output
        torch.nn.init.normal_(member.output_layer.weight, std=0.1)
    model.correction_gain.copy_(torch.tensor([1.0, 0.5, 0.0]))
    base, members = model.base(x), model.member_forecasts(x)
    gain = model.correction_gain.reshape(1, 3, 1, 1)
    torch.testing.assert_close(model(x), base + gain * (members - base).mean(0))
    assert not torch.allclose(members[0], members[1])
    with pytest.raises(ValueError, match="members must be a whole number >= 1"):
        create_model("stid", in_channels=1, t_in=6, t_out=3, num_nodes=N, base="linear", members=0)
    # one member keeps the state-dict keys of a model built without the option
    one = create_model("stid", in_channels=1, t_in=6, t_out=3, num_nodes=N, base="linear", members=1)
    plain = create_model("stid", in_channels=1, t_in=6, t_out=3, num_nodes=N, base="linear")
    assert one.state_dict().keys() == plain.state_dict().keys()


def test_an_ensemble_trains_every_member_on_its_own_loss(tmp_path):
    import stpatch
    from stpatch.engine.module import ForecastModule

    data = _sensor_data()
    model = {"name": "stid", "base": "linear", "members": 2, "embed_dim": 8, "node_dim": 4, "tod_dim": 4, "dow_dim": 4}
    stpatch.train(_config(tmp_path, model, []), data=data)
    run = stpatch.load_run(tmp_path / "run")
    members = [run.module.model.correction, run.module.model.extra_corrections[0]]
    assert all(m.output_layer.weight.abs().sum() > 0 for m in members)  # both learned (started at zero)

    # the training loss is the mean of the members' own losses, not the loss of their mean forecast
    from stpatch.data import make_datamodule
    from stpatch.engine.losses import masked_loss

    dm = make_datamodule(data, t_in=6, t_out=3, batch_size=16, seed=0)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    module = run.module
    assert isinstance(module, ForecastModule)
    module.log = lambda *args, **kwargs: None
    with torch.no_grad():
        loss = module._step(batch, "train")
        extra = {k: batch[k] for k in ("tod", "dow") if k in batch}
        preds = module.model.member_forecasts(batch["x"], **extra)
        own = torch.stack([masked_loss(p, batch["y"], batch["y_mask"], module.loss_kind) for p in preds]).mean()
        of_mean = masked_loss(preds.mean(0), batch["y"], batch["y_mask"], module.loss_kind)
        torch.testing.assert_close(loss, own)
        torch.testing.assert_close(module._step(batch, "val"), of_mean)
    assert of_mean < loss  # the ensemble's forecast is better than its average member (convexity)


def test_region_features_of_an_ensemble_are_its_first_members(tmp_path):
    import stpatch
    from stpatch.analysis.features import _recording

    data = _sensor_data()
    model = {"name": "stpnet_sensor", "base": "linear", "members": 2, "node_dim": 8, "dim": 16, "group_size": 1,
             "time_patch": 3}
    stpatch.train(_config(tmp_path, model, []), data=data)
    feats = stpatch.features(tmp_path / "run", data=data)
    run = stpatch.load_run(tmp_path / "run")
    n = run.module.model.correction.num_nodes
    assert feats.values.shape == (n, 8) and np.isfinite(feats.values).all()
    x = torch.randn(2, 6, n, 1)
    with _recording(run.module.model) as seen:
        run.module.model(x)
    assert len(seen) == 1  # one vector per sensor per call, from one member, not one per member
