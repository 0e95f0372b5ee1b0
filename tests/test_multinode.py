"""Two machines, played by two processes on 127.0.0.1: ``train.num_nodes`` reaches Lightning's DDP.

Each process is started the way a cluster starts one per machine (``MASTER_ADDR``, ``MASTER_PORT``,
``NODE_RANK``, ``WORLD_SIZE``; CPU, gloo) and runs :func:`stpatch.train` with ``num_nodes=2``,
``devices=1``, ``strategy=ddp``, recording which windows (sample indices) it trains on at every step.
Then a single process trains from the same initial weights on the union of both ranks' batches at
each step (the same global batch, 2 x the batch per rank; DDP averages the ranks' gradients, which
equals the gradient of the mean loss over the union), and its weights must match. Each node has its
own run directory, as on machines without a shared disk: rank 1's must stay empty.

This file is also the node's script: ``python tests/test_multinode.py SPEC_JSON``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

SEED = 0
PER_RANK = 2  # windows per rank and step
STEPS = 6  # 16 training windows / (2 ranks x 2) = 4 steps per epoch: the run crosses an epoch boundary
TIMEOUT_S = 50  # for both node processes together; they are killed after it
# float tolerance of the comparison (summation order differs between a gloo all-reduce and one batch)
ATOL = 1e-5


def _config(run_dir: Path, batch_size: int, num_nodes: int) -> dict:
    return {
        "data": {"name": "digits", "t_in": 4, "t_out": 2, "batch_size": batch_size,
                 "options": {"train_size": 16, "val_size": 4, "test_size": 4, "image_size": 16, "digit_size": 7}},
        # every weight of a ConvLSTM gets a real gradient; in stpnet a conv bias before a GroupNorm gets only
        # rounding noise, which Adam scales up to a step of ~lr/100 that differs between any two runs
        "model": {"name": "convlstm", "hidden": [4, 4]},
        # a constant rate of 1e-2 moves the weights far beyond ATOL in 6 steps
        "train": {"max_steps": STEPS, "max_epochs": 10, "seed": SEED, "lr": 1e-2, "scheduler": "none",
                  "accelerator": "cpu", "devices": 1, "num_nodes": num_nodes,
                  "strategy": "ddp" if num_nodes > 1 else "auto", "progress": False, "limit_val_batches": 1},
        "eval": {"figures": False},
        "run_dir": str(run_dir),
    }


# --------------------------------------------------------------------------- the node's side

def _node_main(spec: dict) -> None:
    """One node: train, record the windows of every step and the weights, evaluate if main."""
    import lightning.pytorch as pl

    from stpatch.engine.evaluation import evaluate
    from stpatch.engine.training import is_main_process, train

    out = Path(spec["out"])

    class Recorder(pl.Callback):
        def __init__(self) -> None:
            self.steps: list[list[int]] = []

        def on_train_start(self, trainer, module) -> None:
            if trainer.is_global_zero:  # after DDP's broadcast: the weights every rank starts from
                torch.save(module.state_dict(), out / "init.pt")

        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
            self.steps.append(batch["index"].tolist())

        def on_train_end(self, trainer, module) -> None:
            rank = trainer.global_rank
            torch.save(module.state_dict(), out / f"weights{rank}.pt")
            self.info = {"rank": rank, "world_size": trainer.world_size, "num_nodes": trainer.num_nodes,
                         "strategy": type(trainer.strategy).__name__, "steps": self.steps}

    recorder = Recorder()
    result = train(spec["config"], callbacks=[recorder])
    evaluated = is_main_process()
    if evaluated:  # as `stpatch train` does after training
        evaluate(result.run_dir, report=False, figures=False)
    (out / f"rank{recorder.info['rank']}.json").write_text(json.dumps({**recorder.info, "evaluated": evaluated}))


# --------------------------------------------------------------------------- the test's side

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch_nodes(tmp_path: Path) -> tuple[Path, list[Path]]:
    out = tmp_path / "out"
    out.mkdir()
    port = _free_port()
    run_dirs = [tmp_path / f"node{r}" / "run" for r in range(2)]
    base = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "GROUP_RANK", "SLURM_PROCID")}
    procs = []
    try:
        for node in range(2):
            spec = {"out": str(out), "config": _config(run_dirs[node], PER_RANK, num_nodes=2)}
            env = {**base, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "NODE_RANK": str(node),
                   "WORLD_SIZE": "2", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
            procs.append(subprocess.Popen([sys.executable, __file__, json.dumps(spec)], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        logs = [p.communicate(timeout=TIMEOUT_S)[0] for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        logs = [p.communicate()[0] for p in procs]
        pytest.fail(f"the two nodes did not finish within {TIMEOUT_S} s; their output ends:\n"
                    + "\n---\n".join(log[-3000:] for log in logs))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for node, (p, log) in enumerate(zip(procs, logs)):
        assert p.returncode == 0, f"node {node} failed (exit {p.returncode}); its output ends:\n{log[-4000:]}"
    return out, run_dirs


def _reference(tmp_path: Path, batches: list[list[int]], init: dict) -> dict:
    """One process, the same initial weights and trainer settings, trained on ``batches`` in order."""
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader

    from stpatch.data.windows import collate
    from stpatch.engine.config import config_from_dict
    from stpatch.engine.module import ForecastModule
    from stpatch.engine.training import _trainer
    from stpatch.engine.wiring import data_meta, make_data

    config = config_from_dict(_config(tmp_path / "single", 2 * PER_RANK, num_nodes=1))
    pl.seed_everything(SEED, verbose=False)
    dm = make_data(config)
    dm.setup("fit")
    module = ForecastModule(config.model, data_meta(dm), asdict(config.train))
    module.load_state_dict(init)
    loader = DataLoader(dm.train_dataset, batch_sampler=batches, collate_fn=collate)
    trainer = _trainer(config, tmp_path / "single", [], enable_progress=False)
    trainer.fit(module, train_dataloaders=loader)
    return module.state_dict()


def _max_diff(a: dict, b: dict) -> tuple[float, str]:
    assert a.keys() == b.keys()
    return max((float((a[k].double() - b[k].double()).abs().max()), k) for k in a if a[k].is_floating_point())


def test_two_nodes_share_the_windows_and_match_one_process(tmp_path):
    out, run_dirs = _launch_nodes(tmp_path)
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]

    # the config reached Lightning: two processes in one DDP group, one per node
    for r, info in enumerate(ranks):
        assert (info["rank"], info["world_size"], info["num_nodes"]) == (r, 2, 2)
        assert info["strategy"] == "DDPStrategy"
        assert len(info["steps"]) == STEPS and all(len(b) == PER_RANK for b in info["steps"])

    # different windows: disjoint at every step and within each epoch (4 steps = all 16 windows once)
    a, b = ranks[0]["steps"], ranks[1]["steps"]
    for s in range(STEPS):
        assert not set(a[s]) & set(b[s]), f"step {s}: both ranks trained on windows {set(a[s]) & set(b[s])}"
    epoch0 = [i for s in range(4) for i in a[s] + b[s]]
    assert sorted(epoch0) == list(range(16)), f"the first epoch did not cover the 16 windows once: {sorted(epoch0)}"

    # both ranks end with the same weights, and they are the run's last checkpoint
    w0, w1 = (torch.load(out / f"weights{r}.pt") for r in range(2))
    assert _max_diff(w0, w1)[0] == 0.0
    last = torch.load(run_dirs[0] / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert _max_diff(w0, last)[0] == 0.0

    # one process, the union of the ranks' batches at each step: the same weights within float tolerance
    init = torch.load(out / "init.pt")
    single = _reference(tmp_path, [a[s] + b[s] for s in range(STEPS)], init)
    moved, _ = _max_diff(init, w0)
    assert moved > 1000 * ATOL, f"training hardly moved the weights ({moved:.2e}); the comparison would prove nothing"
    diff, key = _max_diff(single, w0)
    assert diff < ATOL, f"{key}: DDP on two nodes and one process on the same global batches differ by {diff:.2e}"

    # rank 0 alone wrote the run and evaluated; rank 1's run directory (its own disk) got nothing
    assert [info["evaluated"] for info in ranks] == [True, False]
    for name in ("config.yaml", "profile.json", "metrics.csv", "eval.json", "checkpoints/best.ckpt"):
        assert (run_dirs[0] / name).is_file(), name
    written = sorted(str(p.relative_to(run_dirs[1].parent)) for p in run_dirs[1].parent.rglob("*"))
    assert written == [], f"rank 1 wrote {written}"


def test_num_nodes_devices_and_strategy_reach_the_trainer(tmp_path, monkeypatch):
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    from stpatch.engine.config import config_from_dict
    from stpatch.engine.training import _trainer

    monkeypatch.setenv("NODE_RANK", "1")  # as on the second machine; nothing connects before fit
    # the trainer sets Lightning's process-wide rank to 1, which would silence rank-0-only work
    # (metrics.csv, logs) in every later test of this process: restore it afterwards
    monkeypatch.setattr(rank_zero_only, "rank", getattr(rank_zero_only, "rank", 0))
    config = config_from_dict(_config(tmp_path / "run", PER_RANK, num_nodes=3))
    trainer = _trainer(config, tmp_path / "run", [], enable_progress=False)
    assert (trainer.num_nodes, trainer.num_devices, trainer.world_size) == (3, 1, 3)
    assert type(trainer.strategy).__name__ == "DDPStrategy" and trainer.global_rank == 1
    assert not trainer.is_global_zero


def test_num_nodes_must_be_positive():
    from stpatch.engine.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match="train.num_nodes must be 1 or more"):
        config_from_dict({"train": {"num_nodes": 0}})


def test_every_machine_agrees_on_the_run_directory(monkeypatch):
    from stpatch.engine.config import config_from_dict
    from stpatch.engine.distributed import RUN_DIR_ENV, shared_run_dir
    from stpatch.engine.training import _run_dir

    for name in ("SLURM_JOB_ID", "TORCHELASTIC_RUN_ID", "WORLD_SIZE", "SLURM_NTASKS", RUN_DIR_ENV):
        monkeypatch.delenv(name, raising=False)
    two = config_from_dict({"train": {"num_nodes": 2}})
    with pytest.raises(ValueError, match="needs run_dir"):  # time stamps differ between machines
        _run_dir(two)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    assert _run_dir(two) == Path("runs/digits-stpconv-job4242")  # the default model names the folder
    # the processes Lightning starts on one machine take the folder of the process that started them
    with shared_run_dir(Path("runs/here")):
        assert _run_dir(config_from_dict({})) == Path("runs/here")
    assert RUN_DIR_ENV not in os.environ


@pytest.mark.parametrize("env, main", [({}, True), ({"NODE_RANK": "1"}, False), ({"RANK": "3"}, False),
                                       ({"SLURM_PROCID": "1"}, False), ({"LOCAL_RANK": "0", "RANK": "0"}, True)])
def test_only_rank_zero_is_the_main_process(monkeypatch, env, main):
    from stpatch.engine.distributed import is_main_process

    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert is_main_process() is main


if __name__ == "__main__":
    _node_main(json.loads(sys.argv[1]))
