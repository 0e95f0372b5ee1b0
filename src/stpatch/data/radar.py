"""Shared radar helpers: transforms, block means, the crop box, the cache directory.

Radar files are read in one place, :func:`stpatch.data.adapters.radar_files.from_radar` (pysteps'
importers and ``pysteps.utils.to_rainrate``), which crops (:func:`crop_box`) and block-mean
downsamples (:func:`block_mean`) each frame to a working size.

Transforms (option ``transform`` of the radar data sets):

* ``None`` (default): mm/h; the registry pairs it with the ``"db"`` scaler (dBR, standardised),
  whose ``inverse_transform`` gives mm/h back for CSI/FSS.
* ``"dbr"``: ``10 log10(R)`` for ``R >= threshold`` (0.1 mm/h) else ``zerovalue``
  (``10 log10(threshold) - 5`` = -15 dBR).
* ``"log"``: ``log(1 + R)``.

:func:`rainrate` inverts either transform.

The registry entries and the loader (``RADAR_EVENTS``, ``load_radar``: events, caching, the
5-minute time grid) moved to :mod:`stpatch.data.sets.radar`; they are still importable from here.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from .sets import moved_attribute

__all__ = [
    "RADAR_EVENTS",  # noqa: F822 - served by __getattr__
    "load_radar",  # noqa: F822 - served by __getattr__
    "block_mean",
    "rainrate",
    "radar_transform",
    "crop_box",
    "tile_boxes",
    "cache_root",
]


def __getattr__(name: str):  # the loader moved to stpatch.data.sets.radar; read on first use
    return moved_attribute(__name__, "radar", ("RADAR_EVENTS", "load_radar"), name)


def cache_root(explicit=None) -> Path:
    """Where decoded arrays are cached: ``explicit``, ``$STPATCH_CACHE_DIR`` or ``~/.cache/stpatch``."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get("STPATCH_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "stpatch"


# ----------------------------------------------------------------------------- transforms
def radar_transform(
    r: np.ndarray, transform: str | None, threshold: float = 0.1, zerovalue: float | None = None
):
    """Rain rate (mm/h) -> ``"dbr"`` / ``"log"`` / unchanged (``None``); NaN stays NaN."""
    if transform is None or transform == "none":
        return r
    if transform == "dbr":
        zv = 10.0 * np.log10(threshold) - 5.0 if zerovalue is None else zerovalue
        with np.errstate(divide="ignore", invalid="ignore"):
            y = 10.0 * np.log10(np.maximum(r, threshold))
        y = np.where(r >= threshold, y, zv)
        return np.where(np.isnan(r), np.nan, y).astype(r.dtype, copy=False)
    if transform == "log":
        return np.log1p(r)
    raise ValueError(f"unknown radar transform {transform!r}; expected None, 'dbr' or 'log'")


def rainrate(x, transform: str | None, threshold: float = 0.1):
    """Invert :func:`radar_transform`: back to mm/h (numpy or torch)."""
    is_torch = type(x).__module__.startswith("torch")
    if transform is None or transform == "none":
        return x
    if transform == "dbr":
        if is_torch:
            import torch

            r = torch.pow(10.0, x / 10.0)
            return torch.where((r >= threshold * (1 - 1e-6)) | torch.isnan(r), r, torch.zeros_like(r))
        r = np.power(10.0, np.asarray(x) / 10.0)
        return np.where((r >= threshold * (1 - 1e-6)) | np.isnan(r), r, 0.0)
    if transform == "log":
        if is_torch:
            import torch

            return torch.expm1(x)
        return np.expm1(x)
    raise ValueError(f"unknown radar transform {transform!r}; expected None, 'dbr' or 'log'")


def block_mean(a: np.ndarray, k: int) -> np.ndarray:
    """Average ``k x k`` blocks of the last two axes, ignoring NaN (all-NaN blocks stay NaN).

    The trailing rows/columns that do not fill a block are dropped.
    """
    if k == 1:
        return a
    h, w = (a.shape[-2] // k) * k, (a.shape[-1] // k) * k
    b = a[..., :h, :w].reshape(*a.shape[:-2], h // k, k, w // k, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(b, axis=(-3, -1))


def crop_box(shape: tuple[int, int], crop, who: str) -> tuple[int, int, int, int]:
    """``(y0, x0, h, w)`` in output pixels from ``crop`` = None | s | (h, w) | (y0, x0, h, w)."""
    H, W = shape
    if crop is None:
        return 0, 0, H, W
    if isinstance(crop, int | np.integer):
        crop = (int(crop), int(crop))
    crop = tuple(int(c) for c in crop)
    if len(crop) == 2:
        h, w = crop
        y0, x0 = (H - h) // 2, (W - w) // 2
    elif len(crop) == 4:
        y0, x0, h, w = crop
    else:
        raise ValueError(f"{who}: crop should be a size, (h, w) or (y0, x0, h, w), got {crop}")
    if h < 1 or w < 1 or y0 < 0 or x0 < 0 or y0 + h > H or x0 + w > W:
        raise ValueError(f"{who}: crop {crop} does not fit the downsampled grid {(H, W)}")
    return y0, x0, h, w


def tile_boxes(
    rain: np.ndarray, size: int, stride: int, threshold: float = 0.1, min_coverage: float = 0.5,
    min_wet: float = 0.01,
) -> list[tuple[int, int]]:
    """Top-left corners ``(y0, x0)`` of ``size x size`` tiles of an event worth training on.

    ``rain``: ``(T, C, H, W)`` rain rate (NaN = no radar coverage). Tiles step by ``stride`` over the
    grid, the last row/column of tiles flush with the far edge so the whole domain is covered. A tile
    is kept when at least ``min_coverage`` of its pixels have radar coverage (composites such as
    FMI's are mostly outside any radar's reach) and at least ``min_wet`` of its covered pixel-steps
    reach ``threshold`` (a dry tile has nothing to advect or correct).
    """
    if size < 1 or stride < 1:
        raise ValueError(f"tiles need size >= 1 and stride >= 1, got size {size}, stride {stride}")
    H, W = rain.shape[-2:]
    if size > min(H, W):
        raise ValueError(f"a {size}x{size} tile does not fit the {H}x{W} grid; use a smaller crop")

    def starts(n: int) -> list[int]:
        return sorted({*range(0, n - size + 1, stride), n - size})

    keep = []
    covered_px = np.isfinite(rain).all(axis=(0, 1))  # covered at every step
    for y0 in starts(H):
        for x0 in starts(W):
            tile = rain[..., y0 : y0 + size, x0 : x0 + size]
            covered = covered_px[y0 : y0 + size, x0 : x0 + size]
            if covered.mean() < min_coverage:
                continue
            with np.errstate(invalid="ignore"):
                wet = np.nanmean(tile[..., covered] >= threshold) if covered.any() else 0.0
            if wet >= min_wet:
                keep.append((y0, x0))
    return keep
