"""The `stpatch` command end to end on tiny settings, and DDP with two CPU processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from stpatch.cli import app

runner = CliRunner()
TINY = [
    "--set", "data.name=digits", "--set", "data.t_in=4", "--set", "data.t_out=3", "--set", "data.batch_size=4",
    "--set", "data.options={train_size: 16, val_size: 4, test_size: 8, image_size: 32}",
    "--set", "model.name=stpnet_tiny", "--set", "train.progress=false",
]


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_help_everywhere():
    for command in ([], ["train"], ["evaluate"], ["predict"], ["models"], ["datasets"], ["datasets", "list"],
                    ["profile"], ["demo"], ["bench"], ["configs"]):
        code, out = invoke(*command, "--help")
        assert code == 0, (command, out)
        assert "Usage" in out


def test_train_evaluate_predict_commands(tmp_path):
    run_dir = tmp_path / "run"
    code, out = invoke("train", *TINY, "--max-steps", "2", "--run-dir", str(run_dir))
    assert code == 0, out
    assert "persistence" in out and (run_dir / "eval.md").is_file()

    code, out = invoke("evaluate", "--run", str(run_dir), "--json")
    assert code == 0, out
    result = json.loads(out)
    assert result["windows"] == 8 and "stpnet_tiny" in result["mean"]

    np.save(tmp_path / "in.npy", np.zeros((5, 1, 32, 32), dtype=np.float32))
    code, out = invoke("predict", "--checkpoint", str(run_dir), "--input", str(tmp_path / "in.npy"),
                       "--output", str(tmp_path / "out.npy"))
    assert code == 0, out
    assert np.load(tmp_path / "out.npy").shape[-4:] == (3, 1, 32, 32)


def test_cli_errors_are_clear(tmp_path):
    code, out = invoke("train", "--set", "train.max_epoch=3", "--run-dir", str(tmp_path / "x"))
    assert code == 2 and "max_epoch" in out and "valid keys" in out
    code, out = invoke("evaluate")
    assert code == 2 and "--run" in out
    code, out = invoke("evaluate", "--run", str(tmp_path))
    assert code == 2 and "no checkpoints" in out
    code, out = invoke("profile", "no_such_model")
    assert code == 2 and "stpnet" in out


def test_listing_commands():
    code, out = invoke("models")
    assert code == 0 and "stpnet" in out and "persistence" in out and "(B, T, N, C)" in out
    code, out = invoke("datasets", "list")
    assert code == 0 and "moving_mnist" in out and "los_loop" in out
    code, out = invoke("datasets", "info", "los_loop")
    assert code == 0 and "207" in out
    code, out = invoke("configs")
    assert code == 0 and "moving_mnist_stpnet.yaml" in out
    code, out = invoke("profile", "stpnet_tiny", "--height", "32", "--width", "32")
    assert code == 0 and "params" in out and "gflops" in out.lower()


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    """Lightning's DDP launcher re-runs the command in a second process; gloo on the CPU."""
    run_dir = tmp_path / "ddp"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "stpatch.cli", "train", *TINY, "--max-steps", "3", "--no-evaluate",
           "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--run-dir", str(run_dir)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    import torch

    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 3
    assert "world_size=2" in proc.stdout + proc.stderr or "distributed" in (proc.stdout + proc.stderr).lower()


def test_readme_example_runs():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("```python", 1)[1].split("```", 1)[0]
    exec(compile(block, "README.md", "exec"), {})
