"""How much of a benchmark result is the seed: one suite trained with several seeds, summarised per model.

    stpatch bench chickenpox --budget 00:02:00 --seeds 0-4 --write

Every seed trains every model of the suite (initialisation and data order change; the test windows do
not) and scores it beside the baselines; the table gives each model's headline metric over the seeds
(mean, standard deviation, min, max) and, for the suite's first model, in how many seeds it beat each
other model, with the mean paired difference and its 95 % interval over the seeds (Student's t). A margin
whose interval holds zero is not a result.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable

from stpatch.bench.suites import Suite

__all__ = ["format_seed_spread", "paired_interval", "parse_seeds"]


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> ``[0, 1, 2, 3, 4]``; ``"0,3,7"`` -> ``[0, 3, 7]``; ranges and lists may mix (``"0-2,9"``)."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if match is None or (match[2] is not None and int(match[2]) < int(match[1])):
            raise ValueError(f"--seeds: expected seeds (integers >= 0) or ranges such as 0-4 or 0,3,7; got {text!r}")
        seeds.extend(range(int(match[1]), int(match[2] or match[1]) + 1))
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds: expected distinct seeds, e.g. 0-4; got {text!r}")
    return seeds


def paired_interval(differences: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean of paired differences (one per seed) and its two-sided ``level`` interval, Student's t.

    The seeds are the repetitions: the test windows are the same in each, so what varies is the training.
    With one difference the interval is unbounded (nothing is known about the spread).

    >>> mean, low, high = paired_interval([0.0013, -0.0035, -0.0058, 0.0055, 0.0057])
    >>> round(mean, 5), round(low, 4), round(high, 4)
    (0.00064, -0.0058, 0.0071)
    """
    from scipy.stats import t as student_t

    n = len(differences)
    if n == 0:
        raise ValueError("paired_interval needs at least one difference")
    if not 0 < level < 1:
        raise ValueError(f"level must lie between 0 and 1 (e.g. 0.95), got {level}")
    mean = statistics.fmean(differences)
    if n == 1:
        return mean, -math.inf, math.inf
    half = float(student_t.ppf(0.5 + level / 2, n - 1)) * statistics.stdev(differences) / math.sqrt(n)
    return mean, mean - half, mean + half


def format_seed_spread(suite: Suite, per_seed: dict[int, list], budget: str, label: str = "") -> str:
    """Markdown: each model's headline metric over seeds, and the suite's first model against each other one.

    Args:
        per_seed: ``seed -> rows`` (``stpatch.bench.ModelRow``, as :func:`stpatch.bench.run_suite` returns
            them); the baselines' rows are the same in every seed.
        label: the test set, for suites with several.
    """
    from stpatch.metrics import get_metric

    key = suite.headline[0]
    higher = get_metric(key).higher_is_better
    seeds = sorted(per_seed)
    names = [r.name for r in per_seed[seeds[0]]]
    value = {(s, r.name): r.mean.get(key, math.nan) for s in seeds for r in per_seed[s]}
    steps = {(s, r.name): r.trained_steps for s in seeds for r in per_seed[s]}
    title = f"### {suite.heading(budget)}: {len(seeds)} seeds" + (f", test set {label}" if label else "")
    lines = [title, "",
             f"Seeds {', '.join(map(str, seeds))}; training budget per model and seed: {budget}. {key} "
             f"({'higher' if higher else 'lower'} is better), mean over lead times{suite.units_note}.", "",
             f"| model | {key} mean | std | min | max | steps trained (median) | per seed |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name in names:
        vals = [value[s, name] for s in seeds]
        trained = [steps[s, name] for s in seeds if steps[s, name] is not None]
        spread = math.nan if any(math.isnan(v) for v in vals) else statistics.pstdev(vals)  # pstdev fails on NaN
        lines.append(f"| {name} | {statistics.fmean(vals):.4g} | {spread:.2g} | {min(vals):.4g} | "
                     f"{max(vals):.4g} | {int(statistics.median(trained)) if trained else '-'} | "
                     + ", ".join(f"{v:.4g}" for v in vals) + " |")
    first = names[0]

    def better(a: float, b: float) -> bool:
        return a > b if higher else a < b

    lines += ["", f"{first} against each other model, seed by seed:", ""]
    for name in names[1:]:
        wins = sum(better(value[s, first], value[s, name]) for s in seeds)
        ratio = statistics.fmean(value[s, first] for s in seeds) / statistics.fmean(value[s, name] for s in seeds)
        differences = [value[s, first] - value[s, name] for s in seeds]
        if any(math.isnan(d) for d in differences):  # a model without this metric in some seed
            interval = "no paired difference: a value is missing"
        else:
            mean, low, high = paired_interval(differences)
            verdict = ("no difference shown at this number of seeds" if low <= 0 <= high
                       else f"{first} {'better' if better(mean, 0.0) else 'worse'}")
            interval = f"mean difference {mean:+.4g} (95 % interval {low:+.4g} to {high:+.4g}: {verdict})"
        lines.append(f"- {name}: {first} better in {wins} of {len(seeds)} seeds; ratio of the means {ratio:.4f}x; {interval}")
    leads = suite.leads or []
    if len(leads) > 1:  # a target per lead is met or missed lead by lead: the spread per lead, too
        lines += _lead_lines(per_seed, seeds, names, key, leads, suite.lead_label, better)
    return "\n".join(lines) + "\n"


def _lead_lines(per_seed: dict[int, list], seeds: list[int], names: list[str], key: str, leads: list[int],
                lead_label: Callable[[int], str], better: Callable[[float, float], bool]) -> list[str]:
    """Markdown: each model's ``key`` per lead, mean over seeds, and in how many seeds the first model was better there."""

    def value_at(row, lead: int) -> float:  # NaN where a row has no value at that lead
        values = row.per_horizon.get(key, [])
        return values[lead - 1] if len(values) >= lead else math.nan

    at = {(s, r.name, k): value_at(r, k) for s in seeds for r in per_seed[s] for k in leads}
    heads = [lead_label(k) for k in leads]
    lines = ["", f"{key} per lead time, mean over the seeds:", "",
             "| model | " + " | ".join(heads) + " |", "| --- | " + " | ".join("---" for _ in leads) + " |"]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{statistics.fmean(at[s, name, k] for s in seeds):.4g}" for k in leads) + " |")
    first = names[0]
    lines += ["", f"Seeds in which {first} was better, per lead time:", ""]
    for name in names[1:]:
        counts = [sum(better(at[s, first, k], at[s, name, k]) for s in seeds) for k in leads]
        lines.append(f"- {name}: " + ", ".join(f"{h} {c} of {len(seeds)}" for h, c in zip(heads, counts, strict=True)))
    return lines
