"""The input windows of a trained run, scaled as in training, for the analyses (features, importance)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stpatch.engine.runs import LoadedRun, check_data_matches, load_run


def as_run(run_or_checkpoint: str | Path | LoadedRun) -> LoadedRun:
    """A loaded run (a run directory or checkpoint is loaded; a :class:`LoadedRun` passes through)."""
    return run_or_checkpoint if isinstance(run_or_checkpoint, LoadedRun) else load_run(run_or_checkpoint)


def run_data(run: LoadedRun, data: Any = None, split: str = "test"):
    """The run's data module (its own data set, or ``data`` in its place), scaled with the run's scaler."""
    from stpatch.data import guard
    from stpatch.engine.wiring import make_data

    if split not in ("train", "val", "test", "all"):
        raise ValueError(f"split must be 'train', 'val', 'test' or 'all', got {split!r}")
    if data is not None:
        data = guard.conform(data, run.meta, run.profile, who="the analysed data")
    dm = make_data(run.config, data)
    # scaled with the statistics the run trained with, never refitted on other data
    dm.load_state_dict({"scaler": run.scaler.state_dict()})
    if split != "test":
        dm.setup("fit")
    if split in ("test", "all"):
        dm.setup("test")
    check_data_matches(run.meta, dm, run.checkpoint)
    return dm


def run_batches(dm, split: str = "test", limit_batches: int | None = None) -> Iterator[dict]:
    """Batches ``{"x", "y", ...}`` of ``split`` of the data module ``dm`` (at most ``limit_batches``).

    ``"all"`` chains the training, validation and test windows (the training ones in the loader's order).
    """
    import itertools

    names = ("train", "val", "test") if split == "all" else (split,)
    loaders = {"train": dm.train_dataloader, "val": dm.val_dataloader, "test": dm.test_dataloader}
    for i, batch in enumerate(itertools.chain.from_iterable(loaders[n]() for n in names)):
        if limit_batches is not None and i >= limit_batches:
            break
        yield batch


def spatial_coords(run: LoadedRun, dm=None) -> dict:
    """What the run knows of where its data lie: grids ``{"lat": (H,), "lon": (W,)}`` (either may be
    missing), sensors ``{"coords": (N, 2)}``; empty when unknown."""
    import numpy as np

    out: dict = {}
    if run.meta["kind"] == "sensor":
        if run.meta.get("coords") is not None:
            out["coords"] = np.asarray(run.meta["coords"], dtype=np.float64)
        return out
    coords = getattr(getattr(dm, "data", None), "coords", None) if dm is not None else None
    for key in ("lat", "lon"):
        value = coords.get(key) if isinstance(coords, dict) else None
        if value is None and key == "lat":
            value = run.meta.get("lat")
        if value is not None and np.ndim(value) == 1:
            out[key] = np.asarray(value, dtype=np.float64)
    return out
