"""``report.html``: one self-contained page per run (images inline as base64, no network, no scripts).

It shows the config and data summary, the metrics beside every baseline, error against lead time,
the loss curves, the forecast pictures under ``RUN/figures/``, the attention importance map and the
region-feature maps. With ``analyse`` the last two are computed first from a few test batches.
"""

from __future__ import annotations

import base64
import html
import json
import logging
from pathlib import Path

from stpatch.atomic import write_text
from stpatch.report.plots import lead_time_png, loss_curves_png

log = logging.getLogger(__name__)

__all__ = ["build_report", "write_report"]

_MIME = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
_STYLE = """body{font-family:sans-serif;margin:1.5em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}td.best{font-weight:bold;background:#e8f4e8}
pre{background:#f6f6f6;padding:.6em;font-size:12px;overflow:auto;max-height:24em}
img{max-width:100%;border:1px solid #eee;margin:.3em 0}figure{margin:.6em 0}figcaption{font-size:12px;color:#555}"""


def _img(data: bytes, suffix: str, caption: str) -> str:
    payload = base64.b64encode(data).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:{_MIME[suffix]};base64,{payload}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def format_value(value: float) -> str:
    """How a metric value is printed in the table (4 significant digits)."""
    return f"{float(value):.4g}"


def _higher_is_better(metric: str) -> bool:
    try:
        from stpatch.metrics import get_metric

        return bool(get_metric(metric).higher_is_better)
    except Exception:  # an unregistered name (an older run): lower is better, as for errors
        return False


def metrics_table(result: dict) -> str:
    """HTML table of ``eval.json``'s ``mean``: a row per forecaster, a column per metric, the best in bold."""
    mean = result.get("mean") or {}
    metrics = list(dict.fromkeys(m for values in mean.values() for m in values))
    best = {}
    for m in metrics:
        scored = [(v[m], n) for n, v in mean.items() if m in v and v[m] == v[m]]
        if scored:
            best[m] = (max if _higher_is_better(m) else min)(scored)[1]
    head = "".join(f"<th>{html.escape(m)}{' &uarr;' if _higher_is_better(m) else ''}</th>" for m in metrics)
    rows = []
    for name, values in mean.items():
        cells = "".join(
            f'<td{" class=best" if best.get(m) == name else ""}>{format_value(values[m]) if m in values else ""}</td>'
            for m in metrics)
        label = f"{html.escape(name)}{' (model)' if name == result.get('model') else ''}"
        rows.append(f"<tr><td>{label}</td>{cells}</tr>")
    return f"<table><tr><th>forecaster</th>{head}</tr>{''.join(rows)}</table>"


def _data_summary(profile: dict | None) -> str:
    if not profile:
        return "<p>No data profile (profile.json) in this run.</p>"
    items = [("kind", profile.get("kind")), ("field", profile.get("field")), ("dtype", profile.get("dtype")),
             ("step (s)", profile.get("step_seconds"))]
    if profile.get("grid"):
        items.append(("grid", " x ".join(str(s) for s in profile["grid"].get("shape", []))))
    if profile.get("sensor_ids") is not None:
        items.append(("sensors", len(profile["sensor_ids"])))
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in items if v is not None)
    chans = "".join(
        f"<tr><td>{html.escape(str(c.get('name')))}</td><td>{html.escape(str(c.get('units')))}</td>"
        f"<td>{html.escape(str(c.get('valid_range')))}</td></tr>" for c in profile.get("channels", []))
    out = f"<table>{rows}</table>"
    if chans:
        out += f"<h3>Channels</h3><table><tr><th>channel</th><th>units</th><th>valid range</th></tr>{chans}</table>"
    return out


def _analyse(run_dir: Path, limit_batches: int, data=None) -> None:
    """Write the importance map and feature maps into ``run_dir/figures`` from the first test batches.

    A model without attention (or without region features) simply has no such map.
    """
    from stpatch.analysis.feature_maps import save_feature_maps
    from stpatch.analysis.features import region_features_of, with_geometry
    from stpatch.analysis.importance import RegionImportance, importance_of, save_importance_map
    from stpatch.analysis.inputs import as_run, run_batches, run_data, spatial_coords

    run = as_run(run_dir)
    dm = run_data(run, data, "test")
    batches = list(run_batches(dm, "test", limit_batches))  # one data load for both analyses
    kind = run.meta["kind"]
    try:
        series = importance_of(run.module, batches, kind)
        mean = series.mean(0)
        imp = RegionImportance(mean / mean.sum(), series, kind, spatial_coords(run, dm).get("coords"))
        save_importance_map(imp, run_dir / "figures" / "importance.png")
    except ValueError as err:
        log.info("report: no attention importance for %s (%s)", run_dir, err)
    except Exception as err:  # noqa: BLE001 - a map that cannot be drawn leaves the rest of the page
        log.warning("report: the attention importance map of %s failed: %s", run_dir, err)
    try:
        values, windows = region_features_of(run.module, batches, kind)
        save_feature_maps(with_geometry(values, windows, run, dm), run_dir / "figures")
    except ValueError as err:
        log.info("report: no region features for %s (%s)", run_dir, err)
    except Exception as err:  # noqa: BLE001 - a map that cannot be drawn leaves the rest of the page
        log.warning("report: the region features map of %s failed: %s", run_dir, err)


_CAPTIONS = {
    "forecast_strip.png": "one test window: inputs, truth and forecast",
    "forecast.gif": "one test window animated: truth beside forecast",
    "forecast_sensors.png": "one test window at a few sensors",
    "attention.png": "attention received per spacetime patch, one test window",
    "importance.png": "attention as importance: mean share received per region over test windows",
    "features_pca.png": "region features: first three principal components as RGB",
    "features_clusters.png": "region features: k-means clusters",
}


def build_report(run_dir: str | Path) -> str:
    """The report page of ``run_dir`` as one HTML string (from the files the run already holds)."""
    run_dir = Path(run_dir)
    result = json.loads((run_dir / "eval.json").read_text()) if (run_dir / "eval.json").is_file() else {}
    profile = json.loads((run_dir / "profile.json").read_text()) if (run_dir / "profile.json").is_file() else None
    config = (run_dir / "config.yaml").read_text() if (run_dir / "config.yaml").is_file() else "(no config.yaml)"
    title = f"{result.get('model', '?')} on {result.get('dataset', '?')}" if result else run_dir.name
    parts = [f"<h1>{html.escape(title)}</h1><p>run: <code>{html.escape(str(run_dir))}</code></p>"]
    if result:
        parts.append(f"<h2>Metrics</h2><p>{result.get('windows')} {html.escape(str(result.get('split')))} windows, "
                     f"mean over lead times; best in bold.</p>{metrics_table(result)}")
        lead = lead_time_png(result)
        if lead:
            parts.append("<h2>Error against lead time</h2>" + _img(lead, ".png", "every metric at every lead time"))
    else:
        parts.append("<p>No eval.json: run <code>stpatch evaluate RUN</code> for the metrics.</p>")
    loss = loss_curves_png(run_dir / "metrics.csv")
    if loss:
        parts.append("<h2>Training</h2>" + _img(loss, ".png", "training and validation loss per epoch"))
    figures = run_dir / "figures"
    shown = sorted(figures.iterdir(), key=lambda p: (list(_CAPTIONS).index(p.name) if p.name in _CAPTIONS else 99, p.name)) \
        if figures.is_dir() else []
    pictures = [_img(p.read_bytes(), p.suffix.lower(), _CAPTIONS.get(p.name, p.stem)) for p in shown
                if p.suffix.lower() in _MIME and not p.name.startswith(".")]
    if pictures:
        parts.append("<h2>Forecasts, attention and region features</h2>" + "".join(pictures))
    parts.append(f"<h2>Data</h2>{_data_summary(profile)}")
    parts.append(f"<h2>Config</h2><pre>{html.escape(config)}</pre>")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>")


def write_report(run_dir: str | Path, analyse: bool = True, limit_batches: int = 4, path: str | Path | None = None,
                 data=None) -> Path:
    """Write ``run_dir/report.html`` (or ``path``) atomically; returns its path.

    Args:
        run_dir: a run directory of ``stpatch train``.
        analyse: first compute the attention importance map and region-feature maps from
            ``limit_batches`` test batches (needs the run's data); off: show only what is there.
        path: where the page goes (default ``run_dir/report.html``).
        data: the ``SpatioTemporalData`` the run was trained on, when it was the user's own.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory of `stpatch train` (it holds no config.yaml)")
    if analyse:
        try:
            _analyse(run_dir, limit_batches, data)
        except (FileNotFoundError, ValueError) as err:  # e.g. the run's data are not on this machine
            log.warning("report: no importance or feature maps for %s: %s", run_dir, err)
    return write_text(path or run_dir / "report.html", build_report(run_dir))
