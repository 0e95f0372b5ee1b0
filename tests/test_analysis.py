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


class _Pausing(torch.nn.Module):
    """Runs ``inner``, first letting another thread work (between two barrier waits)."""

    def __init__(self, inner, barrier):
        super().__init__()
        self.inner, self.barrier = inner, barrier

    def forward(self, x):
        self.barrier.wait()
        self.barrier.wait()  # the other thread runs its model in between
        return self.inner(x)


def test_attention_regions_ignore_other_threads():
    """A model run in another thread while the regions are captured leaves them unchanged."""
    import threading

    torch.manual_seed(0)
    model = create_model("stpnet_tiny", in_channels=1, t_in=4, t_out=2)
    other = create_model("stpformer", in_channels=1, t_in=4, t_out=2)
    # the same token grid (2, 4, 4) in both, so leaked maps would be averaged in
    x, y = torch.rand(1, 4, 1, 32, 32), torch.rand(1, 4, 1, 16, 16)
    expected = attention_regions(model, x)
    barrier = threading.Barrier(2, timeout=60)
    errors = []

    def run_other():
        try:
            for _ in range(3):
                barrier.wait()
                with torch.no_grad():
                    other(y)
                barrier.wait()
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)
            barrier.abort()

    thread = threading.Thread(target=run_other)
    thread.start()
    try:
        for _ in range(3):
            torch.testing.assert_close(attention_regions(_Pausing(model, barrier), x), expected)
    except BaseException:
        barrier.abort()  # free the other thread at once
        raise
    finally:
        thread.join(timeout=120)
    assert not errors


def test_attention_regions_restore_training_mode_on_error():
    model = create_model("stpnet_tiny", in_channels=1, t_in=4, t_out=2).train()
    with pytest.raises(ValueError):
        attention_regions(model, torch.rand(1, 3, 1, 32, 32))  # wrong T_in
    assert model.training
