"""What a tune leaves behind: the trials as rows, ``trials.csv``, ``best.yaml``, the plot of validation
loss against patch size, and the table printed at the end. Every file is written atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from stpatch.atomic import write_text
from stpatch.engine.config import RunConfig
from stpatch.tune.space import SearchSpace, decode

__all__ = ["format_table", "plot_patch", "trial_rows", "write_best", "write_trials_csv"]

PATCH = "model.patch"


def trial_rows(study: Any, space: SearchSpace) -> list[dict]:
    """One dict per trial of ``study``: number, state, val_loss, steps, seconds, default, then each key.

    A pruned trial's ``val_loss`` is the last value it reported (it did not finish); a failed trial's is None.
    """
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state.name in ("COMPLETE",):
            value = t.value
        elif t.state.name == "PRUNED" and t.intermediate_values:
            value = t.intermediate_values[max(t.intermediate_values)]
        else:
            value = None
        row = {"number": t.number, "state": t.state.name.lower(), "val_loss": value,
               "steps": t.user_attrs.get("steps"), "seconds": t.user_attrs.get("seconds"),
               "default": bool(t.user_attrs.get("default", False))}
        row.update({key: decode(t.params[key]) if key in t.params else None for key in space.keys})
        if t.user_attrs.get("error"):
            row["error"] = t.user_attrs["error"]
        rows.append(row)
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def write_trials_csv(rows: list[dict], space: SearchSpace, path: Path) -> Path:
    """``trials.csv``: one line per trial; lists (a patch, widths) as JSON text."""
    import csv
    import io

    columns = ["number", "state", "val_loss", "steps", "seconds", "default", *space.keys, "error"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _cell(row.get(c)) for c in columns})
    return write_text(path, buffer.getvalue())


def write_best(config: RunConfig, header: str, path: Path) -> Path:
    """``best.yaml``: the whole config (no run_dir), with ``header`` as comment lines on top."""
    values = config.to_dict()
    values.pop("run_dir", None)
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return write_text(path, comment + yaml.safe_dump(values, sort_keys=False))


def _label(value: Any) -> str:
    return "x".join(str(v) for v in value) if isinstance(value, list) else str(value)


def plot_patch(rows: list[dict], path: Path, title: str) -> Path | None:
    """Validation loss against patch size (``pt x ph x pw``): one point per finished trial, pruned
    trials as crosses at their last reported loss, the default circled, the best starred.
    Without ``model.patch`` in the space the x axis is the trial number. None when nothing finished."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stpatch.analysis.figures import save_figure

    scored = [r for r in rows if r["val_loss"] is not None and math.isfinite(r["val_loss"])]
    if not scored:
        return None
    by_patch = PATCH in rows[0]
    key = (lambda r: _label(r[PATCH])) if by_patch else (lambda r: str(r["number"]))
    order = sorted({key(r) for r in scored}, key=lambda s: [int(p) if p.isdigit() else p for p in s.split("x")])
    where = {label: i for i, label in enumerate(order)}
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(order) + 2), 3.6))
    complete = [r for r in scored if r["state"] == "complete"]
    pruned = [r for r in scored if r["state"] == "pruned"]
    ax.scatter([where[key(r)] for r in complete], [r["val_loss"] for r in complete], color="tab:blue", label="trial")
    if pruned:
        ax.scatter([where[key(r)] for r in pruned], [r["val_loss"] for r in pruned], marker="x", color="tab:gray",
                   label="pruned (last report)")
    default = [r for r in complete if r["default"]]
    if default:
        ax.scatter([where[key(default[0])]], [default[0]["val_loss"]], s=160, facecolors="none", edgecolors="tab:orange",
                   linewidths=2, label="default config")
    if complete:
        best = min(complete, key=lambda r: r["val_loss"])
        ax.scatter([where[key(best)]], [best["val_loss"]], marker="*", s=220, color="tab:red", label="best", zorder=3)
    ax.set_xticks(range(len(order)), order, rotation=45 if len(order) > 6 else 0)
    ax.set_xlabel("patch (pt x ph x pw)" if by_patch else "trial")
    ax.set_ylabel("validation loss (lower is better)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def format_table(rows: list[dict], space: SearchSpace) -> str:
    """The trials as a Markdown table, in trial order."""
    columns = ["number", "state", "val_loss", "steps", "seconds", *space.keys]
    lines = ["| " + " | ".join("#" if c == "number" else c for c in columns) + " |",
             "| " + " | ".join("---" for _ in columns) + " |"]
    for row in rows:
        cells = [_cell(row.get(c)) + (" (default)" if c == "number" and row["default"] else "") for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
