"""Train chosen models under a suite's protocol (its data, test windows, baselines and budget) and print the
table; with ``--section NAME`` also write it into BENCHMARKS.md between ``<!-- bench:NAME -->`` markers.

    python benchmarks/suite_models.py moving_mnist 00:20:00 \\
        '[{"name": "stpnet", "conv_depths": 2, "attn_depth": 1, "layer_scale": 0.01}, {"name": "stpconv"}]' \\
        --section accuracy-moving_mnist-hybrid

For comparing a candidate design against a suite's model without training every model of the suite
(`stpatch bench SUITE` trains them all). ``suite`` in place of the JSON list trains the suite's own models;
``--seed N`` seeds every model's training (the test windows do not change), so seeds of one suite can run
in parallel processes; ``--json FILE`` writes each model's mean metrics and headline metric per lead:

    python benchmarks/suite_models.py los_loop 00:20:00 suite --seed 2 --json bench_out/los_loop_seed2.json

The models train one after the other in this process, as in `stpatch bench`; each gets a run directory of
its own (``bench_out/models-DATE-seedN-PID/SUITE/NAME``), so each model name may appear once.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
from pathlib import Path

from stpatch.bench import SUITES, run_suite
from stpatch.bench.report import stamp, write_section


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", choices=sorted(SUITES))
    parser.add_argument("budget", help="training budget per model, HH:MM:SS")
    parser.add_argument("models", help="a JSON list of model sections, as in the suites (a 'train' key allowed), "
                                       "or 'suite' for the suite's own models")
    parser.add_argument("--section", help="write the table into BENCHMARKS.md under this section name")
    parser.add_argument("--seed", type=int, default=0, help="training seed of every model (default 0, as stpatch bench)")
    parser.add_argument("--json", help="also write the rows (mean metrics, headline per lead, steps) to this file")
    args = parser.parse_args(argv)
    models = list(SUITES[args.suite].models) if args.models == "suite" else json.loads(args.models)
    if not isinstance(models, list) or not all(isinstance(m, dict) and "name" in m for m in models):
        raise SystemExit(f"models must be a JSON list of objects with a 'name', got {args.models!r}")
    names = [m["name"] for m in models]
    if len(set(names)) != len(names):
        raise SystemExit(f"each model name may appear once (run directories are named after them), got {names}")
    suite = dataclasses.replace(SUITES[args.suite], models=models)
    # the seed and process in the name: seeds started in the same second must not share run directories
    out = Path("bench_out") / f"models-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-seed{args.seed}-{os.getpid()}"
    results = run_suite(suite, args.budget, False, out, seed=args.seed)
    tables = [table for _, table, _ in results]
    if args.json:
        key = suite.headline[0]
        rows = {label or "test": [{"name": r.name, "seed": args.seed, "steps": r.trained_steps, "scored_step": r.scored_step,
                                   "mean": r.mean, "lead": {str(k): r.per_horizon.get(key, [None] * k)[k - 1]
                                                            for k in suite.leads}} for r in model_rows]
                for label, _, model_rows in results}
        Path(args.json).write_text(json.dumps({"suite": args.suite, "budget": args.budget, "metric": key, "rows": rows},
                                              indent=1, default=float))
    command = (f"python benchmarks/suite_models.py {args.suite} {args.budget} '{args.models}'"
               + (f" --seed {args.seed}" if args.seed else ""))
    section = f"{stamp(command)}\n" + "\n".join(tables)
    if args.section:
        write_section(args.section, section)
    print(section)
    return section


if __name__ == "__main__":
    main()
