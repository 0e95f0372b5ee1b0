"""Which patch sizes win: ``stpatch tune`` on shipped configs, one after the other, summarised in BENCHMARKS.md.

    python benchmarks/bench_tune.py [--budget 00:15:00] [--configs moving_mnist_stpnet.yaml ...] [--write]
    python benchmarks/bench_tune.py --summarise runs/tune-A runs/tune-B --write   # from finished tunes

Each tune runs as its own ``stpatch tune`` process (so its start-up counts against its budget) into
``runs/tune-bench-DATA``. The section gives, per tune, the best and the default trial's validation loss,
the best validation loss reached with each patch size, and the plot (copied to benchmarks/figures/).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
CONFIGS = ["moving_mnist_stpnet.yaml", "era5_uk_t2m_stpnet.yaml"]


def run_tune(config: str, budget: str, extra: list[str]) -> tuple[Path, float]:
    """One ``stpatch tune`` process; returns its folder and its wall seconds."""
    name = Path(config).stem.replace("_stpnet", "")
    out = Path("runs") / f"tune-bench-{name}"
    if out.exists():
        shutil.rmtree(out)
    command = [sys.executable, "-m", "stpatch.cli", "tune", "--config", config, "--budget", budget, "--out", str(out), *extra]
    print(" ".join(command[2:]), flush=True)
    start = time.time()
    subprocess.run(command, check=True)
    return out, time.time() - start


def _patch(text: str) -> str:
    value = yaml.safe_load(text) if text else None
    return "x".join(map(str, value)) if isinstance(value, list) else str(value)


def summarise(out: Path, seconds: float | None) -> str:
    """The Markdown of one tune: best against default, the best loss per patch size, the plot."""
    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    stored = yaml.safe_load((out / "tune.yaml").read_text())
    config = yaml.safe_load((out / "config.yaml").read_text())
    complete = [r for r in rows if r["state"] == "complete"]
    best = min(complete, key=lambda r: float(r["val_loss"]))
    default = next(r for r in complete if r["default"] == "True")
    gain = 1 - float(best["val_loss"]) / float(default["val_loss"])
    states = {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "fail")}
    name = config["data"]["name"]
    figure = HERE / "figures" / f"tune_{name}.png"
    shutil.copyfile(out / "val_loss_vs_patch.png", figure)
    keys = [k for k in rows[0] if "." in k]
    settings = ", ".join(f"{k.split('.')[1]}={best[k]}" for k in keys)
    lines = [
        f"### {name} / {config['model']['name']}",
        "",
        f"{len(rows)} trials ({states['complete']} complete, {states['pruned']} pruned, {states['fail']} failed) of "
        f"{stored['trial_seconds']} s training each" + (f"; the whole tune took {seconds:.0f} s" if seconds else "")
        + f". Score: the training loss ({config['train'].get('loss', 'mse')} on scaled values, leads weighted as in "
        f"training) of each trial's final weights on the whole validation split.",
        "",
        f"**Best: trial #{best['number']}** ({settings}) "
        f"val loss {float(best['val_loss']):.5g} against the default config's {float(default['val_loss']):.5g} "
        f"(trial #{default['number']}, {int(default['steps'] or 0)} steps): "
        + (f"**{100 * gain:.1f} % lower**." if gain > 0 else "the default config was the best."),
        "",
        "| patch (pt x ph x pw) | trials (complete / pruned) | best val loss | vs default | steps of that trial |",
        "| --- | --- | --- | --- | --- |",
    ]
    by_patch: dict[str, list[dict]] = {}
    for row in rows:
        if row["state"] in ("complete", "pruned"):
            by_patch.setdefault(_patch(row.get("model.patch", "")), []).append(row)
    ranked = []
    for patch, group in by_patch.items():
        done = [r for r in group if r["state"] == "complete"]
        top = min(done, key=lambda r: float(r["val_loss"])) if done else None
        ranked.append((float(top["val_loss"]) if top else float("inf"), patch, group, top))
    for value, patch, group, top in sorted(ranked, key=lambda item: item[0]):
        pruned = sum(r["state"] == "pruned" for r in group)
        cells = (f"{value:.5g}", f"{100 * (value / float(default['val_loss']) - 1):+.1f} %", top["steps"]) if top else ("-", "-", "-")
        lines.append(f"| {patch} | {len(group) - pruned} / {pruned} | {' | '.join(cells)} |")
    lines += ["", f"![validation loss against patch size, {name}](benchmarks/figures/{figure.name})", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="00:15:00", help="budget of each tune (HH:MM:SS)")
    parser.add_argument("--configs", nargs="*", default=CONFIGS)
    parser.add_argument("--summarise", nargs="*", type=Path, help="summarise these finished tunes instead of running")
    parser.add_argument("--write", action="store_true", help="write the section into BENCHMARKS.md")
    args, extra = parser.parse_known_args(argv)
    if args.summarise:
        done = [(out, None) for out in args.summarise]
        command = "python benchmarks/bench_tune.py --summarise " + " ".join(map(str, args.summarise))
    else:
        done = [run_tune(config, args.budget, extra) for config in args.configs]
        command = f"python benchmarks/bench_tune.py --budget {args.budget} --configs {' '.join(args.configs)}"
    from stpatch.bench.report import stamp, write_section

    body = "\n".join(["## Choosing the patch size (`stpatch tune`)", "", stamp(command)]
                     + [summarise(out, seconds) for out, seconds in done])
    print(body)
    if args.write:
        write_section("tune", body)


if __name__ == "__main__":
    main()
