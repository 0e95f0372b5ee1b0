"""Latency of one forecast through each engine (``stpatch profile RUN``): median over repeats."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from stpatch.deploy.engines import open_engine


def input_shape(meta: dict, batch: int = 1) -> tuple[int, ...]:
    """The model input's shape: ``(B, t_in, C, H, W)`` for grids, ``(B, t_in, N, C)`` for sensors."""
    sizes = [int(s) for s in meta["spatial_shape"]] if meta["kind"] == "grid" else [int(meta["num_nodes"])]
    tail = [meta["in_channels"], *sizes] if meta["kind"] == "grid" else [*sizes, meta["in_channels"]]
    return (batch, int(meta["t_in"]), *tail)


def compare_engines(run: str | Path, batch: int = 1, repeats: int = 20, warmup: int = 2,
                    engines: tuple[str, ...] = ("torch", "onnx")) -> dict[str, dict]:
    """Median and p90 wall time (ms) of ``engine.forecast`` on one batch, scaling included, per engine.

    The input is the same array for every engine (the middle of the training range, or 0); time
    features, when the run was trained with timestamps, are zeros. The ONNX engine needs ``stpatch export RUN`` first.
    """
    results = {}
    for name in engines:
        engine = open_engine(run, name)
        shape = input_shape(engine.meta, batch)
        channels = (engine.profile or {}).get("channels") or []
        level = np.float32(np.mean([(c["min"] + c["max"]) / 2 for c in channels])) if channels else np.float32(0)
        x = np.full(shape, level, np.float32)
        # time features only where the run was trained with timestamps (as prediction passes them)
        timed = bool((engine.profile or {}).get("step_seconds"))
        tod = np.zeros(shape[:2], np.float32) if timed else None
        dow = np.zeros(shape[:2], np.int64) if timed else None
        times = []
        for i in range(warmup + repeats):
            start = time.perf_counter()
            engine.forecast(x, None, tod, dow)
            if i >= warmup:
                times.append(1e3 * (time.perf_counter() - start))
        times.sort()
        results[name] = {"median_ms": statistics.median(times), "p90_ms": times[int(0.9 * (len(times) - 1))],
                         "repeats": repeats, "batch": batch}
    return results
