"""Text reports: an evaluation's Markdown table (``eval.md``, printed by the CLI) and a run's description
(``stpatch info RUN``)."""

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


def format_run_info(about: dict) -> str:
    """A run's checkpoint, model, data and training data profile, as text.

    ``about`` is what :func:`stpatch.engine.runs.run_info` returns.
    """
    from stpatch.data.profile import format_profile

    data, model = about["data"], about["model"]
    sizes = data["spatial_shape"] if data["kind"] == "grid" else [data["num_nodes"]]
    options = {k: v for k, v in model.items() if k != "name"}
    return "\n".join([
        f"checkpoint: {about['checkpoint']}",
        f"model: {model.get('name')}" + (f" {options}" if options else ""),
        f"data: {data['dataset'] or data['name']} ({data['kind']}, {data['in_channels']} channel(s), "
        f"{' x '.join(str(s) for s in sizes)}), t_in {data['t_in']} -> t_out {data['t_out']}, suite {data['suite']}",
        f"scaler: {about['scaler']}",
        format_profile(about["profile"]),
    ]) + "\n"
