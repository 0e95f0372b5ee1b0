"""Large grids: peak memory and step time of a training step against the grid size (``stpatch bench grids``).

For each grid size (64 ... 512; 10 -> 10 frames, 1 channel, batch 1) and configuration (stpnet with
window attention, with activation checkpointing, under bf16 autocast; convlstm, with checkpointing),
a fresh Python process builds the model and runs training steps on random frames: forward, MSE loss,
backward, AdamW step. It reports its peak resident memory (``VmHWM``: one process per cell, so
nothing carries over between configurations) and the median time of the steps after the first. A
cell that runs out of memory (a cap on the address space, ``RLIMIT_AS``, which keeps a shared machine
safe) or over the time cap is reported as such, and the table goes on.

Probes above 512 (up to 2048x2048) measure one step each, and a line through each configuration's
largest measured sizes extrapolates to the largest square grid that fits in the machine's memory. Then
a short real run of ``stpatch.train`` (stpnet, 10 -> 10 moving digits on 256x256) shows the loss falling.

    python -m stpatch.bench.grids SPEC_JSON    # one cell, in the process it starts (used internally)
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CONFIGS", "SIZES", "GridConfig", "bench_grids", "largest_square", "measure", "measure_step", "train_large"]

SIZES = (64, 128, 256, 384, 512)
GIB = 1024**3


@dataclass(frozen=True)
class GridConfig:
    """One column of the table: a registered model, its options, and whether it runs under bf16 autocast."""

    label: str
    model: str
    options: dict = field(default_factory=dict, hash=False)
    bf16: bool = False


CONFIGS = (
    GridConfig("stpnet", "stpnet"),
    GridConfig("stpnet + checkpointing", "stpnet", {"checkpointing": True}),
    GridConfig("stpnet bf16", "stpnet", bf16=True),
    GridConfig("convlstm", "convlstm"),
    GridConfig("convlstm + checkpointing", "convlstm", {"checkpointing": True}),
)
#: sizes above the table, one step each: where the line of what fits is drawn through
PROBES = ((1024, "stpnet"), (2048, "stpnet"), (1024, "stpnet + checkpointing"), (2048, "stpnet + checkpointing"),
          (1024, "stpnet bf16"), (1024, "convlstm"), (1024, "convlstm + checkpointing"))


# --------------------------------------------------------------------------- one cell, inside its own process

def _peak_bytes() -> int:
    from stpatch.bench.report import peak_rss_bytes

    return peak_rss_bytes()


def measure_step(model: str, options: dict, size: int, batch: int = 1, steps: int = 4, bf16: bool = False,
                 time_cap_s: float = 300.0, mem_cap_bytes: int | None = None) -> dict:
    """Training steps of ``model`` on ``(batch, 10, 1, size, size)`` random frames, in this process.

    Call it in a fresh process (:func:`measure` does): the peak is the process's. Returns ``status``
    (``"ok"``, ``"out of memory"``, ``"over time cap"``), ``peak_mib`` (whole process), ``ready_mib``
    (model, optimizer and data built, before the first step), ``step_s`` (median of the steps after
    the first; the first alone when it was the only one) and ``steps_run``.
    """
    import torch

    from stpatch.models import create_model

    if mem_cap_bytes:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (int(mem_cap_bytes), int(mem_cap_bytes)))
    times: list[float] = []
    ready = 0
    status, detail = "ok", ""
    try:
        torch.manual_seed(0)
        net = create_model(model, in_channels=1, t_in=10, t_out=10, **options).train()
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
        x, y = torch.rand(batch, 10, 1, size, size), torch.rand(batch, 10, 1, size, size)
        ready = _peak_bytes()  # nothing has shrunk yet: the peak so far is what the built model holds
        for _ in range(steps):
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = torch.nn.functional.mse_loss(net(x).float(), y)
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - start)
            if times[-1] > time_cap_s:
                status, detail = "over time cap", f"{times[-1]:.0f} s/step > {time_cap_s:.0f} s"
                break
    except (MemoryError, RuntimeError) as err:  # torch's allocator raises RuntimeError when refused memory
        if not isinstance(err, MemoryError) and "memory" not in str(err).lower():
            raise
        status, detail = "out of memory", f"cap {mem_cap_bytes / GIB:.0f} GiB" if mem_cap_bytes else ""
    timed = times[1:] or times
    return {"status": status, "detail": detail, "peak_mib": _peak_bytes() / 2**20, "ready_mib": ready / 2**20,
            "step_s": statistics.median(timed) if timed else None, "steps_run": len(times)}


def measure(config: GridConfig, size: int, batch: int = 1, steps: int = 4, time_cap_s: float = 300.0,
            mem_cap_gib: float = 12.0) -> dict:
    """:func:`measure_step` for one configuration and size, in a fresh Python process.

    A process killed from outside (the kernel's OOM killer) or past ``time_cap_s`` per step plus a
    margin for start-up is reported in ``status``, never raised.
    """
    spec = {"model": config.model, "options": config.options, "size": size, "batch": batch, "steps": steps,
            "bf16": config.bf16, "time_cap_s": time_cap_s, "mem_cap_bytes": int(mem_cap_gib * GIB)}
    row = {"config": config.label, "size": size, "batch": batch, "peak_mib": None, "step_s": None}
    limit = time_cap_s * (steps + 1) + 300
    try:
        done = subprocess.run([sys.executable, "-m", "stpatch.bench.grids", json.dumps(spec)], capture_output=True,
                              text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return {**row, "status": "over time cap", "detail": f"no result within {limit:.0f} s"}
    if done.returncode < 0:  # SIGKILL: most likely the kernel's OOM killer
        status = "out of memory" if done.returncode == -9 else "killed"
        return {**row, "status": status, "detail": f"killed by signal {-done.returncode}"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return {**row, "status": "error", "detail": last[:200]}
    return {**row, **json.loads(done.stdout.strip().splitlines()[-1])}


# --------------------------------------------------------------------------- what fits

def largest_square(rows: list[dict], label: str, budget_mib: float, use: int = 3) -> tuple[int, float, float] | None:
    """``(side, a, b)``: the largest ``side x side`` grid whose peak ``a + b * pixels`` (MiB) is within
    ``budget_mib``, the line fitted to the configuration's ``use`` largest measured sizes; None with fewer
    than two. Only the largest: per pixel the peak grows less on large grids than on small ones, where the
    process's fixed memory and what the allocator keeps of freed small tensors weigh more."""
    import numpy as np

    points = sorted((r["size"] ** 2, r["peak_mib"]) for r in rows if r["config"] == label and r["status"] == "ok")
    points = points[-use:]
    if len(points) < 2:
        return None
    b, a = np.polyfit(*zip(*points), 1)
    return int(math.sqrt(max(budget_mib - a, 0.0) / b)), float(a), float(b)


# --------------------------------------------------------------------------- a real run

def train_large(size: int = 256, steps: int = 64, batch: int = 2, run_dir: Path | None = None,
                options: dict | None = None) -> dict:
    """Train stpnet 10 -> 10 on ``size x size`` moving digits through :func:`stpatch.train`; evaluate it.

    The digits scale with the canvas (28 px on 64 px, as Moving MNIST), 64 training sequences.
    Returns the run directory, seconds, every step's training loss, the validation losses and the
    test ``mse_per_frame`` of the model and of persistence (physical units).
    """
    import lightning.pytorch as pl
    import pandas as pd

    from stpatch.engine.evaluation import evaluate
    from stpatch.engine.training import train

    class StepLosses(pl.Callback):
        def __init__(self) -> None:
            self.losses: list[float] = []

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs
            self.losses.append(float(loss))

    run_dir = Path(run_dir or tempfile.mkdtemp(prefix=f"grids-{size}-")) / "run"
    config = {
        "data": {"name": "digits", "t_in": 10, "t_out": 10, "batch_size": batch,
                 "options": {"image_size": size, "digit_size": round(size * 28 / 64), "train_size": 64,
                             "val_size": 8, "test_size": 8}},
        "model": {"name": "stpnet", **(options or {})},
        "train": {"max_steps": steps, "max_epochs": 1000, "progress": False, "seed": 0},
        "eval": {"figures": False},
        "run_dir": str(run_dir),
    }
    recorder = StepLosses()
    start = time.perf_counter()
    train(config, callbacks=[recorder])
    seconds = time.perf_counter() - start
    scores = evaluate(run_dir, figures=False, report=False)
    metrics = pd.read_csv(run_dir / "metrics.csv")
    val = [float(v) for v in metrics["val_loss"].dropna()] if "val_loss" in metrics else []
    return {"size": size, "batch": batch, "steps": len(recorder.losses), "seconds": seconds, "run_dir": str(run_dir),
            "losses": recorder.losses, "val_losses": val, "windows": scores["windows"],
            "test": {name: scores["mean"][name]["mse_per_frame"] for name in ("stpnet", "persistence")}}


# --------------------------------------------------------------------------- the section

def _cell(row: dict | None, key: str, digits: int) -> str:
    if row is None:
        return "-"
    # a cell stopped by the time cap still measured the memory of the steps it ran
    memory_only = row["status"] == "over time cap" and key == "peak_mib" and row.get("steps_run")
    if row["status"] != "ok" and not memory_only:
        return f"{row['status']} ({row['detail']})" if row.get("detail") else row["status"]
    return f"{row[key]:,.{digits}f}"


def _table(rows: list[dict], sizes: tuple[int, ...], labels: list[str], key: str, digits: int) -> str:
    index = {(r["size"], r["config"]): r for r in rows}
    lines = ["| grid | " + " | ".join(labels) + " |", "| --- |" + " ---: |" * len(labels)]
    for s in sizes:
        lines.append(f"| {s}x{s} | " + " | ".join(_cell(index.get((s, c)), key, digits) for c in labels) + " |")
    return "\n".join(lines)


def _mean(values: list[float]) -> float:
    return sum(values) / max(len(values), 1)


def format_section(rows: list[dict], probes: list[dict], run: dict | None, sizes: tuple[int, ...],
                   budget_gib: float, mem_cap_gib: float, time_cap_s: float, command: str) -> str:
    """The BENCHMARKS.md section: both tables, what fits, the probes and the training run."""
    from stpatch.bench.report import stamp

    labels = [c.label for c in CONFIGS if any(r["config"] == c.label for r in rows)]
    ready = [r["ready_mib"] for r in rows if r["status"] == "ok" and r["size"] == sizes[0]]
    out = ["## Large grids: memory and time of a training step", "", stamp(command), "",
           "One training step (forward, MSE loss, backward, AdamW step) on 10 -> 10 frames, 1 channel, "
           f"**batch 1**, random values, each cell in a fresh process. Peak: the process's peak resident memory "
           f"(`VmHWM`), imports and weights included (about {_mean(ready):,.0f} MiB before the first step at "
           f"{sizes[0]}x{sizes[0]}). Step time: median of the steps after the first. stpnet is the default "
           "(`stpnet_tiny`: patch (2, 4, 4), dims (32, 64)) with window attention ((8, 8, 8) windows on the "
           "downsampled token grid, shifted on every other block); convlstm the default (two layers of 32, "
           "patch 4). Checkpointing: `model.checkpointing: true`; bf16: `torch.autocast('cpu', bfloat16)`, what "
           "`train.precision: bf16-mixed` does. The cells were capped at "
           f"{mem_cap_gib:.0f} GiB of address space and {time_cap_s:.0f} s per step. **Other work shared the "
           "machine's cores while this ran, so the step times are upper bounds and noisy; compare them within a "
           "row.**", "", "### Peak memory (MiB)", "", _table(rows, sizes, labels, "peak_mib", 0), "",
           "### Median step time (s)", "", _table(rows, sizes, labels, "step_s", 2), ""]
    measured = rows + probes
    out += [f"### What fits in {budget_gib:.1f} GiB (this machine's memory)", "",
            "Above 512x512, one training step of each configuration was measured once (same caps, time cap "
            "raised to 1200 s). The line through a configuration's three largest measured sizes extrapolates "
            "to the largest square grid whose step fits in the machine's memory; per pixel the peak grows less "
            "on large grids than on small ones, so the line uses the largest only.", "",
            "| configuration | grid | peak MiB | step s |", "| --- | --- | ---: | ---: |"]
    for p in probes:
        out.append(f"| {p['config']} | {p['size']}x{p['size']} | {_cell(p, 'peak_mib', 0)} | {_cell(p, 'step_s', 1)} |")
    out += ["", f"| configuration | MiB per 1000 pixels (largest sizes) | largest square grid in {budget_gib:.1f} GiB "
            "(extrapolated) |", "| --- | ---: | ---: |"]
    for label in labels:
        fit = largest_square(measured, label, budget_gib * 1024)
        if fit is not None:
            side, _, b = fit
            out.append(f"| {label} | {b * 1000:.2f} | {side:,} x {side:,} |")
    if run is not None:
        losses = run["losses"]
        k = max(1, min(10, len(losses) // 4))
        test = run["test"]
        out += ["", f"### Training 10 -> 10 on {run['size']}x{run['size']}", "",
                f"`stpatch.train` (the path of `stpatch train`) of stpnet on moving digits scaled to "
                f"{run['size']}x{run['size']} (digits of {round(run['size'] * 28 / 64)} px, 64 training sequences), "
                f"batch {run['batch']}, {run['steps']} steps in {run['seconds']:.0f} s: training loss (MSE, "
                f"scaled) {_mean(losses[:k]):.5f} over the first {k} steps, {_mean(losses[-k:]):.5f} over the "
                f"last {k}; validation loss after each epoch "
                + ", ".join(f"{v:.5f}" for v in run["val_losses"])
                + f". Test ({run['windows']} windows), MSE per frame: stpnet {test['stpnet']:.1f}, persistence "
                f"{test['persistence']:.1f} ({test['stpnet'] / test['persistence']:.3f}x)."]
    return "\n".join(out)


def bench_grids(quick: bool = False, write: bool = False, sizes: tuple[int, ...] | None = None,
                configs: tuple[GridConfig, ...] = CONFIGS, steps: int = 6, time_cap_s: float = 600.0,
                mem_cap_gib: float = 12.0, probes: bool = True, train_steps: int = 64) -> str:
    """Measure the table (and the probes and the 256x256 run), print-ready; ``write`` puts it into BENCHMARKS.md.

    ``quick``: sizes 32 and 64, two steps, no probes, a 6-step run on 64x64 (checks the wiring).
    """
    import os

    from stpatch.bench.report import write_section

    if quick:
        sizes, steps, probes, train_size, train_steps = sizes or (32, 64), 2, False, 64, 6
    else:
        sizes, train_size = sizes or SIZES, 256
    rows = []
    for size in sizes:
        for config in configs:
            rows.append(measure(config, size, steps=steps, time_cap_s=time_cap_s, mem_cap_gib=mem_cap_gib))
            # the whole measurement, so that a long run's figures are in its log
            print("grids:", json.dumps(rows[-1]), file=sys.stderr, flush=True)
    by_label = {c.label: c for c in configs}
    probe_rows = []
    for size, label in PROBES if probes else ():
        if label in by_label:
            # one step: its memory is the point, so it may take longer than a table cell
            probe_rows.append(measure(by_label[label], size, steps=1, time_cap_s=max(time_cap_s, 1200.0),
                                      mem_cap_gib=mem_cap_gib))
            print("grids:", json.dumps(probe_rows[-1]), file=sys.stderr, flush=True)
    run = train_large(train_size, train_steps) if train_steps else None
    if run is not None:
        print("grids:", json.dumps(run), file=sys.stderr, flush=True)
    budget_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB  # the machine's memory
    command = "stpatch bench grids" + (" --quick" if quick else "") + (" --write" if write else "")
    text = format_section(rows, probe_rows, run, tuple(sizes), budget_gib, mem_cap_gib, time_cap_s, command)
    if write:
        write_section("grids", text)
    return text


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    print(json.dumps(measure_step(**spec)))
