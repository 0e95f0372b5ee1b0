"""Run configs: defaults, overrides, and clear errors for unknown keys and wrong types."""

import pytest

from stpatch.engine.config import ConfigError, apply_overrides, config_from_dict, load_config, parse_override
from stpatch.engine.config import parse_max_time as _max_time


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {name: digits, t_in: 6}\nmodel: {name: stpnet, dim: 32}\ntrain: {max_epochs: 2}\n")
    config = load_config(path, ["model.dim=64", "train.lr=0.01", "data.options.test_size=8", "train.max_time=00:01:00"])
    assert config.data.t_in == 6 and config.data.t_out == 10
    assert config.model == {"name": "stpnet", "dim": 64}
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
