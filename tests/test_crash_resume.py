"""A real crash: `stpatch train` killed with SIGKILL mid-run, resumed with `--resume`, ends with the same
weights as an uninterrupted run of the same seed, and leaves no half-written file in its run directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from stpatch.atomic import remove_stale_temporaries
from stpatch.engine.checkpoint import read_checkpoint

TINY = [
    "--set", "data.name=digits", "--set", "data.t_in=4", "--set", "data.t_out=3", "--set", "data.batch_size=4",
    "--set", "data.options={train_size: 16, val_size: 4, test_size: 8, image_size: 32}",
    "--set", "model.name=stpnet_tiny", "--set", "train.progress=false", "--set", "train.max_epochs=1000", "--no-evaluate",
]
STEPS = "80"  # 20 epochs of 4 steps: long enough to be killed after the first epoch's checkpoint


def _train(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "stpatch.cli", "train", *extra, "--run-dir", str(run_dir)]


def _weights(run_dir: Path) -> dict:
    return read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["state_dict"]


def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed"
    last = killed / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen(_train(killed, *TINY, "--max-steps", STEPS), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not last.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert last.is_file(), proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "no checkpoint in 120 s"
    # a write caught mid-way: the temporary that a killed writer leaves beside the intact checkpoint
    orphan = last.with_name(".last.tmp-999999999-1.ckpt")
    orphan.write_bytes(b"half a checkpoint")
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL  # killed, not finished
    step_at_kill = read_checkpoint(last)["global_step"]  # the intact file a crash leaves: loadable
    assert 0 < step_at_kill < int(STEPS)

    resumed = subprocess.run(_train(killed, "--resume", str(killed), "--no-evaluate"), env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert not orphan.exists()  # the resume cleared what the killed writer left
    assert not [p for p in killed.rglob("*") if ".tmp-" in p.name]
    assert read_checkpoint(last)["global_step"] == int(STEPS)

    straight = tmp_path / "straight"
    done = subprocess.run(_train(straight, *TINY, "--max-steps", STEPS), env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    a, b = _weights(killed), _weights(straight)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_remove_stale_temporaries_keeps_live_writers_and_targets(tmp_path):
    target = tmp_path / "sub" / "model.ckpt"
    target.parent.mkdir()
    target.write_bytes(b"whole")
    dead = target.with_name(".model.tmp-999999999-7.ckpt")
    live = target.with_name(f".model.tmp-{os.getpid()}-7.ckpt")  # this process still runs: maybe writing
    for p in (dead, live):
        p.write_bytes(b"part")
    assert remove_stale_temporaries(tmp_path) == [dead]
    assert sorted(p.name for p in target.parent.iterdir()) == sorted([target.name, live.name])
