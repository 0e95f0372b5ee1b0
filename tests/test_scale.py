"""Data larger than memory: statistics in one streaming pass, DataLoader workers that open the store
themselves, and a training run from a Zarr store whose memory does not grow with the store."""

from __future__ import annotations

import os
import pickle
import warnings

import numpy as np
import pytest
import torch
import xarray as xr
from torch.utils.data import DataLoader, Dataset

import stpatch.data as D
from stpatch.bench.fields import store_bytes, write_field_store
from stpatch.bench.scale import run_probe
from stpatch.data import streaming
from stpatch.data.adapters.store import StoreVariable, store_variables
from stpatch.data.windows import collate

T, H, W = 200, 5, 7


def _field() -> np.ndarray:
    """``(T, 2, H, W)`` float32 with scattered NaNs and 12 steps missing entirely (windows to drop)."""
    rng = np.random.default_rng(0)
    x = np.stack([rng.normal(280, 5, (T, H, W)), rng.gamma(0.5, 2.0, (T, H, W))], axis=1).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan
    x[40:52] = np.nan
    return x


def _write(x: np.ndarray, path, kind: str) -> None:
    times = np.datetime64("2020-01-01T00:00", "ns") + np.arange(len(x)) * np.timedelta64(1, "h")
    dims = ("time", "latitude", "longitude")
    ds = xr.Dataset({"t2m": (dims, x[:, 0]), "rain": (dims, x[:, 1])},
                    coords={"time": times, "latitude": np.linspace(60, 50, x.shape[2]),
                            "longitude": np.linspace(-5, 5, x.shape[3])})
    if kind == "zarr":
        with warnings.catch_warnings():  # consolidated metadata is not in the Zarr v3 spec; xarray reads it
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
            ds.to_zarr(path, encoding={v: {"chunks": (4, x.shape[2], x.shape[3])} for v in ds.data_vars})
    else:
        ds.to_netcdf(path)


def test_streaming_statistics_and_dropped_windows_match_an_eager_load(tmp_path, monkeypatch):
    # blocks of 3 steps: every pass below streams the store in many blocks, unaligned with its chunks
    monkeypatch.setattr(streaming, "BLOCK_ELEMENTS", 3 * 2 * H * W)
    x = _field()
    _write(x, tmp_path / "f.zarr", "zarr")
    lazy = D.from_xarray(tmp_path / "f.zarr", variables=["t2m", "rain"], chunks=10)
    assert lazy.lazy and len(list(streaming.time_blocks(lazy.segments[0]))) > 60
    eager = D.from_numpy(x, times=lazy.times, channels=["t2m", "rain"], name="eager")
    train = x[:140]  # the default split's training steps
    per_channel = np.moveaxis(train, 1, 0).reshape(2, -1)
    for name, expected in (
        ("standard", {"mean": np.nanmean(per_channel, 1), "std": np.nanstd(per_channel, 1)}),
        ("minmax", {"min": np.nanmin(per_channel, 1)}),
    ):
        fitted = D.get_scaler(name).fit(lazy.segments[0][:140])
        for key, value in expected.items():
            np.testing.assert_allclose(fitted.params[key], value, rtol=1e-6)
    # the DataModule fits its scaler and finds the training split's observed steps in one pass
    dms = [D.make_datamodule(d, t_in=4, t_out=4, scaler="standard") for d in (lazy, eager)]
    for dm in dms:
        dm.setup("fit")
    np.testing.assert_allclose(dms[0].scaler.params["mean"], np.nanmean(per_channel, 1), rtol=1e-6)
    np.testing.assert_allclose(dms[0].scaler.params["std"], np.nanstd(per_channel, 1), rtol=1e-6)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(dms[0].dataset(split).index, dms[1].dataset(split).index)
    assert dms[0].train_dataset.num_dropped == dms[1].train_dataset.num_dropped > 0
    b_lazy, b_eager = dms[0].train_dataset[5], dms[1].train_dataset[5]
    torch.testing.assert_close(b_lazy["x"], b_eager["x"])
    torch.testing.assert_close(b_lazy["x_mask"], b_eager["x_mask"])


class _WhoRead(Dataset):
    """A window dataset whose samples also say which process read them and which opened the store."""

    def __init__(self, windows):
        self.windows = windows

    def __len__(self):
        return len(self.windows)

    def __getitem__(self, i):
        sample = self.windows[i]
        sources = store_variables(self.windows.data.segments[0])
        sample["pid"] = torch.tensor(os.getpid())
        sample["opened_in"] = torch.tensor([s.opened_in for s in sources])
        return sample


@pytest.mark.parametrize("kind", ["zarr", "nc"])
def test_dataloader_workers_each_open_the_store_themselves(tmp_path, kind):
    x = _field()
    path = tmp_path / f"f.{kind}"
    _write(x, path, kind)
    data = D.from_xarray(path, variables=["t2m", "rain"])
    sources = store_variables(data.segments[0])
    assert len(sources) == 2 and all(isinstance(s, StoreVariable) for s in sources)
    # a pickled data set carries the open arguments, never the values or an open handle
    blob = pickle.dumps(data)
    assert len(blob) < x.nbytes / 4
    again = pickle.loads(blob)
    assert all(s.opened_in is None for s in store_variables(again.segments[0]))
    np.testing.assert_array_equal(D.core.to_numpy(again.segments[0][10:14]), x[10:14])

    dm = D.make_datamodule(data, t_in=4, t_out=4, batch_size=4, scaler="standard")
    windows = dm.train_dataset  # the scaler's pass opened the store in this process
    assert {s.opened_in for s in sources} == {os.getpid()}
    loader = DataLoader(_WhoRead(windows), batch_size=4, num_workers=2, collate_fn=collate)
    seen = set()
    for i, batch in enumerate(loader):
        for pid, opened in zip(batch["pid"].tolist(), batch["opened_in"].tolist()):
            assert pid != os.getpid() and opened == [pid, pid]  # opened by the worker that read it
            seen.add(pid)
        for k in range(batch["x"].shape[0]):
            torch.testing.assert_close(batch["x"][k], windows[4 * i + k]["x"])
        if i == 5:
            break
    assert len(seen) == 2


@pytest.mark.slow
def test_training_from_a_store_needs_no_memory_that_grows_with_the_store(tmp_path):
    """Train, evaluate and predict from a 256 MiB store in a fresh process: after the same jobs on a tiny
    store (what any run costs once), its peak memory grows by less than half the store, a ceiling that
    loading the store eagerly (measured in the same process, last) breaks. (The growth measured is
    independent of the store's size, 2 to 60 MiB from run to run with the allocator's pools.)"""
    steps, side = 4096, 128
    size = store_bytes(steps, side, side)
    store = write_field_store(tmp_path / "big.zarr", steps, side, side, time_chunk=8, progress=False)
    tiny = write_field_store(tmp_path / "tiny.zarr", 256, side, side, time_chunk=8, progress=False)
    spec = {
        "source": "store", "path": str(store), "warmup": str(tiny), "t_in": 4, "t_out": 4, "batch_size": 2,
        "split": [0.7, 0.1, 0.2], "model": {"name": "stpnet", "patch": [2, 8, 8], "dims": [8, 16], "attn_depth": 1},
        "train_steps": 3, "val_batches": 1, "eval_batches": 2, "run_dir": str(tmp_path / "run"),
        "phases": ["train", "evaluate", "predict", "eager"],
    }
    out = run_probe(spec, tmp_path / "probe", timeout=600)
    ceiling_mb = 0.5 * size / 2**20
    lazy_mb = out["peak_after_predict_mb"] - out["baseline_mb"]
    eager_mb = out["peak_after_eager_mb"] - out["baseline_mb"]
    assert out["train_steps"] == 3 and out["eval_windows"] == 4
    assert out["forecast_shape"] == [1, 4, 1, side, side] and out["forecast_finite"]
    peaks = {k: round(v) for k, v in out.items() if k.endswith("_mb")}
    assert lazy_mb < ceiling_mb, f"training from the store grew by {lazy_mb:.0f} MiB (ceiling {ceiling_mb:.0f}): {peaks}"
    # the ceiling is one an eager load breaks
    assert out["eager_bytes"] == size and eager_mb > ceiling_mb, f"an eager load grew by {eager_mb:.0f} MiB: {peaks}"


def test_scale_table_says_whether_the_peak_stayed_below_a_quarter_of_the_store():
    from stpatch.bench.scale import format_scale_table

    probe = {"peak_mb": 900.0, "baseline_mb": 480.0, "worker_peak_mb": 500.0, "read_windows_per_s": 16.0,
             "worker_windows_per_s": 19.0, "train_steps": 20, "train_windows_per_s": 7.7, "setup_s": 567.0,
             "evaluate_s": 144.0, "predict_s": 0.9, "train_loss": 0.146, "forecast_shape": [1, 8, 1, 256, 256],
             "forecast_finite": True}
    plan = {"store_steps": 144_630, "memory_steps": 12_052, "height": 256, "width": 256, "time_chunk": 4,
            "train_steps": 20, "read_windows": 200, "workers": 2, "t_in": 8, "t_out": 8, "batch_size": 4,
            "store_bytes": store_bytes(144_630, 256, 256), "memory_bytes": store_bytes(12_052, 256, 256)}
    result = {"plan": plan, "ram_bytes": 25.3e9, "load_average_start": "2.2", "write_s": 151.0,
              "store_disk_bytes": plan["store_bytes"], "store": probe, "memory": dict(probe, peak_mb=3885.0)}
    text = format_scale_table(result)
    assert "| Zarr store (lazy) | 37.91 GB | 37.91 GB | 900 MiB | 2.5 % |" in text
    assert "below 25 % of the store's size: **yes**" in text
    small = dict(result, plan=dict(plan, store_bytes=2 * 2**30))  # a 2 GiB store: 900 MiB is 44 %
    assert "below 25 % of the store's size: **no**" in format_scale_table(small)


def test_threads_reading_a_netcdf_file_take_turns_and_open_it_once(tmp_path):
    # dask computes the chunks of a window in several threads; the HDF5 library behind NetCDF is not
    # thread-safe, so unguarded reads fail now and then with "NetCDF: HDF error"
    import dask

    x = _field()
    _write(x, tmp_path / "f.nc", "netcdf")
    for _ in range(20):  # the race needs several tries to show
        lazy = D.from_xarray(tmp_path / "f.nc", variables=["t2m", "rain"], chunks=2)
        with dask.config.set(scheduler="threads", num_workers=8):
            got = np.asarray(lazy.segments[0][:40])
        np.testing.assert_array_equal(got, x[:40])
        sources = store_variables(lazy.segments[0])
        assert len(sources) == 2 and all(s.opened_in == os.getpid() for s in sources)


def test_a_probe_reports_its_own_peak_not_the_one_of_the_process_that_started_it():
    # Linux keeps ru_maxrss across fork and exec: a probe started from a large process (a long test
    # session) would report that process's size as its own peak
    import subprocess
    import sys

    ballast = np.ones(1 << 27)  # 1 GiB, touched: this process's resident memory is now above 1 GiB
    assert ballast.sum() > 0
    code = "from stpatch.bench.report import peak_rss_bytes; print(peak_rss_bytes())"
    child = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert 10 * 2**20 < child < 2**30, f"the child's peak {child / 2**20:.0f} MiB is its parent's"
