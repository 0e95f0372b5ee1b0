"""Synthetic weather-like fields written to a Zarr store block by block, never held in memory whole.

The field is a 2 m temperature in kelvin on a ``(time, latitude, longitude)`` grid, hourly: a
north-south gradient, a seasonal and a diurnal cycle, and two smooth periodic patterns (a few low
Fourier modes) advected at different constant velocities. It is a sensible forecasting task
(persistence is beaten by following the motion and the cycles), cheap to make (a frame is a few
vector operations on cropped views of a precomputed pattern) and deterministic for a seed.

The store is uncompressed, so its size on disk is the size an eager load needs in memory, and it is
chunked ``(time_chunk, H, W)``: small in time, whole in space, which makes a window of a few steps
read exactly its own chunks (see README, "Data larger than memory").

>>> import tempfile, pathlib
>>> from stpatch.datasets import from_xarray
>>> path = write_field_store(pathlib.Path(tempfile.mkdtemp()) / "f.zarr", steps=30, height=16, width=24,
...                          progress=False)
>>> data = from_xarray(path, variables="t2m")
>>> data.segments[0].shape, data.channels
((30, 1, 16, 24), ['t2m'])
"""

from __future__ import annotations

import os
import shutil
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

__all__ = ["FieldSpec", "field_frames", "grid_coords", "store_bytes", "write_field_store"]

_START = np.datetime64("2000-01-01T00:00", "ns")
_HOUR = np.timedelta64(3600, "s")


class FieldSpec:
    """The precomputed pieces of the synthetic field on an ``(H, W)`` grid (float32)."""

    def __init__(self, height: int, width: int, seed: int = 0):
        if height < 2 or width < 2:
            raise ValueError(f"the field needs at least 2 x 2 grid points, got {height} x {width}")
        self.height, self.width = int(height), int(width)
        rng = np.random.default_rng(seed)
        self.patterns = [self._periodic_pattern(rng) for _ in range(2)]
        lat = grid_coords(self.height, self.width)["lat"].astype(np.float32)
        # colder to the north; kept whole, (H, W), so that a frame starts with one full-size add
        self.mean = np.repeat((288.0 - 0.6 * (lat - 45.0))[:, None], self.width, axis=1).astype(np.float32)
        # (rows, columns) moved per step: a fast westerly pattern and a slow diagonal one
        self.velocities = ((0.0, 1.0), (0.5, -0.5))
        self.amplitudes = (4.0, 2.5)

    def _periodic_pattern(self, rng) -> np.ndarray:
        """A smooth pattern periodic on the grid, tiled 2 x 2 so that any shifted crop is a view."""
        y = np.arange(self.height, dtype=np.float64)[:, None] / self.height
        x = np.arange(self.width, dtype=np.float64)[None, :] / self.width
        field = np.zeros((self.height, self.width))
        for _ in range(6):
            ky, kx = rng.integers(1, 4, size=2)
            phase = rng.uniform(0, 2 * np.pi)
            field += rng.normal() * np.cos(2 * np.pi * (ky * y + kx * x) + phase)
        field /= np.abs(field).max() or 1.0
        return np.tile(field.astype(np.float32), (2, 2))

    def frame(self, t: int, out: np.ndarray | None = None) -> np.ndarray:
        """Step ``t`` of the field, ``(H, W)`` float32 kelvin (written into ``out`` when given)."""
        season = 8.0 * np.cos(2 * np.pi * (t / 8766.0))  # coldest in January
        day = 3.0 * np.sin(2 * np.pi * ((t % 24) / 24.0 - 0.375))  # warmest mid-afternoon
        out = np.empty((self.height, self.width), np.float32) if out is None else out
        np.add(self.mean, np.float32(season + day), out=out)
        for pattern, (vy, vx), amp in zip(self.patterns, self.velocities, self.amplitudes, strict=True):
            oy = int(np.floor(vy * t)) % self.height
            ox = int(np.floor(vx * t)) % self.width
            out += np.float32(amp) * pattern[oy : oy + self.height, ox : ox + self.width]
        return out


def grid_coords(height: int, width: int) -> dict[str, np.ndarray]:
    """Latitudes ``(H,)`` (60 N to 45 N) and longitudes ``(W,)`` (10 W to 10 E) of the field's grid."""
    return {"lat": np.linspace(60.0, 45.0, height), "lon": np.linspace(-10.0, 10.0, width)}


def field_frames(spec: FieldSpec, start: int, stop: int) -> np.ndarray:
    """Steps ``start .. stop - 1`` of the field, ``(stop - start, H, W)`` float32."""
    out = np.empty((stop - start, spec.height, spec.width), np.float32)
    for i, t in enumerate(range(start, stop)):
        spec.frame(t, out[i])
    return out


def store_bytes(steps: int, height: int, width: int) -> int:
    """Bytes of the field's values (float32): the store's size on disk, and what an eager load needs."""
    return int(steps) * int(height) * int(width) * 4


def write_field_store(
    path: str | Path,
    steps: int,
    height: int = 512,
    width: int = 512,
    time_chunk: int = 1,
    block: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Write ``steps`` hourly steps of the synthetic field to a new Zarr store at ``path``.

    Args:
        path: the store (a folder, conventionally ``NAME.zarr``); refused when it exists.
        steps, height, width: the array's shape ``(T, H, W)`` (variable ``t2m``, kelvin).
        time_chunk: steps per Zarr chunk; chunks span the whole grid.
        block: steps computed and written at a time (memory held: ``block * H * W * 4`` bytes).
        seed: the patterns' seed.
        progress: show a progress bar.

    The store is built in a hidden temporary folder beside ``path`` and renamed when complete, so an
    interrupted write never leaves a store that looks whole. Returns ``path``.
    """
    import xarray as xr
    import zarr

    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; remove it or choose another path for the new store")
    if steps < 1 or time_chunk < 1 or block < 1:
        raise ValueError(f"steps, time_chunk and block must be >= 1, got {steps}, {time_chunk}, {block}")
    block = max(time_chunk, block // time_chunk * time_chunk)  # whole chunks per write: no read-modify-write
    spec = FieldSpec(height, width, seed)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        _write_template(xr, tmp, steps, spec, time_chunk)
        values = zarr.open_group(str(tmp), mode="r+")["t2m"]
        bar = _bar(steps, store_bytes(steps, height, width), progress, f"writing {path.name}")
        # the next block is computed while the last one is written (two blocks in memory at most)
        with ThreadPoolExecutor(max_workers=1) as writer:
            pending = None
            for a in range(0, steps, block):
                b = min(steps, a + block)
                frames = field_frames(spec, a, b)
                if pending is not None:
                    bar.update(pending.result())
                pending = writer.submit(_write_block, values, a, frames)
            if pending is not None:
                bar.update(pending.result())
        bar.close()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return path


def _write_block(values, start: int, frames: np.ndarray) -> int:
    values[start : start + len(frames)] = frames
    return len(frames)


def _write_template(xr, tmp: Path, steps: int, spec: FieldSpec, time_chunk: int) -> None:
    """The store's metadata and coordinates; the values are written afterwards, block by block."""
    import dask.array as da

    h, w = spec.height, spec.width
    lazy = da.zeros((steps, h, w), dtype=np.float32, chunks=(time_chunk, h, w))
    ds = xr.Dataset(
        {"t2m": (("time", "latitude", "longitude"), lazy,
                 {"units": "K", "long_name": "2 metre temperature (synthetic)"})},
        coords={
            "time": _START + np.arange(steps) * _HOUR,
            "latitude": grid_coords(h, w)["lat"],
            "longitude": grid_coords(h, w)["lon"],
        },
        attrs={"title": "stpatch synthetic moving fields (stpatch.bench.fields)"},
    )
    encoding = {"t2m": {"chunks": (time_chunk, h, w), "compressors": None}}
    with warnings.catch_warnings():
        # consolidated metadata (one read to open the store) is not in the Zarr v3 spec yet; xarray reads it
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        ds.to_zarr(tmp, mode="w", compute=False, encoding=encoding, consolidated=True)


def _bar(steps: int, nbytes: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=steps, desc=f"{desc} ({nbytes / 1e9:.2f} GB)", unit="step", disable=not enabled,
                mininterval=1.0)
