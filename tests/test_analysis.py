"""Figures and attention maps, checked by content: panels, pixels, the data drawn, where attention falls."""

import numpy as np
import pytest
import torch

import stpatch.analysis.attention as attention_module
import stpatch.analysis.figures as figures_module
from stpatch.analysis import (
    attention_regions,
    save_attention_figure,
    save_forecast_gif,
    save_forecast_strip,
    save_sensor_plot,
    upsample_regions,
)
from stpatch.models import create_model


@pytest.fixture
def drawn(monkeypatch):
    """The matplotlib figures the writers save, kept open for inspection (in order)."""
    figs = []
    real = figures_module.save_figure

    def keep(fig, path, *args, **kwargs):
        figs.append(fig)
        return real(fig, path, *args, **kwargs)

    monkeypatch.setattr(figures_module, "save_figure", keep)
    monkeypatch.setattr(attention_module, "save_figure", keep)
    return figs


def assert_picture(path, min_height, min_width):
    """A PNG of at least this many pixels that is not one flat colour."""
    import matplotlib.image as mpimg

    assert path.read_bytes()[:4] == b"\x89PNG"
    pixels = mpimg.imread(path)
    assert pixels.shape[0] >= min_height and pixels.shape[1] >= min_width, pixels.shape
    assert pixels[..., :3].std() > 0.01, f"{path} is blank"


def test_forecast_strip_draws_inputs_truth_forecast_and_error(tmp_path, drawn):
    rng = np.random.default_rng(0)
    inputs, truth, forecast = (rng.uniform(size=(n, 1, 16, 20)).astype(np.float32) for n in (4, 3, 3))
    strip = save_forecast_strip(inputs, truth, forecast, tmp_path / "strip.png")
    assert_picture(strip, 4 * 1.4 * 90 * 0.9, 4 * 1.3 * 90 * 0.9)  # 4 rows x 4 columns at 90 dpi
    fig = drawn[-1]
    rows = fig.axes[::4]
    assert [ax.get_ylabel() for ax in rows] == ["input", "truth", "forecast", "|error|"]
    # every input frame, every lead time of truth, forecast and error: 4 + 3 + 3 + 3 images
    assert [sum(len(ax.images) for ax in fig.axes[4 * r : 4 * r + 4]) for r in range(4)] == [4, 3, 3, 3]
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), inputs[0, 0])
    np.testing.assert_allclose(fig.axes[9].images[0].get_array(), forecast[1, 0])
    np.testing.assert_allclose(fig.axes[14].images[0].get_array(), np.abs(forecast[2, 0] - truth[2, 0]), rtol=1e-6)
    save_forecast_strip(inputs, None, forecast, tmp_path / "no_truth.png")  # no truth: no truth or error row
    assert [ax.get_ylabel() for ax in drawn[-1].axes[::4]] == ["input", "forecast"]
    with pytest.raises(ValueError, match=r"\(T, C, H, W\)"):
        save_forecast_strip(inputs[0], truth, forecast, tmp_path / "bad.png")


def test_forecast_gif_shows_truth_beside_forecast_per_lead_time(tmp_path):
    import imageio.v3 as iio

    lead = np.arange(3, dtype=np.float32)[:, None, None, None] / 2
    truth, forecast = np.broadcast_to(lead, (3, 1, 16, 20)), np.broadcast_to(1 - lead, (3, 1, 16, 20))
    gif = save_forecast_gif(truth, forecast, tmp_path / "a.gif", scale=3)
    assert gif.read_bytes()[:3] == b"GIF"
    frames = iio.imread(gif, index=None)
    assert frames.shape[:3] == (3, 16 * 3, (20 + 2 + 20) * 3)  # one frame per lead: truth | gap | forecast
    left, right = frames[:, :, : 20 * 3], frames[:, :, 22 * 3 :]
    for k in range(3):  # each side a flat field here, truth k/2 and forecast 1 - k/2 in their colours
        assert (left[k] == left[k, 0, 0]).all() and (right[k] == right[k, 0, 0]).all()
    assert not np.array_equal(left[0, 0, 0], right[0, 0, 0]) and np.array_equal(left[1, 0, 0], right[1, 0, 0])
    assert np.array_equal(left[0, 0, 0], right[2, 0, 0])  # 0 is drawn alike on either side
    alone = iio.imread(save_forecast_gif(None, forecast, tmp_path / "b.gif", scale=3), index=None)
    assert alone.shape[:3] == (3, 48, 60)


def test_sensor_plot_draws_history_truth_and_forecast_of_each_chosen_sensor(tmp_path, drawn):
    rng = np.random.default_rng(0)
    history, truth, forecast = rng.normal(size=(6, 5, 1)), rng.normal(size=(2, 5, 1)), rng.normal(size=(2, 5, 1))
    path = save_sensor_plot(history, truth, forecast, tmp_path / "s.png")
    assert_picture(path, 4 * 1.8 * 90 * 0.9, 7 * 90 * 0.9)
    axes = drawn[-1].axes
    assert [ax.get_ylabel() for ax in axes] == ["sensor 0", "sensor 1", "sensor 2", "sensor 4"]
    for ax, s in zip(axes, (0, 1, 2, 4)):
        hist, tru, fc = ax.lines
        np.testing.assert_allclose(hist.get_ydata(), history[:, s, 0])
        np.testing.assert_allclose(tru.get_ydata(), truth[:, s, 0])
        np.testing.assert_allclose(fc.get_xdata(), [6, 7])
        np.testing.assert_allclose(fc.get_ydata(), forecast[:, s, 0])
    save_sensor_plot(history, None, forecast, tmp_path / "two.png", sensors=[2, 4])
    assert [len(ax.lines) for ax in drawn[-1].axes] == [2, 2]


class Spotlight(torch.nn.Module):
    """A forecaster whose one attention layer attends to the brightest spacetime patch: each token's
    key is its own pixels, every query is the same positive vector, so the brightest patch wins."""

    def __init__(self, patch=(2, 8, 8)):
        super().__init__()
        from stpatch.nn import SpacetimeAttention

        self.patch = patch
        dim = patch[0] * patch[1] * patch[2]
        self.attention = SpacetimeAttention(dim, heads=1, mode="joint")
        qkv = self.attention.passes[0].qkv
        with torch.no_grad():
            qkv.weight.zero_()
            qkv.bias.zero_()
            qkv.bias[:dim] = 5.0  # q: constant
            qkv.weight[dim : 2 * dim] = torch.eye(dim)  # k: the token itself
            qkv.weight[2 * dim :] = torch.eye(dim)  # v: the token itself

    def forward(self, x):
        from stpatch import patchify, unpatchify

        tokens, grid = patchify(x, self.patch)
        return unpatchify(self.attention(tokens), grid)


def test_attention_regions_report_where_the_model_attends(tmp_path, drawn):
    x = torch.zeros(2, 4, 1, 32, 32)
    x[0, 2:4, :, 16:24, 24:32] = 1.0  # sample 0: a bright patch at token (1, 2, 3) of the (2, 4, 4) grid
    x[1, 0:2, :, 0:8, 8:16] = 1.0  # sample 1: at token (0, 0, 1)
    importance = attention_regions(Spotlight(), x)
    assert importance.shape == (2, 2, 4, 4)
    torch.testing.assert_close(importance.sum((1, 2, 3)), torch.ones(2))
    assert (importance >= 0).all()
    for sample, place in ((0, (1, 2, 3)), (1, (0, 0, 1))):
        flat = int(importance[sample].argmax())
        assert np.unravel_index(flat, (2, 4, 4)) == place
        assert importance[sample][place] > 0.9  # nearly all of it
    # upsampled, each patch's importance lies over its pixels
    up = upsample_regions(importance, (32, 32))
    assert up.shape == (2, 2, 32, 32)
    hot = np.unravel_index(int(up[0, 1].argmax()), (32, 32))
    assert 16 <= hot[0] < 24 and 24 <= hot[1] < 32
    # the figure: one panel per time slice of the token grid, the heat brightest on the patch
    path = save_attention_figure(x[0].numpy(), importance[0], tmp_path / "attention.png")
    assert_picture(path, 2.4 * 90 * 0.9, 2 * 2.2 * 90 * 0.9)
    panels = drawn[-1].axes
    assert len(panels) == 2
    heat = panels[1].images[1].get_array()
    hot = np.unravel_index(int(np.argmax(heat)), heat.shape)
    assert 16 <= hot[0] < 24 and 24 <= hot[1] < 32
    assert float(panels[0].images[1].get_array().max()) < 0.1 * float(heat.max())  # nothing in slice 1
    # a real forecaster with attention gives a map per sample; one without attention gives none
    torch.manual_seed(0)
    maps = attention_regions(create_model("stpnet_tiny", in_channels=1, t_in=4, t_out=2), torch.rand(2, 4, 1, 32, 32))
    assert maps.ndim == 4 and maps.shape[0] == 2
    torch.testing.assert_close(maps.sum((1, 2, 3)), torch.ones(2))
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
