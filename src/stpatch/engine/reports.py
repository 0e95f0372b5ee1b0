"""Text reports of an evaluation: the Markdown table written to ``eval.md`` and printed by the CLI."""

from __future__ import annotations


def format_eval_table(result: dict) -> str:
    """Markdown: one row per forecaster, horizon-mean metrics, and the ratio to persistence.

    ``result`` is what :func:`stpatch.engine.evaluation.evaluate` returns: ``mean[name][metric]`` a
    number, ``per_horizon[name][metric]`` a list of one value per lead time.
    """
    means = result["mean"]
    names = list(means)
    metrics = list(means[names[0]])
    ref = means.get("persistence")
    lines = [f"Test metrics on {result['dataset']} ({result['windows']} windows, suite {result['suite']}); "
             "mean over lead times, physical units.", ""]
    header = "| model | " + " | ".join(metrics) + (" | " + metrics[0] + " / persistence |" if ref else " |")
    lines += [header, "|" + " --- |" * (len(metrics) + 1 + (1 if ref else 0))]
    for name in names:
        row = [f"{means[name][m]:.4g}" for m in metrics]
        if ref:
            denom = ref[metrics[0]]
            row.append(f"{means[name][metrics[0]] / denom:.3f}" if denom else "n/a")
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    # the headline metric per lead time: errors usually grow with the horizon
    per = result["per_horizon"]
    leads = len(per[names[0]][metrics[0]])
    lines += ["", f"{metrics[0]} per lead time:", "",
              "| model | " + " | ".join(f"+{i + 1}" for i in range(leads)) + " |", "|" + " --- |" * (leads + 1)]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{v:.4g}" for v in per[name][metrics[0]]) + " |")
    return "\n".join(lines) + "\n"
