"""Ground-truth evaluation: events injected into held-out normal clips (:mod:`stpatch.anomaly.inject`),
scored by the run's forecaster beside two baselines on the same frames.

* ``model``: the run's next-frame PSNR (as :func:`stpatch.anomaly.score`);
* ``persistence``: the PSNR of the last frame as the forecast of the next;
* ``frame_difference``: the mean absolute difference to the previous frame.

For one-step forecasts the two baselines see the same difference image; they differ in the norm (squared
error in dB vs absolute error) and so in their rankings, a little. Every method's anomaly score is
min-max normalised per clip (the model's and persistence's: ``1 - regularity``, as in Liu et al. 2018)
and the clips are pooled for one frame-level ROC-AUC per event kind and overall.

Localisation: the frames a method flags are its top ``n`` frames by anomaly score, ``n`` = the number of
event frames (one threshold-free rule for every method); the localisation rate is the fraction of those
flagged frames whose highest-error patch overlaps the event's box (a flagged frame outside any event
counts as not localised).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stpatch.anomaly.frames import open_frames, to_channels
from stpatch.anomaly.inject import EVENTS, Injected, boxes_overlap, inject_event
from stpatch.anomaly.scoring import (
    minmax,
    next_frame_forecaster,
    patch_box,
    patch_errors,
    patch_size,
    peak_value,
    persistence_forecaster,
    score_frames,
)

METHODS = ("model", "persistence", "frame_difference")


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` (higher = more anomalous) for bool ``labels``: the
    Mann-Whitney probability that an event frame outscores a normal one (ties count half)."""
    from scipy.stats import rankdata

    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    pos, neg = int(labels.sum()), int((~labels).sum())
    if not pos or not neg:
        raise ValueError(f"ROC-AUC needs both event and normal frames, got {pos} and {neg}")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates ``(fpr, tpr)`` over every threshold, from (0, 0) to (1, 1)."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    labels = np.asarray(labels, dtype=bool)[order]
    tpr = np.concatenate([[0.0], np.cumsum(labels) / max(labels.sum(), 1)])
    fpr = np.concatenate([[0.0], np.cumsum(~labels) / max((~labels).sum(), 1)])
    return fpr, tpr


def normal_clips(source: Any, count: int, length: int, channels: int = 1, spatial_shape: Sequence[int] | None = None,
                 first_frame: int = 0, seed: int = 0, data_dir: str | None = None) -> list[np.ndarray]:
    """Held-out normal clips ``(length, C, H, W)``: ``"digits"`` / ``"moving_mnist"`` (test sequences of the
    moving-digits generator, at ``spatial_shape``) or a clip (video, folder, array) cut into consecutive
    pieces from ``first_frame`` on (frames before it can be the ones a model trained on)."""
    if isinstance(source, str) and source in ("digits", "moving_mnist"):
        import stpatch

        size = int(spatial_shape[0]) if spatial_shape else 64
        options = {"image_size": size, "test_size": count, "seed": seed}
        if data_dir is not None:
            options["data_dir"] = data_dir
        generator = stpatch.datasets.load(source, **options)
        return [generator.sequence("test", i, length) for i in range(count)]
    frames = open_frames(source)
    whole = np.concatenate(list(frames.chunks(256, channels)))[first_frame:]
    pieces = [whole[i:i + length] for i in range(0, len(whole) - length + 1, length)][:count]
    if not pieces:
        raise ValueError(f"{frames.name}: {len(whole)} frames from frame {first_frame} on; clips of {length} need more")
    return [to_channels(p, channels, False, frames.name) for p in pieces]


def _method_scores(method: str, clip: np.ndarray, t_in: int, patch: tuple[int, int], engine: Any,
                   peak: float) -> tuple[np.ndarray, np.ndarray]:
    """Anomaly scores ``(F,)`` (min-max per clip, higher = more unusual) and patch errors ``(F, nH, nW)``
    for frames ``t_in ..`` of ``clip``."""
    if method == "frame_difference":
        cur, prev = clip[t_in:], clip[t_in - 1:-1]
        return minmax(np.abs(cur - prev).mean(axis=(1, 2, 3))), patch_errors(prev, cur, patch, power=1)
    forecaster = next_frame_forecaster(engine) if method == "model" else persistence_forecaster
    source = open_frames(clip)
    result = score_frames(forecaster, t_in, source, clip.shape[1], patch, peak, progress=False)
    return 1.0 - result.score, result.patch_error


def evaluate_injected(checkpoint: Any = None, source: Any = "digits", events: Sequence[str] = EVENTS,
                      clips: int = 8, clip_length: int = 40, event_length: int = 8, event_size: int | None = None,
                      patch: int | tuple[int, int] | None = None, first_frame: int = 0, seed: int = 0,
                      data_dir: str | None = None, t_in: int = 4, progress: bool = False) -> dict:
    """Frame-level ROC-AUC and localisation rate of the run (when ``checkpoint`` is given) and the two
    baselines on ``clips`` held-out normal clips of ``source`` with each kind of ``events`` injected in
    turn (``clips x len(events)`` clips in all; the event starts at a random frame after the model's input window).

    ``source``: ``"digits"``, ``"moving_mnist"`` or a clip (the real video: a path); see :func:`normal_clips`.
    ``t_in``: the baselines' first scored frame when there is no run (a run's own ``t_in`` wins).

    Returns ``{"methods", "events", "auc": {method: {event | "all": value}}, "localisation": {...},
    "roc": {method: (fpr, tpr)}, "frames", "event_frames"}``.
    """
    engine = None
    channels, shape = 1, None
    if checkpoint is not None:
        from stpatch.anomaly.scoring import guard_check
        from stpatch.deploy.engines import open_engine

        engine = checkpoint if hasattr(checkpoint, "forecast") else open_engine(checkpoint, "torch")
        t_in, channels, shape = engine.meta["t_in"], engine.meta["in_channels"], engine.meta["spatial_shape"]
    methods = [m for m in METHODS if m != "model" or engine is not None]
    base = normal_clips(source, clips, clip_length, channels, shape, first_frame, seed, data_dir)
    if engine is not None:
        check = guard_check(engine, "the evaluation clips")
        for c in base:
            check(c)
    if clip_length < t_in + event_length + 2:
        raise ValueError(f"clip_length={clip_length} is too short for t_in={t_in} and event_length={event_length}")
    size = patch_size(patch, engine)  # without a run: the given size, else 8
    peak = peak_value(engine.profile) if engine is not None else 1.0
    rng = np.random.default_rng(seed)
    pooled: dict[str, dict[str, list]] = {m: {"score": [], "labels": [], "kind": [], "hit": []} for m in methods}
    iterator = [(c, e) for e in events for c in base]
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="injected events", unit="clip")
    for clip, kind in iterator:
        start = int(rng.integers(t_in + 1, clip_length - event_length + 1))
        event = inject_event(clip, kind, start, event_length, rng, event_size)
        for m in methods:
            scores, maps = _method_scores(m, event.clip, t_in, size, engine, peak)
            pooled[m]["score"].append(scores)
            pooled[m]["labels"].append(event.labels[t_in:])
            pooled[m]["kind"].append(np.full(len(scores), kind, dtype=object))
            pooled[m]["hit"].append(_localised(event, maps, t_in, size))
    return _summarise(pooled, methods, list(events))


def _localised(event: Injected, maps: np.ndarray, t_in: int, patch: tuple[int, int]) -> np.ndarray:
    """``(F,)`` bool: the frame's highest-error patch overlaps the event's box (False outside the event)."""
    h, w = event.clip.shape[2:]
    out = np.zeros(len(maps), dtype=bool)
    for k, error in enumerate(maps):
        box = event.boxes[t_in + k]
        if box[0] >= 0:
            out[k] = boxes_overlap(np.array(patch_box(int(error.argmax()), (h, w), patch, error.shape[1])), box)
    return out


def _summarise(pooled: dict, methods: list[str], events: list[str]) -> dict:
    auc: dict[str, dict[str, float]] = {}
    loc: dict[str, dict[str, float]] = {}
    roc = {}
    for m in methods:
        score, labels = np.concatenate(pooled[m]["score"]), np.concatenate(pooled[m]["labels"])
        kind, hit = np.concatenate(pooled[m]["kind"]), np.concatenate(pooled[m]["hit"])
        auc[m], loc[m] = {}, {}
        for e in [*events, "all"]:
            rows = np.ones(len(score), dtype=bool) if e == "all" else kind == e
            auc[m][e] = roc_auc(score[rows], labels[rows])
            n = int(labels[rows].sum())
            flagged = np.argsort(-score[rows], kind="stable")[:n]
            loc[m][e] = float(hit[rows][flagged].mean())
        roc[m] = roc_curve(score, labels)
    frames = len(np.concatenate(pooled[methods[0]]["labels"]))
    events_total = int(np.concatenate(pooled[methods[0]]["labels"]).sum())
    return {"methods": methods, "events": events, "auc": auc, "localisation": loc, "roc": roc,
            "frames": frames, "event_frames": events_total}


def results_table(results: dict) -> str:
    """A Markdown table: one row per method, ROC-AUC and localisation rate per event kind and overall."""
    cols = [*results["events"], "all"]
    head = "| method | " + " | ".join(f"AUC {c}" for c in cols) + " | localisation (all) |"
    lines = [head, "|" + " --- |" * (len(cols) + 2)]
    for m in results["methods"]:
        cells = " | ".join(f"{results['auc'][m][c]:.3f}" for c in cols)
        lines.append(f"| {m} | {cells} | {results['localisation'][m]['all']:.3f} |")
    return "\n".join(lines) + f"\n\n{results['frames']} scored frames, {results['event_frames']} inside events.\n"


def save_roc_plot(results: dict, path: str | Path) -> Path:
    """ROC curves of every method (pooled over events) in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stpatch.analysis.figures import save_figure

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for m in results["methods"]:
        fpr, tpr = results["roc"][m]
        ax.plot(fpr, tpr, label=f"{m} (AUC {results['auc'][m]['all']:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path, dpi=100)


def write_evaluation(results: dict, folder: str | Path) -> dict[str, Path]:
    """``evaluation.json`` (without the curves), ``evaluation.md`` and ``roc.png`` in ``folder``."""
    from stpatch.atomic import write_json, write_text

    folder = Path(folder)
    plain = {k: v for k, v in results.items() if k != "roc"}
    return {"json": write_json(folder / "evaluation.json", plain),
            "table": write_text(folder / "evaluation.md", results_table(results)),
            "roc": save_roc_plot(results, folder / "roc.png")}
