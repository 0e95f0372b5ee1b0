"""The alarm threshold: a low quantile of the next-frame PSNR on normal footage, stored with the run.

The per-clip min-max normalised regularity score is not comparable across clips (every clip has a frame at
0 and one at 1), so the threshold is calibrated and applied on the un-normalised PSNR (dB): a frame is
flagged when its PSNR is below the ``quantile`` of the PSNRs of normal frames (the run's validation
split, or a normal clip the user gives), i.e. about ``quantile`` of normal frames raise an alarm.

It is computed once and written atomically to ``RUN/anomaly_threshold.json``; later calls with the same
checkpoint, quantile and normal footage read it back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from stpatch.atomic import write_json

FILE_NAME = "anomaly_threshold.json"


def threshold_path(engine: Any) -> Path | None:
    """``RUN/anomaly_threshold.json`` for an engine loaded from a run (``None`` when it has no run folder)."""
    run = getattr(engine, "run", None)
    if run is None:
        return None
    ckpt = Path(run.checkpoint)
    folder = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    return folder / FILE_NAME


def calibrated_threshold(engine: Any, quantile: float = 0.01, normal: Any = None, progress: bool = False,
                         refresh: bool = False) -> float:
    """The PSNR threshold (dB) of a run: read from ``RUN/anomaly_threshold.json`` when it matches
    (checkpoint, ``quantile``, normal footage), else computed and stored."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile should be in (0, 1), got {quantile}")
    path = threshold_path(engine)
    ckpt = Path(engine.run.checkpoint) if path is not None else None
    key = {"checkpoint": ckpt.name if ckpt else None,
           "checkpoint_mtime": ckpt.stat().st_mtime if ckpt else None,
           "quantile": float(quantile),
           "normal": "validation split" if normal is None else _describe(normal)}
    if path is not None and path.is_file() and not refresh:
        stored = json.loads(path.read_text())
        if all(stored.get(k) == v for k, v in key.items()):
            return float(stored["psnr_threshold"])
    values = normal_psnr(engine, normal, progress)
    value = float(np.quantile(values, quantile))
    if path is not None:
        write_json(path, {**key, "psnr_threshold": value, "frames": int(len(values)),
                          "psnr_median": float(np.median(values)),
                          "note": "flag a frame when its next-frame PSNR (dB, not normalised) is below psnr_threshold"})
    return value


def normal_psnr(engine: Any, normal: Any = None, progress: bool = False) -> np.ndarray:
    """Next-frame PSNRs ``(F,)`` of normal frames: of ``normal`` (a clip) or of the run's validation windows."""
    from stpatch.anomaly.frames import open_frames
    from stpatch.anomaly.scoring import guard_check, next_frame_forecaster, peak_value, psnr, score_frames

    meta = engine.meta
    if normal is not None:
        source = open_frames(normal)
        return score_frames(next_frame_forecaster(engine), meta["t_in"], source, meta["in_channels"], (8, 8),
                            peak_value(engine.profile), progress=progress,
                            check=guard_check(engine, source.name)).psnr
    run = getattr(engine, "run", None)
    if run is None:
        raise ValueError("this engine has no run to calibrate on; pass normal= a clip of normal footage")
    from stpatch.engine.wiring import make_data

    hint = "pass normal= (stpatch anomaly --normal CLIP) a clip of normal footage to calibrate on"
    if meta.get("dataset") != run.config.data.name:  # trained on a user's own data: the config's name is not it
        raise ValueError(f"the run was trained on data given to train(), not on a named data set whose validation "
                         f"split could be rebuilt; {hint}")
    try:
        dm = make_data(run.config)
    except Exception as err:  # noqa: BLE001 - a run trained on a user's own data has no named data set
        raise ValueError(f"cannot rebuild the run's validation split ({type(err).__name__}: {err}); {hint}") from err
    dm.load_state_dict({"scaler": run.scaler.state_dict()})
    dm.setup("validate")
    forecast = next_frame_forecaster(engine)
    peak = peak_value(engine.profile)
    out = []
    for batch in dm.val_dataloader():
        x = run.scaler.inverse_transform(batch["x"]).numpy()
        y = run.scaler.inverse_transform(batch["y"]).numpy()[:, 0]
        mse = ((forecast(x).astype(np.float64) - y) ** 2).mean(axis=(1, 2, 3))
        out.append(psnr(mse, peak))
    if not out:
        raise ValueError(f"the run's validation split holds no windows; {hint}")
    return np.concatenate(out)


def _describe(normal: Any) -> str:
    if isinstance(normal, (str, Path)):
        p = Path(normal)
        return f"{p.resolve()}@{p.stat().st_mtime if p.exists() else 'missing'}"
    arr = np.asarray(getattr(normal, "segments", [normal])[0])
    return f"array{tuple(arr.shape)}:{float(np.asarray(arr, dtype=np.float64).sum()):.6g}"
