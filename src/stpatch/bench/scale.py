"""``stpatch bench scale``: training from a Zarr store larger than the machine's memory.

    stpatch bench scale --write                 # a store of 1.5 x this machine's RAM; BENCHMARKS.md
    stpatch bench scale --quick                 # a 0.25 GB store: checks the wiring in a few minutes

Writes a synthetic but realistic store (:mod:`stpatch.bench.fields`: advected smooth fields with
diurnal and seasonal cycles, hourly, uncompressed, chunked ``(4, H, W)``) block by block, then in a
fresh process for each (:mod:`stpatch.bench.scale_probe`) reads windows (one process, then DataLoader
workers that each open the store), trains a small stpnet for a fixed number of steps, evaluates and
predicts from it; and does the same with a smaller array held in memory. It reports the peak resident
memory (``VmHWM``) of each process, windows/s read and trained, and the time the streaming passes
take before the first step. The store is deleted afterwards unless ``keep``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from stpatch.bench.fields import store_bytes, write_field_store

__all__ = ["ScalePlan", "total_memory", "plan_scale", "bench_scale", "format_scale_table", "run_probe", "run_scale"]

_GB = 1e9
_MIB = 2**20


def total_memory() -> int:
    """This machine's RAM in bytes (psutil when installed, else ``/proc/meminfo``)."""
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("cannot tell this machine's memory (no psutil, no /proc/meminfo); pass size_gb")


@dataclass
class ScalePlan:
    """What ``bench scale`` will write and run."""

    store_steps: int
    memory_steps: int
    height: int
    width: int
    time_chunk: int
    train_steps: int
    read_windows: int
    workers: int
    t_in: int = 8
    t_out: int = 8
    batch_size: int = 4

    @property
    def store_bytes(self) -> int:
        return store_bytes(self.store_steps, self.height, self.width)

    @property
    def memory_bytes(self) -> int:
        return store_bytes(self.memory_steps, self.height, self.width)


def plan_scale(size_gb: float | None = None, memory_gb: float | None = None, train_steps: int | None = None,
               workers: int = 2, quick: bool = False) -> ScalePlan:
    """The store (default 1.5 x RAM; ``quick``: 0.25 GB) and the in-memory array (default 1/8 of RAM,
    at most a tenth of the store) of the benchmark, on a 256 x 256 grid (128 x 128 when ``quick``)."""
    side = 128 if quick else 256
    per_step = store_bytes(1, side, side)
    ram = total_memory()
    size = (0.25 * _GB if quick else 1.5 * ram) if size_gb is None else size_gb * _GB
    memory = (min(ram / 8, size / 10) if memory_gb is None else memory_gb * _GB)
    if size < 64 * per_step or memory < 64 * per_step:
        raise ValueError(f"the store and the in-memory array need at least 64 steps of {per_step} bytes; "
                         f"got {size / _GB:g} GB and {memory / _GB:g} GB")
    return ScalePlan(store_steps=int(size // per_step), memory_steps=int(memory // per_step), height=side,
                     width=side, time_chunk=4, train_steps=train_steps or (3 if quick else 20),
                     read_windows=50 if quick else 200, workers=workers)


def _spec(plan: ScalePlan, source: str, run_dir: Path, path: Path | None, progress: bool) -> dict:
    return {
        "source": source, "path": None if path is None else str(path), "steps": plan.memory_steps,
        "height": plan.height, "width": plan.width, "t_in": plan.t_in, "t_out": plan.t_out,
        "batch_size": plan.batch_size, "split": [0.7, 0.1, 0.2], "read_windows": plan.read_windows,
        "workers": plan.workers, "worker_batches": max(4, plan.read_windows // (2 * plan.batch_size)),
        # a small stpnet: this benchmark is about reading, not about the model's cost
        "model": {"name": "stpnet", "patch": [2, 8, 8], "dims": [16, 32], "attn_depth": 1},
        "train_steps": plan.train_steps, "val_batches": 2, "eval_batches": 4, "run_dir": str(run_dir),
        "progress": progress, "phases": ["read", "train", "evaluate", "predict"],
        "name": "scale-store" if source == "store" else "scale-memory",
    }


def run_probe(spec: dict, folder: Path, timeout: float | None = None) -> dict:
    """Run :mod:`stpatch.bench.scale_probe` on ``spec`` in a fresh Python process; its result dict.

    The child's progress bars go to this process's stderr; a failure raises RuntimeError with the end
    of what the child printed."""
    folder.mkdir(parents=True, exist_ok=True)
    spec_file, result_file = folder / "spec.json", folder / "result.json"
    spec_file.write_text(json.dumps(spec))
    command = [sys.executable, "-m", "stpatch.bench.scale_probe", str(spec_file), str(result_file)]
    if spec.get("progress"):  # the child's progress bars and logs go where this process's go
        done, tail = subprocess.run(command, timeout=timeout, check=False), "(its output is above)"
    else:
        done = subprocess.run(command, timeout=timeout, check=False, capture_output=True, text=True)
        tail = (done.stdout + done.stderr)[-3000:]
    if done.returncode != 0 or not result_file.is_file():
        raise RuntimeError(f"the scale probe ({spec['source']}) failed with exit code {done.returncode}:\n{tail}")
    return json.loads(result_file.read_text())


def _load_average() -> str:
    try:
        return ", ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "not known"


def bench_scale(size_gb: float | None = None, train_steps: int | None = None, directory: str | Path | None = None,
                quick: bool = False, keep: bool = False, workers: int = 2, memory_gb: float | None = None,
                progress: bool = True) -> dict:
    """Write the store, run the store and the in-memory probes, and return what they measured.

    Args:
        size_gb: the store's size (default 1.5 x this machine's RAM; 0.25 with ``quick``).
        train_steps: optimiser steps of each training run (default 20; 3 with ``quick``).
        directory: where the store is written (a temporary folder inside it; default the system's).
        keep: keep the store (its path is in the result) instead of deleting it.
        workers: DataLoader workers of the read test.
        memory_gb: the in-memory array's size (default 1/8 of RAM, at most a tenth of the store).
    """
    plan = plan_scale(size_gb, memory_gb, train_steps, workers, quick)
    base = Path(directory) if directory is not None else Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    need = plan.store_bytes * 1.02 + 2**30
    free = shutil.disk_usage(base).free
    if free < need:
        raise ValueError(f"{base} has {free / _GB:.1f} GB free, the store needs {need / _GB:.1f} GB; "
                         "pass --dir on a larger disk or a smaller --size-gb")
    folder = Path(tempfile.mkdtemp(prefix="stpatch-scale-", dir=base))
    store = folder / "fields.zarr"
    result: dict = {"plan": plan.__dict__ | {"store_bytes": plan.store_bytes, "memory_bytes": plan.memory_bytes},
                    "ram_bytes": total_memory(), "load_average_start": _load_average()}
    try:
        start = time.perf_counter()
        write_field_store(store, plan.store_steps, plan.height, plan.width, time_chunk=plan.time_chunk,
                          progress=progress)
        result["write_s"] = time.perf_counter() - start
        result["store_disk_bytes"] = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
        result["store"] = run_probe(_spec(plan, "store", folder / "run-store", store, progress), folder / "store")
        result["memory"] = run_probe(_spec(plan, "memory", folder / "run-memory", None, progress), folder / "memory")
        result["load_average_end"] = _load_average()
    finally:
        if keep:
            result["kept"] = str(store)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return result


def _row(name: str, values: int, disk: int | None, r: dict) -> str:
    peak = r["peak_mb"] * _MIB
    fields = [
        name, f"{values / _GB:.2f} GB", "-" if disk is None else f"{disk / _GB:.2f} GB",
        f"{r['peak_mb']:,.0f} MiB", f"{100 * peak / values:.1f} %", f"{r['worker_peak_mb']:,.0f} MiB",
        f"{r['read_windows_per_s']:.1f}", f"{r['worker_windows_per_s']:.1f}",
        f"{r['train_steps']} ({r['train_windows_per_s']:.1f})", f"{r['setup_s']:.0f} s",
        f"{r['evaluate_s']:.0f} s", f"{r['predict_s']:.1f} s",
    ]
    return "| " + " | ".join(fields) + " |"


def _rate(nbytes: float, r: dict, key: str = "setup_s") -> str:
    return f"{nbytes / r[key] / 1e6:,.0f} MB/s" if r.get(key) else "-"


def format_scale_table(result: dict, command: str = "stpatch bench scale") -> str:
    """The BENCHMARKS.md section of a :func:`bench_scale` result."""
    from stpatch.bench.report import stamp

    plan, store, memory = result["plan"], result["store"], result["memory"]
    size = plan["store_bytes"]
    peak = store["peak_mb"] * _MIB
    met = "**yes**" if peak < 0.25 * size else "**no**"
    head = ("| data | values | on disk | peak RSS | peak / values | largest worker | windows/s read | "
            f"windows/s, {plan['workers']} workers | training steps (windows/s) | setup before step 1 | "
            "evaluate | predict |")
    lines = [
        "## Training from a store larger than memory", "",
        stamp(command).rstrip() + f"  \nRAM: {result['ram_bytes'] / _GB:.1f} GB; load average (1, 5, 15 min) "
        f"{result['load_average_start']} at the start, {result.get('load_average_end', '-')} at the end", "",
        head, "| " + " | ".join(["---"] * 12) + " |",
        _row("Zarr store (lazy)", size, result["store_disk_bytes"], store),
        _row("NumPy array in memory", plan["memory_bytes"], None, memory), "",
        f"Peak resident memory of the store's process below 25 % of the store's size: {met} "
        f"({store['peak_mb'] / 1024:.2f} GiB of {size / 2**30:.1f} GiB, {100 * peak / size:.1f} %; "
        f"{store['baseline_mb']:,.0f} MiB of it before any data was opened, after the imports).",
        "",
        f"The store: {plan['store_steps']:,} hourly steps of a {plan['height']} x {plan['width']} float32 field "
        f"(`stpatch.bench.fields`: advected smooth patterns, diurnal and seasonal cycles), uncompressed, chunks "
        f"({plan['time_chunk']}, {plan['height']}, {plan['width']}) of {plan['time_chunk'] * plan['height'] * plan['width'] * 4 / _MIB:g} MiB; "
        f"written block by block in {result['write_s']:.0f} s ({size / result['write_s'] / 1e6:.0f} MB/s). "
        f"The in-memory array: the first {plan['memory_steps']:,} steps of the same field, computed in the process.",
        f"Each row is one fresh process: windows of {plan['t_in']} + {plan['t_out']} steps read one by one "
        f"({plan['read_windows']} random training windows, masks built as for a batch), then through a DataLoader with "
        f"{plan['workers']} workers (each opens the store itself; the largest worker's peak is shown); then "
        f"`stpatch.train` of a small stpnet (patch 2 x 8 x 8, dims 16/32, batch {plan['batch_size']}) for "
        f"{plan['train_steps']} steps, `stpatch.evaluate` on 4 test batches and `stpatch.predict` (the store's "
        "path, read as `stpatch predict --input` reads it). Peak RSS is the process's high-water mark (`VmHWM`). "
        "Setup before step 1 holds the streaming passes over the store (the scaler's statistics with the "
        "training split's observed steps in one pass, then the data profile) and Lightning's start; training windows/s is steps/s x batch size, from the first step to the last.",
        f"Store: training loss after {store['train_steps']} steps {store['train_loss']:.3f} (scaled units); "
        f"forecast {store['forecast_shape']}, finite: {store['forecast_finite']}.",
        "",
        f"Where the time goes: before step 1, two streaming passes over the training split (70 % of the "
        f"values: the scaler with the observed steps, then the data profile) ran at {_rate(1.4 * size, store)} "
        f"from the store and {_rate(1.4 * plan['memory_bytes'], memory)} over the array in memory; evaluation "
        f"read the test split twice (its observed steps, the data guard's check) at "
        f"{_rate(0.4 * size, store, 'evaluate_s')}. The store is larger than the page cache, so those passes "
        "and the random windows read from disk; the array's windows are copies in memory.",
    ]
    return "\n".join(lines)


def run_scale(size_gb: float | None = None, train_steps: int | None = None, directory: str | Path | None = None,
              quick: bool = False, keep: bool = False, write: bool = False) -> str:
    """``stpatch bench scale``: :func:`bench_scale`, its table, and (``write``) the ``scale`` section of
    BENCHMARKS.md."""
    from stpatch.bench.report import write_section

    result = bench_scale(size_gb=size_gb, train_steps=train_steps, directory=directory, quick=quick, keep=keep)
    options = [("--size-gb", size_gb), ("--steps", train_steps), ("--dir", directory)]
    command = " ".join(["stpatch bench scale", *(f"{k} {v}" for k, v in options if v is not None),
                        *(["--quick"] if quick else []), *(["--keep"] if keep else []), "--write"])
    text = format_scale_table(result, command)
    if write:
        write_section("scale", text)
    if keep:
        text += f"\n\nThe store was kept: {result['kept']}"
    return text
