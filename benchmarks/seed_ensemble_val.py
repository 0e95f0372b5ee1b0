"""Train one suite model with several seeds and score each run, and the mean of their forecasts, on the
*validation* split: how much of a model's error is seed noise, and what averaging independent runs buys
(BENCHMARKS.md, "Eleventh session"). The test windows are never scored here.

    python benchmarks/seed_ensemble_val.py chickenpox stid 00:01:00 0,1,2,3,4 '{"name": "stid"}'

Arguments: SUITE TAG BUDGET SEEDS MODEL_JSON [TRAIN_JSON], as for ``validation_run.py`` (whose config this
uses) with a comma-separated list of seeds. Prints one JSON line per seed: that run's masked validation MAE
(``single``) and that of the mean forecast of the runs so far (``ensemble``), in physical units.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch
from validation_run import suite_config

from stpatch.engine.runs import load_run
from stpatch.engine.training import train
from stpatch.engine.wiring import make_data
from stpatch.metrics.sensor import masked_mae


def validation_forecasts(run_dir: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The run's forecasts, the targets and the target mask (1: observed) of the validation windows,
    physical units, each ``(W, T_out, ...)``."""
    run = load_run(run_dir)
    dm = make_data(run.config)
    dm.load_state_dict({"scaler": run.scaler.state_dict()})  # the scaler the run trained with
    dm.setup("test")
    preds, targets, masks = [], [], []
    with torch.no_grad():
        for batch in dm.val_dataloader():
            preds.append(run.scaler.inverse_transform(run.module(batch)))
            targets.append(run.scaler.inverse_transform(batch["y"]))
            masks.append(batch.get("y_mask", torch.ones_like(batch["y"])).float())
    return torch.cat(preds).numpy(), torch.cat(targets).numpy(), torch.cat(masks).numpy()


def mean_masked_mae(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """The suites' headline: ``stpatch.metrics`` masked MAE per lead, averaged over the leads."""
    return float(masked_mae(pred, target, mask=mask.astype(bool)).mean())


def main(argv: list[str]) -> list[dict]:
    suite, tag, budget, seeds, model_json = argv[:5]
    rows, preds = [], []
    for seed in (int(s) for s in seeds.split(",")):
        config, _ = suite_config(suite, f"{tag}/seed{seed}", budget, model_json, argv[5] if len(argv) > 5 else None,
                                 seed=seed)
        pred, target, mask = validation_forecasts(train(config).run_dir)
        preds.append(pred)
        row = {"tag": tag, "seed": seed, "single": mean_masked_mae(pred, target, mask),
               "ensemble": mean_masked_mae(np.mean(preds, 0), target, mask), "runs": len(preds)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


if __name__ == "__main__":
    torch.set_num_threads(1)  # one thread per run, as the benchmarks run
    main(sys.argv[1:])
