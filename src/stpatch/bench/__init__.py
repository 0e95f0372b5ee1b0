"""Accuracy under the same compute budget: every model of a suite trains for the same wall-clock
time on this machine and is scored on the same held-out windows as the baselines.

    stpatch bench moving_mnist --budget 00:20:00 --write
    stpatch bench all --quick            # seconds-long smoke run on tiny subsets

Results are markdown tables (model, params, GFLOPs/sample, budget, metrics, ratio to persistence,
per-lead-time values); ``write=True`` puts them into BENCHMARKS.md with the command, machine and date.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from pathlib import Path

from stpatch.bench.report import stamp, write_section
from stpatch.bench.suites import SUITES, Suite, suite_names

__all__ = ["SUITES", "Suite", "budget_tag", "run_benchmarks", "run_suite", "suite_names"]


@dataclass
class ModelRow:
    name: str
    params: int
    gflops: float
    budget: str
    trained_steps: int | None
    mean: dict
    per_horizon: dict = field(default_factory=dict)
    #: the step of the checkpoint that was scored (the best on validation), when it is not the last
    scored_step: int | None = None

    def steps_text(self) -> str:
        """``"1007"``, or ``"1007 (scored: 5)"`` when the best validation checkpoint came earlier."""
        if self.trained_steps is None:
            return "-"
        if self.scored_step is not None and self.scored_step != self.trained_steps:
            return f"{self.trained_steps} (scored: {self.scored_step})"
        return str(self.trained_steps)


def _profile(run) -> tuple[int, float]:
    """Parameters and GFLOPs per sample of a loaded run's forecaster on its own input shape."""
    from stpatch.models import profile_model

    model, meta = run.module.model, run.meta
    params = sum(p.numel() for p in model.parameters())
    shape = ((1, meta["t_in"], meta["in_channels"], *meta["spatial_shape"]) if meta["kind"] == "grid"
             else (1, meta["t_in"], meta["num_nodes"], meta["in_channels"]))
    try:
        gflops = float(profile_model(model, shape).get("gflops_per_sample", float("nan")))
    except Exception:  # models that leave torch (pysteps) have no FLOP count
        gflops = float("nan")
    return params, gflops


def _steps(run_dir: Path, checkpoint: str = "last") -> int | None:
    """The optimiser steps behind ``checkpoints/{checkpoint}.ckpt`` of a run (None without it)."""
    import torch

    path = run_dir / "checkpoints" / f"{checkpoint}.ckpt"
    if not path.is_file():
        return None
    return int(torch.load(path, map_location="cpu", weights_only=False).get("global_step", 0))


def _test_data(suite: Suite, options: dict, quick: bool):
    """The suite's data set loaded with ``options`` (a test set of :attr:`Suite.test_sets`)."""
    from stpatch.datasets import load

    return load(suite.data["name"], **options, **(suite.quick_options if quick else {}))


def run_suite(suite: Suite, budget: str, quick: bool, out_dir: Path, seed: int = 0) -> list[tuple[str, str, list[ModelRow]]]:
    """Train every model of ``suite`` under ``budget`` and score it, with the baselines on the same windows.

    ``seed`` seeds every model's training (initialisation and data order); the test windows do not depend on it.

    Returns one ``(label, markdown table, rows)`` per test set (one, labelled ``""``, unless the suite
    names :attr:`Suite.test_sets`).
    """
    from stpatch.engine.evaluation import evaluate
    from stpatch.engine.runs import load_run
    from stpatch.engine.training import train

    test_sets = suite.test_sets or {"": {}}
    test_data = {label: _test_data(suite, options, quick) if options else None for label, options in test_sets.items()}
    rows: dict[str, list[ModelRow]] = {label: [] for label in test_sets}
    windows: dict[str, int] = {}
    for entry in suite.models:
        data = {**suite.data, "options": {**suite.data.get("options", {}), **(suite.quick_options if quick else {})}}
        # a model's own ``train`` options (e.g. the learning rate chosen for it on validation) win over the suite's
        model = {k: v for k, v in entry.items() if k != "train"}
        own = dict(entry.get("train", {}))
        name = model["name"]
        run_dir = out_dir / suite.name / name
        config = {
            "data": data,
            "model": model,
            "train": {"max_epochs": 100000, "max_time": budget, "seed": seed, "progress": not quick, "lr": suite.lr,
                      "loss": suite.loss, **suite.train, **own,
                      **({"limit_val_batches": 2} if quick else {})},
            "eval": {"baselines": list(suite.baselines), "suite": suite.metric_suite},
            "run_dir": str(run_dir),
        }
        print(f"[bench {suite.name}] training {name} for {budget}", flush=True)
        trained = train(config)
        params, gflops = _profile(load_run(trained.run_dir))
        steps = _steps(trained.run_dir)
        scored = _steps(trained.run_dir, "best")  # evaluation scores the best checkpoint on validation
        for label in test_sets:
            first = label not in windows  # the baselines are scored once per test set, beside the first model
            result = evaluate(trained.run_dir, limit_batches=2 if quick else None, progress=not quick, figures=True,
                              baselines=list(suite.baselines) if first else [], data=test_data[label],
                              write=label == next(iter(test_sets)))
            rows[label].append(ModelRow(name, params, gflops, budget, steps, result["mean"][name],
                                        result["per_horizon"][name], scored))
            if first:
                for base in suite.baselines:
                    rows[label].append(ModelRow(base, 0, 0.0, "-", None, result["mean"][base], result["per_horizon"][base]))
                windows[label] = result["windows"]
    return [(label, format_suite(suite, rows[label], windows[label], budget, label), rows[label]) for label in test_sets]


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4g}"


def format_suite(suite: Suite, rows: list[ModelRow], windows: int, budget: str, label: str = "") -> str:
    """The suite's markdown: a summary table and a per-lead-time table of the headline metric.

    ``label`` names the test set when the suite has several (a heading of its own, no description).
    """
    ref = next((r for r in rows if r.name == "persistence"), None)
    key = suite.headline[0]
    head = [f"### {suite.heading(budget)}", "", suite.description, ""]
    if label:
        head = [f"#### Test set: {label}", ""] if label != next(iter(suite.test_sets)) else head + [f"#### Test set: {label}", ""]
    lines = [*head,
             f"Test windows: {windows}. Training budget per model: {budget} (wall clock, CPU). "
             f"Metrics are means over lead times, in physical units{suite.units_note}.", "",
             "| model | params | GFLOPs/sample | steps trained | " + " | ".join(suite.headline) + f" | {key} / persistence |",
             "|" + " --- |" * (len(suite.headline) + 5)]
    for r in rows:
        ratio = (r.mean.get(key) / ref.mean.get(key)) if ref and ref.mean.get(key) else float("nan")
        lines.append(f"| {r.name} | {r.params:,} | {_fmt(r.gflops)} | {r.steps_text()} | "
                     + " | ".join(_fmt(r.mean.get(m, float('nan'))) for m in suite.headline) + f" | {_fmt(ratio)} |")
    leads = suite.leads or list(range(1, len(next(iter(rows[0].per_horizon.values()))) + 1))
    lead_label = [suite.lead_label(lead) for lead in leads]
    lines += ["", f"{key} per lead time:", "", "| model | " + " | ".join(lead_label) + " |", "|" + " --- |" * (len(leads) + 1)]
    for r in rows:
        values = r.per_horizon.get(key, [])
        lines.append(f"| {r.name} | " + " | ".join(_fmt(values[lead - 1]) if lead - 1 < len(values) else "n/a" for lead in leads) + " |")
    return "\n".join(lines) + "\n"


def _slug(label: str) -> str:
    """A file-name-safe form of a test-set label: ``"MeteoSwiss 2017-01-31"`` -> ``"meteoswiss_2017-01-31"``."""
    import re

    return re.sub(r"[^a-z0-9-]+", "_", label.lower()).strip("_")


def _lead_time_figure(suite: Suite, rows: list[ModelRow], path: Path, label: str, budget: str) -> Path:
    from stpatch.bench.plots import plot_lead_times
    from stpatch.metrics import get_metric

    key = suite.headline[0]
    per_model = {r.name: r.per_horizon[key] for r in rows if key in r.per_horizon}
    heading = suite.heading(budget)
    title = f"{heading}: {label}" if label else heading
    return plot_lead_times(title, key, per_model, path, suite.step_minutes, get_metric(key).higher_is_better)


def run_benchmarks(suite: str = "all", budget: str | None = None, quick: bool = False, write: bool = False,
                   out_dir: str | Path | None = None, seeds: list[int] | None = None) -> str:
    """Run one suite (or ``"all"``) and return the markdown; ``write`` updates BENCHMARKS.md.

    ``seeds``: train with each of these seeds and report the spread over them (``stpatch.bench.seeds``,
    section ``accuracy-NAME-seeds``) instead of one seed-0 table.

    ``budget``: training budget per model; None trains each suite for its designed budget
    (:attr:`Suite.budget`). A run at another budget writes ``accuracy-NAME-3min`` (and a figure of that
    name) instead of the designed section; every run gets a new folder under ``bench_out/``.
    """
    names = suite_names(suite)
    out = Path(out_dir) if out_dir else _new_out_dir(Path("bench_out"))
    if seeds:
        return _run_seeds(names, budget, quick, write, out, seeds)
    parts = []
    for name in names:
        spec = SUITES[name]
        run_budget = budget or ("00:00:05" if quick else spec.budget)
        tag = budget_tag(run_budget, spec.budget)
        tables = []
        for label, table, rows in run_suite(spec, run_budget, quick, out):
            # the picture goes beside BENCHMARKS.md when written there, else into the run folder
            stem = name + tag + (f"_{_slug(label)}" if label else "")
            figure = (Path("benchmarks") / "figures" if write else out) / f"{stem}.png"
            _lead_time_figure(spec, rows, figure, label, run_budget)
            tables.append(table + f"\n![{spec.headline[0]} against lead time]({figure.as_posix()})\n")
        section = f"{stamp(_command(name, run_budget, quick))}\n" + "\n".join(tables)
        parts.append(section)
        if write:
            write_section(f"accuracy-{name}{tag}", section)
    return "\n".join(parts)


def budget_tag(budget: str, designed: str) -> str:
    """The suffix of a run's section and figure names: empty at the suite's designed budget, else the budget.

    Tables of a shorter (or longer) run get places of their own instead of replacing the designed one.

    >>> budget_tag("00:20:00", "00:20:00"), budget_tag("00:03:00", "00:20:00"), budget_tag("00:00:05", "00:20:00")
    ('', '-3min', '-5s')
    """
    from stpatch.bench.suites import other_budget_seconds

    seconds = other_budget_seconds(budget, designed)
    if seconds is None:
        return ""
    return f"-{seconds / 60:g}min" if seconds % 60 == 0 else f"-{seconds:g}s"


def _new_out_dir(root: Path) -> Path:
    """``root/YYYYmmdd-HHMMSS``, created here; a second run started in the same second gets ``...-2``, so
    two benchmark processes never share (and overwrite) each other's run folders."""
    started = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = root / (started if n == 1 else f"{started}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new folder under {root} for {started}")


def _command(suite: str, budget: str, quick: bool) -> str:
    return f"stpatch bench {suite} --budget {budget}" + (" --quick" if quick else "")


def _run_seeds(names: list[str], budget: str | None, quick: bool, write: bool, out: Path, seeds: list[int]) -> str:
    from stpatch.bench.seeds import format_seed_spread

    parts = []
    for name in names:
        spec = SUITES[name]
        run_budget = budget or ("00:00:05" if quick else spec.budget)
        command = _command(name, run_budget, quick) + " --seeds " + ",".join(map(str, seeds))
        per_label: dict[str, dict[int, list[ModelRow]]] = {}
        for seed in seeds:
            print(f"[bench {name}] seed {seed}", flush=True)
            for label, _, rows in run_suite(spec, run_budget, quick, out / f"seed{seed}", seed=seed):
                per_label.setdefault(label, {})[seed] = rows
        section = f"{stamp(command)}\n" + "\n".join(
            format_seed_spread(spec, per_seed, run_budget, label) for label, per_seed in per_label.items())
        parts.append(section)
        if write:
            write_section(f"accuracy-{name}{budget_tag(run_budget, spec.budget)}-seeds", section)
    return "\n".join(parts)
