"""Score a trained ``val_gain`` run twice on its test split: with the per-lead gains fitted on validation,
and with every gain set to 1 (the correction as trained), so a benchmark can say what the gains did.

    python benchmarks/gain_ablation.py bench_out/<date>/era5_uk_t2m/stpnet
    python benchmarks/gain_ablation.py bench_out/<date>/radar_mix/stpnet '{"test_events": ["fmi:20170509"]}'

The second argument (JSON) reloads the run's data set with these options (e.g. one held-out event of
``radar_mix``). Prints one JSON line: the gains, and the test means and per-lead values of the headline
metric for both. The run directory is not changed (the gain-1 copy lives in a temporary folder).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from stpatch.engine.checkpoint import read_checkpoint
from stpatch.engine.evaluation import evaluate


def main(argv: list[str]) -> dict:
    run = Path(argv[0])
    options = json.loads(argv[1]) if len(argv) > 1 else None
    best = read_checkpoint(run / "checkpoints" / "best.ckpt")
    gains = best["state_dict"].get("model.correction_gain")
    if gains is None:
        raise SystemExit(f"{run} was not trained with model.val_gain: there are no gains to compare")
    data = None
    if options is not None:
        import stpatch.datasets as D

        config = best["stpatch"]["config"]["data"]
        loader_options = {k: v for k, v in config.get("options", {}).items() if k != "augment"}  # training only
        data = D.load(config["name"], **{**loader_options, **options})
    out = {"run": str(run), "options": options, "gain": [round(float(g), 2) for g in gains]}
    with tempfile.TemporaryDirectory() as tmp:
        ones = Path(tmp) / run.name
        shutil.copytree(run, ones, ignore=shutil.ignore_patterns("figures", "*.gif", "*.png", "report*"))
        best["state_dict"]["model.correction_gain"] = torch.ones_like(gains)
        torch.save(best, ones / "checkpoints" / "best.ckpt")
        for label, where in (("fitted gains", run), ("gain 1", ones)):
            res = evaluate(where, baselines=[], write=False, figures=False, report=False, data=data)
            name = next(iter(res["mean"]))
            out[label] = {"mean": res["mean"][name],
                          "per_lead": {k: [round(v, 4) for v in vals] for k, vals in res["per_horizon"][name].items()}}
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(json.dumps(main(sys.argv[1:])), flush=True)
