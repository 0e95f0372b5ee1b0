"""report.html: written by evaluate, self-contained, with eval.json's values, decodable images, written atomically."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import stpatch
from stpatch.report.html import format_value

try:
    from test_engine_run import sensor_data, tiny_grid_config
except ImportError:  # tests/ imported as a package
    from tests.test_engine_run import sensor_data, tiny_grid_config


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    """A tiny trained and evaluated grid run (evaluate writes report.html)."""
    run_dir = tmp_path_factory.mktemp("report") / "run"
    stpatch.train(tiny_grid_config(run_dir))
    stpatch.evaluate(run_dir)
    return run_dir


def images(page: str) -> list[Image.Image]:
    """Every inline image of ``page``, decoded; fails on any <img> without a base64 payload."""
    tags = re.findall(r"<img\b[^>]*>", page)
    out = []
    for tag in tags:
        m = re.search(r'src="data:image/(png|gif|jpeg);base64,([A-Za-z0-9+/=]+)"', tag)
        assert m, f"an <img> without an inline base64 payload: {tag[:120]}"
        img = Image.open(io.BytesIO(base64.b64decode(m.group(2), validate=True)))
        img.load()
        out.append(img)
    return out


def test_evaluate_writes_a_self_contained_report_with_the_metrics_and_pictures(grid_run):
    page = (grid_run / "report.html").read_text()
    result = json.loads((grid_run / "eval.json").read_text())
    assert set(result["mean"]) == {"stpnet_tiny", "persistence"}
    table = page[page.index("<table>"):page.index("</table>")]
    for name, values in result["mean"].items():
        assert name in table
        for metric, value in values.items():
            assert metric in table and f">{format_value(value)}<" in table, (name, metric, value)
    pictures = images(page)
    # lead-time plot, loss curves, strip, animation, attention, importance, two feature maps
    assert len(pictures) >= 8, len(pictures)
    assert any(p.format == "GIF" for p in pictures)
    for img in pictures:
        pixels = np.asarray(img.convert("RGB"), dtype=np.float64)
        assert min(img.size) >= 30 and pixels.std() > 1.0, "a blank image"
    for section in ("Error against lead time", "Training", "importance", "region features", "Config", "Data"):
        assert section in page
    # nothing fetched from elsewhere: no scripts, stylesheets or remote sources
    assert "<script" not in page and "<link" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)


def test_the_best_forecaster_per_metric_is_marked(grid_run):
    from stpatch.metrics import get_metric

    page = (grid_run / "report.html").read_text()
    mean = json.loads((grid_run / "eval.json").read_text())["mean"]
    metric = "mse_per_frame"
    assert not get_metric(metric).higher_is_better
    best = min(mean, key=lambda n: mean[n][metric])
    assert f"<td class=best>{format_value(mean[best][metric])}</td>" in page


def test_report_is_written_atomically(grid_run, monkeypatch):
    from stpatch import atomic
    from stpatch.report import html as report_html
    from stpatch.report import write_report

    target = grid_run / "report.html"
    before = target.read_text()
    renames = []
    real_replace = os.replace
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (renames.append((a, b)), real_replace(a, b))[1])
    write_report(grid_run, analyse=False)
    (tmp, final), = renames
    assert final == target and tmp.parent == target.parent and tmp.name.startswith(".")
    # a failure while the page is built leaves the old page whole and no temporary file behind
    target.write_text(before)
    monkeypatch.setattr(report_html, "build_report", lambda run_dir: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        write_report(grid_run, analyse=False)
    assert target.read_text() == before
    assert not [p for p in grid_run.iterdir() if p.name.startswith(".report")]


def test_the_page_is_written_without_maps_when_the_data_are_gone(grid_run, tmp_path, monkeypatch, caplog):
    from stpatch.report import html as report_html
    from stpatch.report import write_report

    def no_data(*args, **kwargs):
        raise FileNotFoundError("digits are not on this machine")

    monkeypatch.setattr(report_html, "_analyse", no_data)
    with caplog.at_level(logging.WARNING):
        path = write_report(grid_run, path=tmp_path / "page.html")
    assert "digits are not on this machine" in caplog.text
    assert "<table>" in path.read_text()
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        write_report(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()


def test_a_failing_report_never_fails_the_evaluation(grid_run, monkeypatch, caplog):
    from stpatch import report as report_pkg

    def broken(*args, **kwargs):
        raise RuntimeError("no report today")

    monkeypatch.setattr(report_pkg, "write_report", broken)
    with caplog.at_level(logging.WARNING):
        result = stpatch.evaluate(grid_run, figures=False)
    assert result["windows"] == 8
    assert "no report today" in caplog.text


def test_report_command(grid_run, tmp_path):
    from stpatch.cli import app

    out = tmp_path / "page.html"
    res = CliRunner().invoke(app, ["report", str(grid_run), "--no-analyse", "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert "report:" in res.output and len(images(out.read_text())) >= 4
    res = CliRunner().invoke(app, ["report", str(tmp_path / "missing")])
    assert res.exit_code != 0


def test_a_sensor_run_on_the_users_own_data_gets_its_report_and_features(tmp_path):
    from stpatch.analysis.features import load_features
    from stpatch.cli import app

    run_dir = tmp_path / "run"
    config = {"data": {"name": "ignored", "t_in": 6, "t_out": 4, "batch_size": 16}, "model": {"name": "stpnet_sensor"},
              "train": {"max_epochs": 1, "seed": 0, "progress": False}, "run_dir": str(run_dir)}
    data = sensor_data()
    stpatch.train(config, data=data)
    stpatch.evaluate(run_dir, data=data)
    assert {"importance.png", "features_pca.png", "features_clusters.png"} <= {p.name for p in (run_dir / "figures").iterdir()}
    assert len(images((run_dir / "report.html").read_text())) >= 6
    # features of every window of a file (the same series as a (T, N) array)
    np.save(tmp_path / "series.npy", data.segments[0][:, :, 0])
    res = CliRunner().invoke(app, ["features", "--checkpoint", str(run_dir), "--input", str(tmp_path / "series.npy"),
                                   "--similar-to", "4"])
    assert res.exit_code == 0, res.output
    rf = load_features(run_dir / "features" / "features.csv")
    assert rf.values.shape[0] == 6 and "windows)" in res.output
    assert [line for line in res.output.splitlines() if "\t" in line][0].startswith("4\t1.000")


# --------------------------------------------------------------------------- in a real browser

# Synchronous on purpose: `img.decode()` resolves on a decoder thread in real time, which Chromium's virtual-time
# budget does not wait for, so on a busy machine the page was dumped before the promise settled (a CI failure).
# At the load event every image has loaded; drawing it to a canvas decodes it there and then, and a broken one
# has no size (or throws).
_CHECK = """<script>
window.addEventListener("load", () => {
  const ctx = document.createElement("canvas").getContext("2d");
  const ok = [...document.images].map(i => {
    if (!(i.complete && i.naturalWidth > 0 && i.naturalHeight > 0)) return false;
    try { ctx.drawImage(i, 0, 0); return true; } catch (e) { return false; }
  });
  document.body.insertAdjacentHTML("beforeend",
    "<p id=stpatch-check>images " + ok.length + " decoded " + ok.filter(Boolean).length + "</p>");
});
</script>"""


def _chromium() -> str:
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no headless Chromium: `apt-get install -y chromium` (make test installs it where it can)")


def _browse(page, *args) -> tuple[str, str]:
    """Open ``page`` in headless Chromium with ``args``; returns (stdout, the page's console messages)."""
    import subprocess

    proc = subprocess.run([_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                           "--v=0", "--virtual-time-budget=5000", *args, page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    console = "\n".join(line for line in proc.stderr.splitlines() if ":CONSOLE" in line)
    return proc.stdout, console


def _decoded(page, folder) -> tuple[int, int, str]:
    """Open a copy of ``page`` with a checker script; (images, images decoded by the browser, console)."""
    probe = folder / f"probe-{page.name}"
    probe.write_text(page.read_text().replace("</body>", _CHECK + "</body>"))
    dom, console = _browse(probe, "--dump-dom")
    m = re.search(r"images (\d+) decoded (\d+)", dom)
    assert m, f"the checker did not run; chromium printed: {dom[:300]}"
    return int(m.group(1)), int(m.group(2)), console


def test_report_in_headless_chromium(grid_run, tmp_path):
    page = grid_run / "report.html"
    total, decoded, _ = _decoded(page, tmp_path)
    assert total == len(images(page.read_text())) and total >= 8
    assert decoded == total, f"only {decoded} of {total} images decoded in the browser"
    # the report itself (no checker) logs nothing to the console: no errors, no blocked loads
    _, console = _browse(page, "--dump-dom")
    assert console == "", console
    shot = grid_run / "report_screenshot.png"
    _browse(page, "--window-size=1200,3000", f"--screenshot={shot}")
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    assert pixels.shape[:2] == (3000, 1200) and pixels.std() > 5


def test_the_browser_check_sees_a_broken_image_and_a_console_error(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><img src="data:image/png;base64,AAAA">'
                   '<script>console.error("broken on purpose")</script></body></html>')
    total, decoded, console = _decoded(bad, tmp_path)
    assert (total, decoded) == (1, 0)
    assert "broken on purpose" in console


def test_evaluate_command_no_report_leaves_the_page_alone(grid_run, tmp_path):
    import shutil

    from stpatch.cli import app

    run = tmp_path / "copy"
    shutil.copytree(grid_run, run)
    (run / "report.html").unlink()
    res = CliRunner().invoke(app, ["evaluate", "--run", str(run), "--no-report"])
    assert res.exit_code == 0, res.output
    assert (run / "eval.json").is_file() and not (run / "report.html").exists()
    res = CliRunner().invoke(app, ["evaluate", "--run", str(run)])  # the default writes it
    assert res.exit_code == 0, res.output
    assert (run / "report.html").is_file()


# --------------------------------------------------------------------------- the pictures of sensor runs


def _captured_figures(monkeypatch) -> list:
    """Every figure the analysis writers save, laid out and drawn as in the PNG (still written)."""
    from stpatch.analysis import figures as analysis_figures

    seen, real = [], analysis_figures.save_figure

    def capture(fig, path, dpi=90):
        fig.tight_layout()
        fig.canvas.draw()
        seen.append([(ax, [t.get_window_extent() for t in axis.get_ticklabels() if t.get_visible() and t.get_text()],
                      [t.get_text() for t in ax.texts]) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)])
        return real(fig, path, dpi)

    monkeypatch.setattr(analysis_figures, "save_figure", capture)
    return seen


def test_a_one_step_sensor_forecast_is_drawn(tmp_path):
    """Chickenpox forecasts one week: a one-point line is invisible without markers."""
    from stpatch.analysis.figures import save_sensor_plot

    rng = np.random.default_rng(0)
    history, truth, forecast = rng.normal(size=(4, 3, 1)), rng.normal(size=(1, 3, 1)), rng.normal(size=(1, 3, 1))
    path = save_sensor_plot(history, truth, forecast, tmp_path / "sensors.png", sensors=[0, 1, 2])
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.int64)
    lower = rgb[rgb.shape[0] // 3 + 10:]  # the panels below the first one, which holds the legend
    orange = (np.abs(lower - np.array([255, 127, 14])) < 40).all(-1)  # matplotlib's C1, the forecast
    assert orange.sum() >= 8, "the one-step forecast is not visible"


def test_sensor_maps_have_readable_axes(tmp_path, monkeypatch):
    """Los-loop's longitudes (-118.55 .. -118.20) once drew tick labels over each other; chickenpox has
    no coordinates: its sensors stand on a circle with their indices and no meaningless ticks."""
    from stpatch.analysis.feature_maps import save_feature_maps
    from stpatch.analysis.features import RegionFeatures
    from stpatch.analysis.importance import RegionImportance, save_importance_map

    rng = np.random.default_rng(0)
    coords = np.stack([rng.uniform(34.05, 34.23, 40), rng.uniform(-118.55, -118.20, 40)], 1)
    series = rng.dirichlet(np.ones(40), size=12)
    seen = _captured_figures(monkeypatch)
    for where in (coords, None):
        save_feature_maps(RegionFeatures(rng.normal(size=(40, 8)), "sensor", coords=where), tmp_path, k=3)
        save_importance_map(RegionImportance(series.mean(0), series, "sensor", where), tmp_path / "importance.png")
    assert len(seen) == 6
    for fig in seen[:3]:  # with coordinates: no two tick labels of an axis overlap
        for ax, boxes, _ in fig:
            assert not [(a, b) for a, b in zip(boxes, boxes[1:]) if a.overlaps(b)], ax.get_title()
    for fig in seen[3:]:  # without: the map (first axes) has no ticks but the sensors' indices
        for ax, boxes, texts in fig[:2]:  # its x and y axis
            assert boxes == [] and {str(i) for i in range(40)} <= set(texts), ax.get_title()


def test_a_single_lead_or_epoch_gets_an_axis_of_whole_steps(tmp_path, monkeypatch):
    from stpatch.report import plots

    limits = []
    real_png = plots._png

    def spy(fig):  # the x limits of every panel the page would show
        limits.extend(ax.get_xlim() for ax in fig.axes if ax.lines)
        return real_png(fig)

    monkeypatch.setattr(plots, "_png", spy)
    assert plots.lead_time_png({"model": "m", "per_horizon": {"m": {"mae": [0.5]}, "linear": {"mae": [0.6]}}})
    (tmp_path / "metrics.csv").write_text("epoch,step,train_loss_epoch,val_loss\n0,3,0.5,\n0,3,,0.6\n")
    assert plots.loss_curves_png(tmp_path / "metrics.csv")
    assert limits == [(0.5, 1.5), (0.5, 1.5)]  # not matplotlib's 0.96 .. 1.04 around a single point
