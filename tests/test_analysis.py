"""Figures and attention maps: files are written, shapes are as documented, bad input is named."""

import numpy as np
import pytest
import torch

from stpatch.analysis import (
    attention_regions,
    save_attention_figure,
    save_forecast_gif,
    save_forecast_strip,
    save_sensor_plot,
    upsample_regions,
)
from stpatch.models import create_model


def test_forecast_pictures(tmp_path):
    rng = np.random.default_rng(0)
    inputs, truth, forecast = (rng.uniform(size=(n, 1, 16, 20)).astype(np.float32) for n in (4, 3, 3))
    strip = save_forecast_strip(inputs, truth, forecast, tmp_path / "strip.png")
    gif = save_forecast_gif(truth, forecast, tmp_path / "a.gif")
    assert strip.read_bytes()[:4] == b"\x89PNG" and gif.read_bytes()[:3] == b"GIF"
    import imageio.v3 as iio

    frames = iio.imread(gif, index=None)
    assert frames.shape[0] == 3 and frames.shape[2] > frames.shape[1]  # truth beside forecast
    sensors = save_sensor_plot(rng.normal(size=(6, 5, 1)), rng.normal(size=(2, 5, 1)), rng.normal(size=(2, 5, 1)),
                               tmp_path / "s.png")
    assert sensors.stat().st_size > 0
    with pytest.raises(ValueError, match=r"\(T, C, H, W\)"):
        save_forecast_strip(inputs[0], truth, forecast, tmp_path / "bad.png")


def test_attention_regions_show_where_the_model_looks(tmp_path):
    torch.manual_seed(0)
    model = create_model("stpnet_tiny", in_channels=1, t_in=4, t_out=2)
    x = torch.rand(2, 4, 1, 32, 32)
    importance = attention_regions(model, x)
    assert importance.shape[0] == 2 and importance.ndim == 4
    torch.testing.assert_close(importance.sum((1, 2, 3)), torch.ones(2))
    assert (importance >= 0).all()
    assert upsample_regions(importance, (32, 32)).shape == (2, importance.shape[1], 32, 32)
    path = save_attention_figure(x[0].numpy(), importance[0], tmp_path / "attention.png")
    assert path.stat().st_size > 0
    assert attention_regions(create_model("stpconv", in_channels=1, t_in=4, t_out=2), x) is None
