"""Issue 12's measurement: injected events on held-out moving digits and on the real clip, the run beside
the frame-difference and persistence baselines (frame-level ROC-AUC, localisation rate).

1. moving digits: trains ``stpnet`` on the built-in digits for ``--minutes`` (or takes ``--digits-run``),
   then scores ``--clips`` held-out test sequences with each event kind injected in turn;
2. the real clip (``$STPATCH_DATA_DIR/video/carphone_pristine.mp4``, 120 frames, in grey): trains
   ``stpnet_tiny`` on its first ``--train-frames`` frames (or takes ``--video-run``) and evaluates on the
   frames after them (two clips of 24 frames by default): few frames, so read its numbers as indicative;
3. ``stpatch anomaly`` on the held-out frames of the real clip with a "fast" event injected, as a user would
   (scores.csv, scores.png, flagged.gif).

    STPATCH_DATA_DIR=../shared/data python scripts/anomaly_eval.py --out anomaly_eval [--minutes 10]

Writes ``OUT/{digits,video}/evaluation.{json,md}`` + ``roc.png``, ``OUT/clip/`` and prints the tables.
Runtime on a 2-core CPU: about the two training budgets (``--minutes`` + ``--video-minutes``, default
10 + 5) plus 2-4 minutes of scoring; ``--quick`` (a few seconds of training, few clips) checks the wiring
in about a minute.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np


def _train(config: dict, data=None) -> str:
    import stpatch

    stpatch.train(config, data=data)
    return config["run_dir"]


def main() -> None:
    from stpatch.anomaly import evaluate_injected, inject_event, score, write_evaluation, write_outputs
    from stpatch.anomaly.evaluation import results_table
    from stpatch.datasets import from_numpy, from_video

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("anomaly_eval"))
    parser.add_argument("--digits-run", help="A trained digits run to use instead of training one.")
    parser.add_argument("--video-run", help="A run trained on the clip's first frames (grey, 144 x 176).")
    parser.add_argument("--minutes", type=float, default=10.0, help="Training budget on digits.")
    parser.add_argument("--video-minutes", type=float, default=5.0, help="Training budget on the real clip.")
    parser.add_argument("--clips", type=int, default=32, help="Held-out digit sequences (x 4 event kinds).")
    parser.add_argument("--train-frames", type=int, default=72, help="Frames of the real clip to train on.")
    parser.add_argument("--quick", action="store_true", help="Seconds of training and few clips: a wiring check.")
    args = parser.parse_args()
    budget = (lambda m: "00:00:10") if args.quick else (lambda m: f"00:{int(m):02d}:{int(m % 1 * 60):02d}")
    clips = 2 if args.quick else args.clips

    # 1. moving digits
    digits_run = args.digits_run or _train({
        "data": {"name": "digits", "t_in": 10, "t_out": 10, "batch_size": 16},
        "model": {"name": "stpnet"}, "train": {"max_time": budget(args.minutes), "seed": 0, "progress": False},
        "eval": {"baselines": ["persistence"]}, "run_dir": str(args.out / "runs" / "digits")})
    results = evaluate_injected(digits_run, "digits", clips=clips, clip_length=40, event_length=8, progress=True)
    write_evaluation(results, args.out / "digits")
    print("moving digits\n" + results_table(results))

    # 2. the real clip: train on its first frames, evaluate on the rest
    clip_path = Path(os.environ.get("STPATCH_DATA_DIR", "../shared/data")) / "video" / "carphone_pristine.mp4"
    frames = from_video(clip_path, grayscale=True).segments[0]
    train_frames = from_numpy(frames[: args.train_frames], layout="TCHW", name="carphone",
                              attrs={"field": "video", "units": "intensity in [0, 1]", "valid_range": (0.0, 1.0)})
    video_run = args.video_run or _train({
        "data": {"name": "carphone", "t_in": 4, "t_out": 2, "batch_size": 8},
        "model": {"name": "stpnet_tiny"},
        "train": {"max_time": budget(args.video_minutes), "seed": 0, "progress": False},
        "eval": {"baselines": ["persistence"]}, "run_dir": str(args.out / "runs" / "video")}, data=train_frames)
    held_out = len(frames) - args.train_frames
    results = evaluate_injected(video_run, clip_path, clips=2, clip_length=min(24, held_out // 2), event_length=6,
                                first_frame=args.train_frames, progress=True)
    write_evaluation(results, args.out / "video")
    print("real clip (carphone)\n" + results_table(results))

    # 3. the command's outputs on the held-out frames with one event a person can see
    event = inject_event(frames[args.train_frames:], "fast", 20, 8, np.random.default_rng(0))
    np.save(args.out / "carphone_event.npy", event.clip)
    result = score(video_run, args.out / "carphone_event.npy", normal=frames[args.train_frames - 20: args.train_frames])
    paths = write_outputs(result, args.out / "clip")
    event_frames = np.flatnonzero(event.labels) + args.train_frames  # not used by scoring: for the reader
    print(f"clip: flagged frames {result.frames[result.flagged].tolist()} (event at held-out frames "
          f"{(event_frames - args.train_frames).tolist()}, scored indices start at {result.frames[0]}); {paths}")


if __name__ == "__main__":
    main()
