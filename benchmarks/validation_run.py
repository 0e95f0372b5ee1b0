"""Train one model of a benchmark suite under a short budget and score it on the *validation* split
beside a baseline (see below), as used to choose the suites' settings (BENCHMARKS.md, "How the settings
were chosen"). The test windows are never scored here.

    python benchmarks/validation_run.py los_loop tp6g8 00:07:00 \\
        '{"name": "stpnet_sensor", "base": "linear", "feed_base": true, "use_dow": false, "time_patch": 6, "group_size": 8}'

    python benchmarks/validation_run.py moving_mnist lr3e3 00:03:00 '{"name": "stpnet"}' \\
        '{"lr": 0.003, "data": {"options": {"test_size": 1000, "val_size": 200}}}'

Arguments: SUITE TAG BUDGET MODEL_JSON [TRAIN_JSON]; a ``data`` key of TRAIN_JSON replaces keys of the suite's
data section. The baseline beside the model is persistence for video suites, extrapolation for radar and the fitted
linear AR otherwise. Prints one JSON line with the validation means, the steps trained and the headline metric per
lead, and appends it to bench_out/validation/results.jsonl.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import torch

from stpatch.bench.suites import SUITES
from stpatch.engine.evaluation import evaluate
from stpatch.engine.training import train

OUT = Path("bench_out") / "validation"


def suite_config(suite_name: str, tag: str, budget: str, model_json: str, train_json: str | None = None,
                 seed: int = 0) -> tuple[dict, dict]:
    """The run config of one suite model under ``budget`` and the train options that differ from the suite's.

    The suite's data, loss and train options, then the model's own ``train`` key, then TRAIN_JSON (whose
    ``data`` key replaces keys of the data section).
    """
    suite = SUITES[suite_name]
    model = json.loads(model_json)
    # a suite model's own train options (a "train" key, as in SUITES) come first; TRAIN_JSON wins over them
    extra = {**model.pop("train", {}), **(json.loads(train_json) if train_json else {})}
    data = {**suite.data, **extra.pop("data", {})}
    config = {"data": data, "model": model,
              "train": {"max_epochs": 100000, "max_time": budget, "seed": seed, "progress": False, "lr": suite.lr,
                        "loss": suite.loss, **suite.train, **extra},
              "eval": {"baselines": [], "suite": suite.metric_suite}, "run_dir": str(OUT / suite.name / tag)}
    return config, extra


def main(argv: list[str]) -> dict:
    suite, tag = SUITES[argv[0]], argv[1]
    config, extra = suite_config(argv[0], tag, argv[2], argv[3], argv[4] if len(argv) > 4 else None)
    model, data = config["model"], config["data"]
    trained = train(config)
    if suite.metric_suite == "video":  # persistence is the video baseline; no per-pixel AR is fitted
        baselines = ["persistence"] if model["name"] != "persistence" else []
    elif suite.metric_suite == "radar":  # radar's baseline to beat is extrapolation
        baselines = ["extrapolation"] if model["name"] != "extrapolation" else []
    else:
        baselines = ["linear"] if model["name"] != "linear" else []
    res = evaluate(trained.run_dir, split="val", baselines=baselines, write=False, figures=False, report=False)
    key = suite.headline[0]
    with open(Path(trained.run_dir) / "metrics.csv") as f:
        steps = max((int(r["step"]) for r in csv.DictReader(f) if r.get("step")), default=0)
    row = {"tag": tag, "model": model, "train": extra, "data": data, "steps": steps, "mean": res["mean"],
           "lead": {k: [round(x, 4) for x in v[key]] for k, v in res["per_horizon"].items()}}
    with open(OUT / "results.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    return row


if __name__ == "__main__":
    torch.set_num_threads(1)  # as the benchmark ran: one thread per run, two runs at a time
    print(json.dumps(main(sys.argv[1:])), flush=True)
