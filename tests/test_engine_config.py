"""Run configs: defaults, overrides, and clear errors for unknown keys and wrong types."""

import pytest

from stpatch.engine.config import ConfigError, apply_overrides, config_from_dict, load_config, parse_override
from stpatch.engine.config import parse_max_time as _max_time


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    # (this test used `dim`, which stpnet never took: the model build would have failed; now the config does)
    path.write_text("data: {name: digits, t_in: 6}\nmodel: {name: stpnet, attn_depth: 1}\ntrain: {max_epochs: 2}\n")
    config = load_config(path, ["model.attn_depth=3", "train.lr=0.01", "data.options.test_size=8", "train.max_time=00:01:00"])
    assert config.data.t_in == 6 and config.data.t_out == 10
    assert config.model == {"name": "stpnet", "attn_depth": 3}
    assert config.train.lr == 0.01 and config.train.max_epochs == 2
    assert config.data.options == {"test_size": 8}
    assert config.train.max_time == "00:01:00"


def test_int_accepted_where_float_expected():
    config = config_from_dict({"train": {"lr": 1}})
    assert isinstance(config.train.lr, float) and config.train.lr == 1.0


@pytest.mark.parametrize(
    "values, message",
    [
        ({"train": {"max_epoch": 3}}, r"unknown key\(s\) config.train.max_epoch; valid keys: .*max_epochs"),
        ({"train": {"max_epochs": "three"}}, r"config.train.max_epochs must be int, got str 'three'"),
        ({"data": {"t_in": 0}}, "data.t_in must be positive"),
        ({"data": {"batch_size": 2.5}}, "config.data.batch_size must be int"),
        ({"train": {"loss": "l7"}}, "train.loss must be one of"),
        ({"model": {"dim": 3}}, "model must be a mapping with a 'name'"),
        ({"trian": {}}, r"unknown key\(s\) config.trian"),
        ({"data": [1, 2]}, "config.data must be a mapping"),
    ],
)
def test_invalid_configs_are_named(values, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(values)


def test_override_syntax():
    assert parse_override("model.heads=4") == (["model", "heads"], 4)
    assert parse_override("data.split=[0.6, 0.2, 0.2]") == (["data", "split"], [0.6, 0.2, 0.2])
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("model.heads")
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"train": {"lr": 1.0}}, ["train.lr.x=1"])


def test_missing_config_file_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="stpatch configs"):
        load_config(tmp_path / "nope.yaml")


def test_max_time_formats():
    assert _max_time("00:20:00") == "00:00:20:00"
    assert _max_time("90") == "00:00:01:30"
    assert _max_time(None) is None
    with pytest.raises(ValueError, match="HH:MM:SS"):
        _max_time("20 minutes")


def test_shipped_configs_are_valid():
    from pathlib import Path

    from stpatch.data import list_datasets
    from stpatch.models import list_models

    shipped = sorted((Path(__file__).resolve().parents[1] / "src" / "stpatch" / "configs").glob("*.yaml"))
    assert len(shipped) >= 10
    for path in shipped:
        config = load_config(path)
        assert config.data.name in list_datasets(), path.name
        assert config.model["name"] in list_models(), path.name
        assert set(config.eval.baselines) <= set(list_models()), path.name
    # a shipped name works without its folder
    assert load_config("los_loop_linear.yaml").model["name"] == "linear"


@pytest.mark.parametrize(
    "values, message",
    [
        ({"model": {"name": "convlstm", "hiden": 8}},
         r"unknown option\(s\) model.hiden for model 'convlstm'; valid options: .*hidden"),
        ({"model": {"name": "stpnet_sensr"}}, r"model.name 'stpnet_sensr' is not a registered model; available models: .*stpnet_sensor"),
        ({"train": {"scheduler": "step"}}, "train.scheduler must be one of cosine, none, got 'step'"),
        ({"eval": {"suite": "vidoe"}}, r"eval.suite 'vidoe' is not a metric suite; valid suites: video, sensor, .*precip"),
        ({"eval": {"suite": ["rmse", "csi@1.0", "rmsee"]}}, r"unknown metric\(s\) 'rmsee'; known metrics: .*ssim"),
        ({"eval": {"baselines": ["persistence", "persistance"]}},
         r"eval.baselines: 'persistance' not registered model\(s\); available models: .*persistence"),
    ],
)
def test_names_are_checked_against_their_tables(values, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(values)


@pytest.fixture
def signature_model():
    """A registered model whose constructor names its options (no ``**kwargs``)."""
    from stpatch.models import Persistence, register_model
    from stpatch.models.registry import _REGISTRY

    @register_model("tmp_config_model", kind="grid")
    def tmp_config_model(in_channels=1, t_in=1, t_out=1, *, dim=8, depth=2):
        return Persistence(in_channels, t_in, t_out)

    yield "tmp_config_model"
    _REGISTRY.pop("tmp_config_model")


def test_model_options_are_checked_against_the_constructor(tmp_path, signature_model):
    path = tmp_path / "c.yaml"
    path.write_text(f"model: {{name: {signature_model}, dim: 4}}\n")
    assert load_config(path, ["model.depth=3"]).model == {"name": signature_model, "dim": 4, "depth": 3}
    with pytest.raises(ConfigError, match=rf"model.dimm for model '{signature_model}'; valid options: .*depth, dim,"):
        load_config(path, ["model.dimm=3"])
    # a constructor that takes **kwargs takes any option (it checks them when built)
    assert config_from_dict({"model": {"name": "extrapolation", "anything": 1}}).model["anything"] == 1


def test_suites_and_baselines_that_exist_are_accepted():
    config = config_from_dict({"eval": {"suite": ["csi@1.0", "fss@1.0/8px", "mae_per_pixel", "csi"],
                                        "baselines": ["persistence", "climatology"]}})
    assert config.eval.suite[1] == "fss@1.0/8px"
    for suite in ("video", "sensor", "weather", "precip", None):
        assert config_from_dict({"eval": {"suite": suite}}).eval.suite == suite


def test_losses_and_schedulers_come_from_one_table(monkeypatch):
    """The names the config accepts are those the module builds, and a new entry works in both."""
    import torch

    from stpatch.engine import losses
    from stpatch.engine.module import ForecastModule, masked_loss

    pred, target = torch.tensor([1.0, 4.0, 0.0]), torch.tensor([0.0, 1.0, 5.0])
    mask = torch.tensor([True, True, False])
    assert masked_loss(pred, target, mask, "mse").item() == 5.0 and masked_loss(pred, target, None, "mae").item() == 3.0
    with pytest.raises(ValueError, match="loss must be one of mse, mae, huber"):
        masked_loss(pred, target, None, "l7")
    monkeypatch.setitem(losses.LOSSES, "cube", lambda p, t: (p - t).abs() ** 3)
    assert config_from_dict({"train": {"loss": "cube"}}).train.loss == "cube"
    assert masked_loss(pred, target, mask, "cube").item() == 14.0

    meta = {"kind": "grid", "in_channels": 1, "t_in": 2, "t_out": 1}
    module = ForecastModule({"name": "linear"}, meta, {"scheduler": "none", "lr": 0.1})
    assert isinstance(module.configure_optimizers(), torch.optim.AdamW)
    module = ForecastModule({"name": "linear"}, meta, {"scheduler": "cosine", "max_time": "00:01:00"})
    schedule = module.configure_optimizers()["lr_scheduler"]
    assert isinstance(schedule["scheduler"], torch.optim.lr_scheduler.LambdaLR) and schedule["interval"] == "step"
    monkeypatch.setitem(losses.SCHEDULERS, "flat", lambda module, optimizer: None)
    assert config_from_dict({"train": {"scheduler": "flat"}}).train.scheduler == "flat"
    module = ForecastModule({"name": "linear"}, meta, {"scheduler": "flat"})
    assert isinstance(module.configure_optimizers(), torch.optim.AdamW)


def test_save_config_round_trip_is_atomic(tmp_path):
    from stpatch.engine.config import save_config

    config = config_from_dict({"model": {"name": "linear"}, "train": {"lr": 0.5}})
    path = tmp_path / "config.yaml"
    path.write_text("old")
    save_config(config, path)
    assert load_config(path) == config
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]  # no temporary file left


@pytest.mark.parametrize("name", ["stpnet", "stpnet_tiny", "stpformer", "stpconv"])
def test_stpnet_presets_reject_an_option_typo_when_the_config_is_read(name):
    with pytest.raises(ConfigError, match=rf"model.dimm for model '{name}'; valid options: .*dims"):
        config_from_dict({"data": {"name": "digits"}, "model": {"name": name, "dimm": 3}})
    assert config_from_dict({"data": {"name": "digits"}, "model": {"name": name, "dims": [16, 32]}}).model["dims"] == [16, 32]


def test_masked_loss_mse_mae_and_huber_leave_out_missing_targets():
    import torch

    from stpatch.engine.losses import masked_loss

    pred = torch.tensor([[[0.0], [3.0], [0.5], [10.0]]]).reshape(1, 2, 2, 1)  # (B, T, N, C)
    target = torch.zeros_like(pred)
    mask = torch.tensor([True, True, True, False]).reshape(1, 2, 2, 1)  # the error of 10 is missing
    # elementwise errors 0, 3, 0.5: squared 0, 9, 0.25; absolute 0, 3, 0.5; Huber (delta 1) 0, 2.5, 0.125
    for kind, observed, everything in (("mse", 9.25 / 3, 109.25 / 4), ("mae", 3.5 / 3, 13.5 / 4),
                                       ("huber", 2.625 / 3, 12.125 / 4)):
        assert masked_loss(pred, target, mask, kind).item() == pytest.approx(observed), kind
        assert masked_loss(pred, target, None, kind).item() == pytest.approx(everything), kind
        p = pred.clone().requires_grad_(True)
        masked_loss(p, target, mask, kind).backward()
        assert p.grad[0, 1, 1, 0] == 0 and p.grad[0, 0, 1, 0] > 0, kind  # nothing learnt from a missing value
        # lead weights scale each lead's errors (axis 1): lead 1 counts three times
        weighted = masked_loss(pred, target, mask, kind, torch.tensor([1.0, 3.0])).item()
        err = {"mse": [0, 9, 0.25], "mae": [0, 3, 0.5], "huber": [0, 2.5, 0.125]}[kind]
        assert weighted == pytest.approx((err[0] + err[1] + 3 * err[2]) / 3), kind
    no_observation = torch.zeros_like(mask)
    assert masked_loss(pred, target, no_observation, "huber").item() == 0.0  # not NaN


def test_training_loss_follows_train_loss(monkeypatch):
    """The module trains on the loss the config names: a batch's training loss is that loss, masked."""
    import torch
    import torch.nn.functional as F

    from stpatch.engine.module import ForecastModule

    meta = {"kind": "sensor", "in_channels": 1, "t_in": 3, "t_out": 2, "num_nodes": 4}
    g = torch.Generator().manual_seed(0)
    batch = {"x": torch.randn(2, 3, 4, 1, generator=g), "y": 3 * torch.randn(2, 2, 4, 1, generator=g),
             "y_mask": torch.ones(2, 2, 4, 1, dtype=torch.bool)}
    batch["y_mask"][0, 0, 0, 0] = False
    keep = batch["y_mask"]
    for kind, reference in (("mse", F.mse_loss), ("mae", F.l1_loss), ("huber", F.huber_loss)):
        module = ForecastModule({"name": "linear", "trainable": True}, meta, {"loss": kind})
        monkeypatch.setattr(module, "log", lambda *args, **kwargs: None)  # no trainer to log to here
        with torch.no_grad():
            loss = module.training_step(batch, 0)
            expected = reference(module(batch)[keep], batch["y"][keep])
        assert loss.item() == pytest.approx(expected.item(), rel=1e-6), kind


def test_evaluate_refuses_a_split_it_does_not_score(tmp_path):
    """Only the held-out splits are scored; any other name is a ValueError naming them, before a run loads."""
    from stpatch.engine.evaluation import evaluate

    for split in ("train", "Test", ""):
        with pytest.raises(ValueError, match=r"split must be 'test' or 'val'.*got"):
            evaluate(tmp_path / "no-run", split=split)


def test_gradient_difference_loss_penalises_blur_that_mse_tolerates():
    import torch

    from stpatch.engine.losses import get_loss, gradient_difference

    target = torch.zeros(1, 1, 1, 8, 8)
    target[..., :, 4:] = 1.0  # a sharp vertical edge
    blurred = target.clone()
    blurred[..., :, 3:6] = torch.tensor([0.25, 0.5, 0.75])  # the edge spread over three columns
    mse, gdl = get_loss("mse"), get_loss("mse_gdl")
    # a sharp forecast that is off by a constant, with the same squared error as the blurred one
    offset = target + mse(blurred, target).mean().sqrt()
    assert torch.allclose(mse(offset, target).mean(), mse(blurred, target).mean())
    # MSE cannot tell them apart; the gradient difference charges only the blur
    assert gradient_difference(offset, target).abs().max() < 1e-6 < gradient_difference(blurred, target).mean()
    assert gdl(offset, target).mean() < gdl(blurred, target).mean()
    assert torch.equal(gradient_difference(target, target), torch.zeros_like(target))
    assert torch.allclose(gdl(blurred, target), mse(blurred, target) + gradient_difference(blurred, target))
    with pytest.raises(ValueError, match="grids"):
        gradient_difference(torch.zeros(2, 3, 4, 1), torch.zeros(2, 3, 4, 1))


def test_soft_csi_loss_charges_a_shrunken_rain_area_that_mse_prefers():
    import torch

    from stpatch.engine.losses import soft_csi_loss

    target = torch.zeros(1, 1, 1, 8, 8)
    target[..., 2:6, 2:6] = 2.0  # a rain area of 16 pixels above the threshold 1
    level = torch.tensor([[1.0]])
    shrunk = target * 0.4  # the whole area below the threshold: an MSE-cheap hedge
    sharp = torch.zeros_like(target)
    sharp[..., 2:6, 3:7] = 2.0  # the same area, one pixel off
    assert ((shrunk - target) ** 2).mean() < ((sharp - target) ** 2).mean()
    loss = {name: float(soft_csi_loss(p, target, None, level, tau=0.05)) for name, p in
            (("target", target), ("shrunk", shrunk), ("sharp", sharp))}
    assert loss["target"] < 1e-3 and loss["shrunk"] > 0.95
    assert loss["sharp"] == pytest.approx(1 - 12 / 20, abs=0.01)  # 12 hits, 4 misses, 4 false alarms
    # masked pixels count neither as hits nor as misses; gradients reach the forecast
    mask = torch.ones_like(target, dtype=torch.bool)
    mask[..., :, 6] = False
    assert float(soft_csi_loss(sharp, target, mask, level, tau=0.05)) == pytest.approx(1 - 12 / 16, abs=0.01)
    pred = sharp.clone().requires_grad_(True)
    soft_csi_loss(pred, target, None, level, tau=0.5).backward()
    assert pred.grad.abs().sum() > 0


def test_csi_thresholds_are_scaled_with_the_data_scaler_and_added_to_the_loss(monkeypatch):
    import numpy as np
    import torch

    from stpatch.data.scalers import get_scaler
    from stpatch.engine.module import ForecastModule

    with pytest.raises(ConfigError, match="csi_thresholds must be a list of numbers"):
        config_from_dict({"train": {"csi_thresholds": ["heavy"]}})
    with pytest.raises(ConfigError, match="csi_weight must be 0 or more"):
        config_from_dict({"train": {"csi_weight": -1}})
    meta = {"kind": "grid", "in_channels": 1, "t_in": 2, "t_out": 2, "spatial_shape": [4, 4]}
    rain = np.random.default_rng(0).gamma(0.5, 4.0, (20, 1, 4, 4)).astype(np.float32)
    scaler = get_scaler("dbr").fit(rain)
    module = ForecastModule({"name": "persistence"}, meta, {"loss": "mse", "csi_thresholds": [1.0, 5.0]})
    module.set_loss_scales(scaler)
    levels = module.csi_levels.numpy()[:, 0]
    expected = scaler.transform(np.array([1.0, 5.0], np.float32).reshape(2, 1, 1, 1)).ravel()
    np.testing.assert_allclose(levels, expected, rtol=1e-6)
    assert levels[0] < levels[1]  # thresholds keep their order through the dB and standard scaling
    monkeypatch.setattr(module, "log", lambda *args, **kwargs: None)
    batch = {"x": torch.from_numpy(scaler.transform(rain[None, :2])), "y": torch.from_numpy(scaler.transform(rain[None, 2:4]))}
    with torch.no_grad():
        with_csi = float(module.training_step(batch, 0))
        module.csi_levels = None
        plain = float(module.training_step(batch, 0))
    assert with_csi > plain  # persistence misses some of the area above the thresholds


def test_ssim_weight_adds_a_structure_term_in_scaled_units(monkeypatch):
    import numpy as np
    import torch

    from stpatch.data.scalers import get_scaler
    from stpatch.engine.losses import ssim_loss
    from stpatch.engine.module import ForecastModule

    with pytest.raises(ConfigError, match="ssim_weight must be 0 or more"):
        config_from_dict({"train": {"ssim_weight": -0.5}})
    with pytest.raises(ConfigError, match="ssim_range positive"):
        config_from_dict({"train": {"ssim_weight": 1.0, "ssim_range": 0}})
    frames = np.random.default_rng(0).random((12, 1, 16, 16)).astype(np.float32)
    scaler = get_scaler("standard").fit(frames)
    meta = {"kind": "grid", "in_channels": 1, "t_in": 2, "t_out": 2, "spatial_shape": [16, 16]}
    module = ForecastModule({"name": "persistence"}, meta, {"loss": "mse", "ssim_weight": 0.5, "ssim_range": 1.0})
    module.set_loss_scales(scaler)
    # the range of [0, 1] pixels in standardised units is 1 / std
    assert module.ssim_range == pytest.approx(1.0 / float(frames.std()), rel=1e-3)
    monkeypatch.setattr(module, "log", lambda *args, **kwargs: None)
    x, y = torch.from_numpy(scaler.transform(frames[None, :2])), torch.from_numpy(scaler.transform(frames[None, 2:4]))
    batch = {"x": x, "y": y}
    with torch.no_grad():
        total = float(module.training_step(batch, 0))
        mse = float(((x[:, -1:] - y) ** 2).mean())  # persistence repeats the last frame
        assert total == pytest.approx(mse + 0.5 * float(ssim_loss(x[:, -1:].expand_as(y), y, None, module.ssim_range)),
                                      rel=1e-5)
        # per lead, as the validation gains are fitted: each lead's term on its own frame
        leads = module.lead_losses(x[:, -1:].expand_as(y), y, None)
        assert leads.shape == (2,) and float(leads.mean()) == pytest.approx(total, rel=1e-5)
    # the term is differentiable: a blurred forecast is pulled towards the target's structure
    pred = torch.zeros_like(y, requires_grad=True)
    ssim_loss(pred, y, None, module.ssim_range).backward()
    assert pred.grad is not None and float(pred.grad.abs().sum()) > 0
    # training estimates the term on random squares: their mean is the whole frame's value, each one differs
    torch.manual_seed(0)
    big, noisy = torch.rand(2, 2, 1, 48, 48), torch.rand(2, 2, 1, 48, 48)
    whole = float(ssim_loss(noisy, big, None, 1.0))
    crops = [float(ssim_loss(noisy, big, None, 1.0, crop=24)) for _ in range(200)]
    assert len(set(crops)) > 1 and sum(crops) / len(crops) == pytest.approx(whole, rel=0.02)
    with pytest.raises(ConfigError, match="ssim_crop must be 0"):
        config_from_dict({"train": {"ssim_crop": 5}})
    sensors = ForecastModule({"name": "persistence"}, {"kind": "sensor", "in_channels": 1, "t_in": 2, "t_out": 2,
                                                      "num_nodes": 3}, {"ssim_weight": 1.0})
    with pytest.raises(ValueError, match="for grids"):
        sensors.set_loss_scales(get_scaler("standard").fit(np.ones((4, 3, 1), np.float32) + np.arange(3)[:, None]))
