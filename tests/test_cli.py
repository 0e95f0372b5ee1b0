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


class StepCounter:
    """Counts the training steps of ``ForecastModule`` (patched in; the commands run in this process);
    with ``crash_at``, that step raises instead, as a crash (power cut, kill) would stop a run."""

    def __init__(self, monkeypatch, crash_at: int | None = None):
        from stpatch.engine.module import ForecastModule

        self.steps, real = 0, ForecastModule.training_step

        def counting(module, batch, batch_idx):
            self.steps += 1
            if self.steps == crash_at:
                raise RuntimeError("simulated crash")
            return real(module, batch, batch_idx)

        monkeypatch.setattr(ForecastModule, "training_step", counting)


def test_train_evaluate_predict_commands(tmp_path):
    run_dir = tmp_path / "run"
    code, out = invoke("train", *TINY, "--max-steps", "2", "--run-dir", str(run_dir))
    assert code == 0, out
    assert "persistence" in out and (run_dir / "eval.md").is_file()

    code, out = invoke("evaluate", "--run", str(run_dir), "--json")
    assert code == 0, out
    result = json.loads(out)
    assert result["windows"] == 8 and result["split"] == "test" and "stpnet_tiny" in result["mean"]
    # --split and --limit-batches reach the evaluation: 4 validation windows; the first test batch of 4
    code, out = invoke("evaluate", "--run", str(run_dir), "--split", "val", "--json")
    assert code == 0, out
    val = json.loads(out)
    assert val["split"] == "val" and val["windows"] == 4
    assert val["mean"]["persistence"] != result["mean"]["persistence"]
    code, out = invoke("evaluate", "--run", str(run_dir), "--limit-batches", "1", "--json")
    assert code == 0, out
    first = json.loads(out)
    assert first["split"] == "test" and first["windows"] == 4
    assert first["mean"]["persistence"] != result["mean"]["persistence"]

    np.save(tmp_path / "in.npy", np.zeros((5, 1, 32, 32), dtype=np.float32))
    code, out = invoke("predict", "--checkpoint", str(run_dir), "--input", str(tmp_path / "in.npy"),
                       "--output", str(tmp_path / "out.npy"))
    assert code == 0, out
    assert np.load(tmp_path / "out.npy").shape[-4:] == (3, 1, 32, 32)


def test_train_resume_continues_an_interrupted_run(tmp_path):
    from stpatch.engine.checkpoint import read_checkpoint

    run_dir = tmp_path / "run"
    with pytest.MonkeyPatch.context() as mp:
        StepCounter(mp, crash_at=6)  # in the second epoch (4 steps each), after the first one's checkpoint
        result = runner.invoke(app, ["train", *TINY, "--max-steps", "8", "--no-evaluate", "--run-dir", str(run_dir)])
    assert isinstance(result.exception, RuntimeError) and "simulated crash" in str(result.exception)
    assert read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 4
    code, out = invoke("train", *TINY, "--max-steps", "8", "--no-evaluate", "--run-dir", str(run_dir))
    assert code == 2 and "--resume" in out  # never silently over an earlier run
    with pytest.MonkeyPatch.context() as mp:
        counter = StepCounter(mp)
        code, out = invoke("train", "--resume", str(run_dir), "--no-evaluate")
    assert code == 0, out
    assert counter.steps == 4  # steps 5 to 8: it went on from the checkpoint, not from the start
    assert read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 8
    # a finished run trained further: the learning-rate plan follows the new budget (a saved one-cycle
    # schedule used to stop at its old total with "Tried to step 9 times")
    with pytest.MonkeyPatch.context() as mp:
        counter = StepCounter(mp)
        code, out = invoke("train", "--resume", str(run_dir), "--max-steps", "12", "--no-evaluate")
    assert code == 0, out
    assert counter.steps == 4 and read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 12
    code, out = invoke("train", "--resume", str(tmp_path / "nothing"))
    assert code == 2 and "no config.yaml" in out


def test_train_max_time_stops_training_by_the_clock(tmp_path, monkeypatch):
    import yaml

    from stpatch.engine.checkpoint import read_checkpoint

    run_dir = tmp_path / "run"
    counter = StepCounter(monkeypatch)
    code, out = invoke("train", *TINY, "--max-time", "00:00:02", "--max-epochs", "100000", "--no-evaluate",
                       "--run-dir", str(run_dir))
    assert code == 0, out
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["max_time"] == "00:00:02"
    ckpt = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    # the clock stopped it: it trained, but nowhere near the 100000 epochs (4 steps each) asked for
    assert 0 < counter.steps == ckpt["global_step"] and ckpt["epoch"] < 100000 - 1
    code, out = invoke("train", *TINY, "--max-time", "two seconds", "--run-dir", str(tmp_path / "bad"))
    assert code == 2 and "max_time" in out


def test_demo_trains_the_default_model_scores_it_beside_persistence_and_never_overwrites(tmp_path, monkeypatch):
    """`stpatch demo` with its smallest settings: 2 training steps instead of minutes, 4 test windows."""
    import yaml

    from stpatch.engine import demo
    from stpatch.engine.checkpoint import read_checkpoint

    designed = demo.demo_config
    budgets = []

    def two_steps(*args, **kwargs):
        config = designed(*args, **kwargs)
        budgets.append(config["train"]["max_time"])
        # 2 steps, with time to make them: 6 seconds ran out after one step on a busy machine
        config["train"].update(max_steps=2, max_time="00:05:00")
        return config

    monkeypatch.setattr(demo, "demo_config", two_steps)
    run_dir = tmp_path / "demo"
    code, out = invoke("demo", "--data", "digits", "--minutes", "0.1", "--test-size", "4", "--run-dir", str(run_dir))
    assert code == 0, out
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"]["name"] == "stpconv" and config["data"]["name"] == "digits"
    assert config["train"]["ssim_weight"] == 0.03  # the Moving MNIST suite's structure term
    assert (config["data"]["t_in"], config["data"]["t_out"]) == (10, 10) and budgets == ["6"]  # 0.1 min
    assert read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 2
    result = json.loads((run_dir / "eval.json").read_text())
    assert set(result["mean"]) == {"stpconv", "persistence"} and result["windows"] == 4
    assert "stpconv" in out and "persistence" in out  # the table is printed
    for name in ("forecast_strip.png", "forecast.gif"):
        assert (run_dir / "figures" / name).is_file(), name
    # a second demo goes to a new, dated folder beside the first, which stays as it was
    before = (run_dir / "eval.json").read_bytes()
    code, out = invoke("demo", "--data", "digits", "--minutes", "0.1", "--test-size", "4", "--run-dir", str(run_dir))
    assert code == 0, out
    assert (run_dir / "eval.json").read_bytes() == before
    again = [p for p in tmp_path.iterdir() if p.name.startswith("demo-")]
    assert len(again) == 1 and (again[0] / "eval.json").is_file()
    assert f"run directory: {again[0]} " in out  # it names the folder it wrote to, not the one asked for


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


DDP_SCRIPT = """
import os
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

import stpatch.engine.training as training


class Record(Callback):
    # per rank: the window indices of every batch; at the first step the weights, batch and gradients

    def __init__(self, out):
        self.out, self.indices, self.first = Path(out), [], {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.indices.append(batch["index"].tolist())
        if trainer.global_step == 0:
            self.first["batch"] = {k: v.clone() for k, v in batch.items()}
            self.first["weights"] = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}

    def on_after_backward(self, trainer, pl_module):  # DDP has all-reduced the gradients by now
        if trainer.global_step == 0:
            self.first["grads"] = {n: p.grad.detach().clone() for n, p in pl_module.named_parameters()
                                   if p.grad is not None}

    def on_train_end(self, trainer, pl_module):
        torch.save({"rank": trainer.global_rank, "world_size": trainer.world_size, "indices": self.indices,
                    **self.first}, self.out / f"rank{trainer.global_rank}.pt")


# the command itself, with the recorder added (Lightning re-runs this script, environment included, as rank 1)
real_train = training.train
out = os.environ["STPATCH_TEST_DDP_OUT"]
training.train = lambda *args, **kwargs: real_train(*args, **kwargs, callbacks=[Record(out)])
from stpatch.cli import main

main()
"""


@pytest.mark.slow
def test_ddp_two_cpu_processes_see_different_windows_and_average_gradients(tmp_path):
    """`stpatch train --devices 2 --strategy ddp`: Lightning re-runs the command in a second process
    (gloo on the CPU). Each rank records what it saw; the gradient both step with is their mean."""
    import torch

    from stpatch.engine.losses import masked_loss
    from stpatch.engine.runs import load_run

    run_dir, script = tmp_path / "ddp", tmp_path / "train_ddp.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "STPATCH_TEST_DDP_OUT": str(tmp_path)}
    cmd = [sys.executable, str(script), "train", *TINY, "--max-steps", "3", "--no-evaluate",
           "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--run-dir", str(run_dir)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"] == 3
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world_size"] == 2 for r in ranks)
    # in the first epoch each rank took its own half of the 16 training windows (2 batches of 4)
    seen = [set(sum(r["indices"][:2], [])) for r in ranks]
    assert len(seen[0]) == len(seen[1]) == 8 and not seen[0] & seen[1]
    # both started from the same weights and stepped with the same gradient: the mean of the two
    # ranks' gradients, recomputed here in one process from the weights and the two batches
    for key, value in ranks[0]["weights"].items():
        torch.testing.assert_close(ranks[1]["weights"][key], value)
    module = load_run(run_dir).module.train()
    module.load_state_dict(ranks[0]["weights"])

    def gradients(batches):
        module.zero_grad()
        loss = sum(masked_loss(module(b), b["y"], b["y_mask"], "mse") for b in batches) / len(batches)
        loss.backward()
        return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}

    mean = gradients([r["batch"] for r in ranks])
    assert ranks[0]["grads"].keys() == ranks[1]["grads"].keys() == mean.keys()
    for name, grad in mean.items():
        for r in ranks:
            torch.testing.assert_close(r["grads"][name], grad, rtol=1e-4, atol=1e-6, msg=f"rank {r['rank']}: {name}")
    own = gradients([ranks[0]["batch"]])  # one rank's gradient alone is another thing
    assert any(not torch.allclose(own[n], mean[n], rtol=1e-3, atol=1e-6) for n in mean)


def test_readme_example_runs():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("```python", 1)[1].split("```", 1)[0]
    exec(compile(block, "README.md", "exec"), {})
