"""The radar baseline: pysteps' Lucas-Kanade + semi-Lagrangian extrapolation, and its cache."""

import numpy as np
import pytest
import torch

pytest.importorskip("pysteps", reason="the extrapolation baseline needs the radar extra (pip install 'stpatch[radar]')")

from stpatch.models import create_model  # noqa: E402


def _moving_blob(steps: int, speed: float, size: int = 64) -> torch.Tensor:
    """``(1, steps, 1, size, size)``: a Gaussian rain cell moving ``speed`` pixels per step to the right."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    frames = [10.0 * np.exp(-(((xx - 16 - speed * t) ** 2) + (yy - 32) ** 2) / (2 * 4.0**2)) for t in range(steps)]
    return torch.tensor(np.stack(frames)[None, :, None], dtype=torch.float32)


def _centre_x(frame: np.ndarray) -> float:
    weights = np.clip(frame, 0, None)
    return float((weights * np.arange(frame.shape[-1])[None, :]).sum() / weights.sum())


def test_a_moving_cell_is_moved_by_its_displacement():
    x = _moving_blob(6, speed=2.0)
    model = create_model("extrapolation", in_channels=1, t_in=6, t_out=4)
    out = model(x)[0, :, 0].numpy()
    last = _centre_x(x[0, -1, 0].numpy())
    for lead in range(4):
        assert _centre_x(out[lead]) - last == pytest.approx(2.0 * (lead + 1), abs=0.6)


def test_cache_returns_the_same_nowcast_and_forgets_the_oldest():
    x = torch.cat([_moving_blob(6, 1.0), _moving_blob(6, 2.0)])
    plain = create_model("extrapolation", in_channels=1, t_in=6, t_out=3)
    cached = create_model("extrapolation", in_channels=1, t_in=6, t_out=3, cache=2)
    first = cached(x)
    assert torch.allclose(first, plain(x), atol=1e-5) and len(cached._cache) == 2
    assert torch.equal(cached(x), first)  # served from the cache
    cached(_moving_blob(6, 3.0))
    assert len(cached._cache) == 2  # bounded: the oldest entry went
