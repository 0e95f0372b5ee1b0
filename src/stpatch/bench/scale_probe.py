"""One measurement of ``stpatch bench scale``, run in a fresh process so that its peak memory is its own.

    python -m stpatch.bench.scale_probe SPEC.json RESULT.json

The spec names the data (``"store"``: a Zarr / NetCDF path read lazily with ``from_xarray``;
``"memory"``: the same synthetic field computed into a NumPy array here) and the phases to run:

* ``read``: windows read and prepared (masked, as the DataModule does) one by one in this process,
  then through a DataLoader with ``workers`` worker processes (each opens the store itself);
* ``train``: ``stpatch.train`` for ``train_steps`` optimiser steps (setup included: the streaming
  passes for the observed steps, the scaler statistics and the data profile);
* ``evaluate``: ``stpatch.evaluate`` on ``eval_batches`` test batches;
* ``predict``: ``stpatch.predict`` from the store's path (or the array): the steps after its end;
* ``eager``: the whole array loaded into memory, which is what the lazy path must never do (a
  reference for the peak an eager load reaches).

With ``"warmup": PATH`` (a tiny store), the phases run on it first, so that what every run costs
once (Lightning, the model, the allocator's pools) is in the baseline and the growth after it is what
the data cost (the test of a memory ceiling uses this).

The result holds the peak resident memory (``VmHWM``, the kernel's high-water mark) after the
imports (``imports_mb``), before the data are opened (``baseline_mb``) and after each phase, the
largest DataLoader worker's peak, and the timings.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np

__all__ = ["run_spec", "peak_mb", "children_peak_mb", "main"]


def peak_mb() -> float:
    """This process's peak resident memory so far, MiB (:func:`stpatch.bench.report.peak_rss_bytes`)."""
    from stpatch.bench.report import peak_rss_bytes

    return peak_rss_bytes() / 2**20


def children_peak_mb() -> float:
    """The largest peak resident memory of this process's finished children (DataLoader workers), MiB."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _data(spec: dict):
    """The data of ``spec``: lazy from the store, or the same field computed into memory ``(T, 1, H, W)``."""
    from stpatch.datasets import from_numpy, from_xarray

    if spec["source"] == "store":
        return from_xarray(spec["path"], variables="t2m")
    from stpatch.bench.fields import FieldSpec, field_frames, grid_coords

    field = FieldSpec(spec["height"], spec["width"], spec.get("seed", 0))
    values = field_frames(field, 0, spec["steps"])
    times = np.datetime64("2000-01-01T00:00", "ns") + np.arange(spec["steps"]) * np.timedelta64(3600, "s")
    return from_numpy(values, layout="THW", times=times, channels=["t2m"], name="in-memory",
                      coords=grid_coords(spec["height"], spec["width"]), attrs={"units": "K"})


def _read(data, spec: dict, out: dict) -> None:
    """Windows/s of the window reader alone: one by one here, then through DataLoader workers."""
    import torch
    from torch.utils.data import DataLoader, SubsetRandomSampler

    from stpatch.data.windows import WindowDataset, collate, split_ranges

    t_in, t_out = spec["t_in"], spec["t_out"]
    train = split_ranges(data.lengths, tuple(spec["split"]), window=t_in + t_out)["train"]
    # "keep": no pass over the data to drop all-missing windows; this phase times reading alone
    ds = WindowDataset(data, t_in, t_out, train, empty_windows="keep")
    order = np.random.default_rng(0).permutation(len(ds))
    n = min(spec["read_windows"], len(ds))
    start = time.perf_counter()
    for i in order[:n]:
        ds[int(i)]
    out["read_windows"] = n
    out["read_windows_per_s"] = n / (time.perf_counter() - start)
    workers = spec.get("workers", 0)
    if workers:
        batches = spec.get("worker_batches", 8)
        picked = order[: batches * spec["batch_size"]].tolist()
        loader = DataLoader(ds, batch_size=spec["batch_size"], sampler=SubsetRandomSampler(picked),
                            num_workers=workers, collate_fn=collate, generator=torch.Generator().manual_seed(0))
        start = time.perf_counter()
        count = sum(int(b["x"].shape[0]) for b in loader)  # the workers exit (and are waited for) at the end
        out["worker_windows"] = count
        out["worker_windows_per_s"] = count / (time.perf_counter() - start)
        out["workers"] = workers
        out["worker_peak_mb"] = children_peak_mb()
    out["peak_after_read_mb"] = peak_mb()


class _StepClock(pl.Callback):
    """When the first training batch starts and the last one ends, and how many ran."""

    def __init__(self):
        self.first = self.last = None
        self.steps = 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if self.first is None:
            self.first = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.last = time.perf_counter()
        self.steps += 1


def _config(spec: dict) -> dict:
    return {
        "data": {"name": spec.get("name", "scale"), "t_in": spec["t_in"], "t_out": spec["t_out"],
                 "batch_size": spec["batch_size"], "split": list(spec["split"]), "scaler": "standard",
                 "num_workers": spec.get("train_workers", 0)},
        "model": dict(spec["model"]),
        "train": {"max_steps": spec["train_steps"], "max_epochs": 1, "limit_val_batches": spec.get("val_batches", 2),
                  "progress": spec.get("progress", False), "deterministic": False, "seed": 0},
        "eval": {"baselines": ["persistence"], "limit_batches": spec.get("eval_batches", 2), "figures": False,
                 "suite": ["lat_weighted_rmse", "mae_per_pixel"]},
        "run_dir": spec["run_dir"],
    }


def _train(data, spec: dict, out: dict) -> None:
    import stpatch

    clock = _StepClock()
    start = time.perf_counter()
    result = stpatch.train(_config(spec), data=data, callbacks=[clock])
    end = time.perf_counter()
    out["train_steps"] = clock.steps
    out["setup_s"] = (clock.first - start) if clock.first is not None else None
    if clock.steps > 1:
        # from the start of the first step to the end of the last: steps/s without setup or saving
        out["train_steps_per_s"] = clock.steps / (clock.last - clock.first)
        out["train_windows_per_s"] = out["train_steps_per_s"] * spec["batch_size"]
    out["train_s"] = end - start
    out["train_loss"] = result.metrics.get("train_loss_epoch", result.metrics.get("train_loss_step"))
    out["peak_after_train_mb"] = peak_mb()


def _evaluate(data, spec: dict, out: dict) -> None:
    import stpatch

    start = time.perf_counter()
    scores = stpatch.evaluate(spec["run_dir"], data=data, limit_batches=spec.get("eval_batches", 2),
                              figures=False, report=False)
    out["evaluate_s"] = time.perf_counter() - start
    out["eval_windows"] = scores["windows"]
    out["eval_mean"] = scores["mean"]
    out["peak_after_evaluate_mb"] = peak_mb()


def _predict(data, spec: dict, out: dict) -> None:
    import stpatch

    start = time.perf_counter()
    source = spec["path"] if spec["source"] == "store" else data  # a path: read as `stpatch predict` reads it
    forecast = stpatch.predict(spec["run_dir"], source)
    out["predict_s"] = time.perf_counter() - start
    out["forecast_shape"] = list(forecast.shape)
    out["forecast_finite"] = bool(np.isfinite(forecast).all())
    out["peak_after_predict_mb"] = peak_mb()


def _eager(data, spec: dict, out: dict) -> None:
    start = time.perf_counter()
    loaded = data.compute()
    out["eager_s"] = time.perf_counter() - start
    out["eager_bytes"] = int(sum(s.nbytes for s in loaded.segments))
    out["peak_after_eager_mb"] = peak_mb()


_PHASES = {"read": _read, "train": _train, "evaluate": _evaluate, "predict": _predict, "eager": _eager}


def run_spec(spec: dict) -> dict:
    """Run the phases of ``spec`` in this process; see the module's docstring for the result."""
    # imported before the baseline is taken: every run needs them, whatever its data, so none of the
    # growth measured after it is theirs (the registries import their plug-in modules on first use)
    import dask.array  # noqa: F401
    import torch
    import xarray as xr

    import stpatch
    import stpatch.engine.evaluation  # noqa: F401
    import stpatch.engine.training  # noqa: F401
    import stpatch.metrics

    stpatch.list_models()
    stpatch.metrics.list_metrics()
    xr.backends.list_engines()  # imports the installed backends (zarr, netCDF4 ...)
    try:
        import torch.utils.tensorboard  # noqa: F401 - the training run's TensorBoard logger
    except ImportError:
        pass

    torch.set_num_threads(int(spec.get("threads", 1)))
    out: dict = {"pid": os.getpid(), "imports_mb": peak_mb()}
    if spec.get("warmup"):
        # the same jobs on a tiny store first: what any run costs once (Lightning, the model, the
        # allocator's pools) is then in the baseline, and the growth after it is what the data cost
        phases = [p for p in spec["phases"] if p != "eager"]
        run_spec({**spec, "path": spec["warmup"], "run_dir": str(spec["run_dir"]) + "-warmup", "warmup": None,
                  "phases": phases, "source": "store"})
    out["baseline_mb"] = peak_mb()
    start = time.perf_counter()
    data = _data(spec)
    out["open_s"] = time.perf_counter() - start
    out["shape"] = list(data.segments[0].shape)
    out["lazy"] = bool(data.lazy)
    out["peak_after_open_mb"] = peak_mb()
    for phase in spec["phases"]:
        if phase not in _PHASES:
            raise ValueError(f"unknown phase {phase!r}; expected some of {sorted(_PHASES)}")
        _PHASES[phase](data, spec, out)
    out["peak_mb"] = peak_mb()
    return out


def main(argv: list[str] | None = None) -> None:
    """``python -m stpatch.bench.scale_probe SPEC.json RESULT.json``."""
    from stpatch.atomic import write_json

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        raise SystemExit("usage: python -m stpatch.bench.scale_probe SPEC.json RESULT.json")
    spec = json.loads(Path(args[0]).read_text())
    write_json(Path(args[1]), run_spec(spec))

if __name__ == "__main__":
    main()
