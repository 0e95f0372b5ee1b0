"""Train one model of a benchmark suite under a short budget and score it on the *validation* split
beside the fitted linear AR, as used to choose the suites' settings (BENCHMARKS.md, "How the settings
were chosen"). The test windows are never scored here.

    python benchmarks/validation_run.py los_loop tp6g8 00:07:00 \\
        '{"name": "stpnet_sensor", "base": "linear", "feed_base": true, "use_dow": false, "time_patch": 6, "group_size": 8}'

Arguments: SUITE TAG BUDGET MODEL_JSON [TRAIN_JSON]; prints one JSON line with the validation means and
the headline metric per lead, and appends it to bench_out/validation/results.jsonl.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from stpatch.bench.suites import SUITES
from stpatch.engine.evaluation import evaluate
from stpatch.engine.training import train


def main(argv: list[str]) -> dict:
    suite, tag, budget = SUITES[argv[0]], argv[1], argv[2]
    model = json.loads(argv[3])
    extra = json.loads(argv[4]) if len(argv) > 4 else {}
    out = Path("bench_out") / "validation"
    config = {"data": suite.data, "model": model,
              "train": {"max_epochs": 100000, "max_time": budget, "seed": 0, "progress": False, "lr": suite.lr,
                        "loss": suite.loss, **extra},
              "eval": {"baselines": [], "suite": suite.metric_suite}, "run_dir": str(out / suite.name / tag)}
    trained = train(config)
    baselines = ["linear"] if model["name"] != "linear" else []
    res = evaluate(trained.run_dir, split="val", baselines=baselines, write=False, figures=False, report=False)
    key = suite.headline[0]
    row = {"tag": tag, "model": model, "train": extra, "mean": res["mean"],
           "lead": {k: [round(x, 4) for x in v[key]] for k, v in res["per_horizon"].items()}}
    with open(out / "results.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    return row


if __name__ == "__main__":
    torch.set_num_threads(1)  # as the benchmark ran: one thread per run, two runs at a time
    print(json.dumps(main(sys.argv[1:])), flush=True)
