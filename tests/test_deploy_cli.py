"""The deploy commands end to end on a tiny run: `stpatch export`, `predict --engine onnx`, `profile RUN`,
`bench serve` (a 1-second load on 127.0.0.1)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("onnxruntime")
pytest.importorskip("fastapi")

from stpatch.cli import app  # noqa: E402

try:
    from deploy_helpers import digit_windows, grid_run
except ImportError:  # tests/ imported as a package
    from tests.deploy_helpers import digit_windows, grid_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return grid_run(tmp_path_factory.mktemp("cli") / "run")


def test_export_then_predict_with_both_engines(run, tmp_path):
    cli = CliRunner()
    result = cli.invoke(app, ["predict", "--checkpoint", str(run), "--input", "x.npy", "--output", "y.npy",
                              "--engine", "onnx"])
    assert result.exit_code == 2 and "stpatch export" in result.output  # no export yet: says what to do

    result = cli.invoke(app, ["export", str(run), "--format", "onnx"])
    assert result.exit_code == 0, result.output
    assert "parity with PyTorch: max abs" in result.output and (run / "export" / "model.json").is_file()
    assert json.loads((run / "export" / "model.json").read_text())["input_shape"] == [None, 4, 1, 32, 32]

    np.save(tmp_path / "x.npy", digit_windows("test")[0][:3])
    outputs = {}
    for engine in ("torch", "onnx"):
        out = tmp_path / f"{engine}.npy"
        result = cli.invoke(app, ["predict", "--checkpoint", str(run), "--input", str(tmp_path / "x.npy"),
                                  "--output", str(out), "--engine", engine])
        assert result.exit_code == 0, result.output
        outputs[engine] = np.load(out)
    assert outputs["onnx"].shape == (3, 3, 1, 32, 32)
    np.testing.assert_allclose(outputs["onnx"], outputs["torch"], rtol=0, atol=1e-4)

    result = cli.invoke(app, ["predict", "--checkpoint", str(run), "--input", str(tmp_path / "x.npy"),
                              "--output", str(tmp_path / "z.npy"), "--engine", "tensorrt"])
    assert result.exit_code == 2 and "unknown engine 'tensorrt'" in result.output

    result = cli.invoke(app, ["export", str(run), "--format", "tflite"])
    assert result.exit_code == 2 and "unknown export format" in result.output


def test_profile_of_a_run_compares_the_engines(run):
    cli = CliRunner()
    assert cli.invoke(app, ["export", str(run)]).exit_code == 0
    result = cli.invoke(app, ["profile", str(run), "--repeats", "3"])
    assert result.exit_code == 0, result.output
    import re

    medians = dict(re.findall(r"^\s+(torch|onnx)\s+median ([0-9.]+) ms", result.output, flags=re.M))
    assert set(medians) == {"torch", "onnx"} and all(float(v) > 0 for v in medians.values()), result.output
    assert "onnx / torch:" in result.output


def test_bench_serve_short_run(run):
    cli = CliRunner()
    assert cli.invoke(app, ["export", str(run)]).exit_code == 0
    result = cli.invoke(app, ["bench", "serve", "--run", str(run), "--seconds", "1", "--clients", "1,4"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("| 1 ") or line.startswith("| 4 ")]
    assert len(rows) == 2, result.output
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        clients, rps, p50, p99, rss, ok, busy, errors = cells
        assert float(rps) > 0 and 0 < float(p50) <= float(p99) and float(rss) > 50
        assert int(ok) > 0 and int(errors) == 0
    assert cli.invoke(app, ["bench", "serve"]).exit_code == 2  # no --run: a clear error


def test_deploy_commands_have_help():
    cli = CliRunner()
    for command, words in ((["export", "--help"], "--format"), (["serve", "--help"], "--max-queue"),
                           (["predict", "--help"], "--engine"), (["bench", "--help"], "--seconds")):
        result = cli.invoke(app, command)
        assert result.exit_code == 0 and words in result.output, (command, result.output)
