"""`stpatch tune`: the search end to end on a tiny budget, its outputs, resuming, the budget, pruning, bad input."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import optuna
import pytest
import yaml
from typer.testing import CliRunner

from stpatch.cli import app
from stpatch.engine.config import ConfigError, load_config
from stpatch.tune import budget as budget_module
from stpatch.tune.pruning import TrialPruning
from stpatch.tune.space import (
    TuneSpaceError,
    default_space,
    space_from_dict,
    space_patches,
    time_patches,
    with_default,
)

runner = CliRunner()

# moving digits on a 16x16 grid, 4 -> 4 steps, a model of a few thousand weights: a trial is seconds
TINY = {
    "data": {"name": "digits", "t_in": 4, "t_out": 4, "batch_size": 8,
             "options": {"train_size": 64, "val_size": 24, "test_size": 8, "image_size": 16, "digit_size": 8, "seq_len": 8}},
    "model": {"name": "stpnet", "dims": [8, 16], "attn_depth": 1},
    "train": {"max_epochs": 5, "lr": 0.001, "seed": 0, "progress": False},
}
BUDGET = 60  # seconds for the whole tune below


def write_config(folder: Path, values: dict = TINY) -> Path:
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def invoke(*args: str):
    result = runner.invoke(app, ["tune", *args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """One tune through the command line: (folder, seconds it took, output)."""
    folder = tmp_path_factory.mktemp("tune")
    config = write_config(folder)
    out = folder / "out"
    mp = pytest.MonkeyPatch()
    # the command counts its budget from the process start; inside pytest the process is older than the tune
    start = time.time()
    mp.setattr(budget_module, "process_start", lambda: start)
    try:
        code, output = invoke("--config", str(config), "--budget", str(BUDGET), "--trial-budget", "2",
                              "--val-every", "4", "--val-batches", "1", "--out", str(out))
    finally:
        mp.undo()
    assert code == 0, output
    return out, time.time() - start, output


def read_trials(out: Path) -> list[dict]:
    with open(out / "trials.csv") as f:
        return list(csv.DictReader(f))


def test_tune_writes_its_outputs(tuned):
    out, _, output = tuned
    for name in ("trials.csv", "best.yaml", "val_loss_vs_patch.png", "study.db", "config.yaml", "tune.yaml"):
        assert (out / name).is_file(), name
    assert (out / "val_loss_vs_patch.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = read_trials(out)
    assert len(rows) >= 2, output
    assert list(rows[0])[:6] == ["number", "state", "val_loss", "steps", "seconds", "default"]
    assert {"model.patch", "model.dims", "model.attn_depth", "model.conv_depths", "train.lr"} <= set(rows[0])
    # the first trial is the config as it is, and it finished
    assert rows[0]["default"] == "True" and rows[0]["state"] == "complete"
    assert yaml.safe_load(rows[0]["model.patch"]) == [2, 4, 4] and yaml.safe_load(rows[0]["model.dims"]) == [8, 16]
    assert sum(r["default"] == "True" for r in rows) == 1
    assert "| # | state | val_loss" in output and "best: trial #" in output
    # no trial's checkpoints are kept; each trial trained through the normal path (its config and metrics)
    assert not list(out.glob("trials/*/checkpoints/*.ckpt"))
    assert (out / "trials" / "0000" / "config.yaml").is_file() and (out / "trials" / "0000" / "metrics.csv").is_file()


def test_best_is_no_worse_than_default_and_trainable(tuned, tmp_path):
    out, _, _ = tuned
    rows = read_trials(out)
    complete = [r for r in rows if r["state"] == "complete"]
    best = min(complete, key=lambda r: float(r["val_loss"]))
    default = next(r for r in rows if r["default"] == "True")
    assert float(best["val_loss"]) <= float(default["val_loss"])
    # best.yaml is the best trial's config: a whole config the reader accepts, with the best values
    config = load_config(out / "best.yaml")
    assert config.model["name"] == "stpnet" and config.data.name == "digits"
    assert config.run_dir is None and config.train.max_epochs == 5  # the config's own stopping rule, not the trial's
    if best["default"] != "True":
        assert config.model["patch"] == yaml.safe_load(best["model.patch"])
        assert math.isclose(config.train.lr, float(best["train.lr"]), rel_tol=1e-5)
    assert f"trial #{best['number']}" in (out / "best.yaml").read_text().splitlines()[0]
    from stpatch.engine.training import train

    result = train(out / "best.yaml", [f"run_dir={tmp_path / 'run'}", "train.max_steps=1", "train.limit_val_batches=1"])
    assert result.best_checkpoint.is_file()


def test_tune_stays_within_its_budget(tuned):
    _, seconds, output = tuned
    # trials start only while they fit; the slack covers one trial's estimate being short
    assert seconds <= BUDGET + 10, output


def test_resume_adds_trials_to_the_same_study(tuned, monkeypatch):
    out, _, _ = tuned
    start = time.time()
    monkeypatch.setattr(budget_module, "process_start", lambda: start)
    before = read_trials(out)
    code, output = invoke("--resume", str(out), "--budget", "00:01:00", "--n-trials", "1")
    assert code == 0, output
    after = read_trials(out)
    assert len(after) == len(before) + 1, output
    assert sum(r["default"] == "True" for r in after) == 1  # the default is not run again


def test_refuses_a_folder_that_holds_a_tune(tuned):
    out, _, _ = tuned
    code, output = invoke("--config", str(out / "config.yaml"), "--budget", "60", "--out", str(out))
    assert code == 2 and "already holds a tune" in output and "--resume" in output


# --------------------------------------------------------------------------- pruning


class FakeTrial:
    def __init__(self, prune_from: int | None = None):
        self.reports: list[tuple[float, int]] = []
        self.prune_from = prune_from

    def report(self, value, step):
        self.reports.append((value, step))

    def should_prune(self):
        return self.prune_from is not None and self.reports[-1][1] >= self.prune_from


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_pruning_reports_the_best_so_far_on_a_time_grid():
    trial, clock = FakeTrial(), FakeClock()
    callback = TrialPruning(trial, rung_seconds=10, n_rungs=4, clock=clock)
    callback.on_train_start(None, None)
    clock.now += 5
    callback.observe(0.9, 10)          # before the first rung: recorded, not reported
    assert trial.reports == []
    clock.now += 21                    # 26 s: rungs 1 and 2 have passed since the last report
    callback.observe(1.2, 20)
    assert trial.reports == [(0.9, 1), (0.9, 2)]  # the best so far, at each rung
    clock.now += 100                   # far past the budget: capped below the last rung
    callback.observe(0.5, 30)
    assert trial.reports[-1] == (0.5, 3)
    assert callback.finish(0.4) == 0.4 and trial.reports[-1] == (0.4, 4)
    assert [h[2] for h in callback.history] == [0.9, 1.2, 0.5]


def test_pruning_raises_trial_pruned_when_told():
    trial, clock = FakeTrial(prune_from=2), FakeClock()
    callback = TrialPruning(trial, rung_seconds=10, n_rungs=4, clock=clock)
    callback.on_train_start(None, None)
    clock.now += 11
    callback.observe(1.0, 5)  # rung 1: the fake pruner waits
    clock.now += 10
    with pytest.raises(optuna.TrialPruned, match="rung 2/4"):
        callback.observe(1.0, 10)
    assert callback.pruned_at == 2


def test_median_pruner_prunes_a_worse_trial_at_the_same_rung():
    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2))
    for losses in ([0.5, 0.4, 0.3, 0.2], [0.6, 0.5, 0.4, 0.3]):
        trial = study.ask()
        for rung, loss in enumerate(losses, 1):
            trial.report(loss, rung)
        study.tell(trial, losses[-1])
    clock = FakeClock()
    callback = TrialPruning(study.ask(), rung_seconds=10, n_rungs=4, clock=clock)
    callback.on_train_start(None, None)
    clock.now += 11
    callback.observe(0.9, 5)  # rung 1: within the warm-up, never pruned
    clock.now += 10
    with pytest.raises(optuna.TrialPruned):
        callback.observe(0.8, 10)  # rung 2: 0.8 against the median 0.45 of the finished trials


class RecordingTrial(FakeTrial):
    def __init__(self):
        super().__init__()
        self.user_attrs: dict = {}

    def set_user_attr(self, key, value):
        self.user_attrs[key] = value


def test_a_trial_trains_through_train_and_is_scored_on_the_whole_validation_split(tmp_path, monkeypatch):
    from stpatch.engine.module import ForecastModule
    from stpatch.tune.trial import TrialSettings, run_trial

    batches = {"fit": 0, "validate": 0}
    real = ForecastModule.validation_step

    def counting(module, batch, batch_idx):
        batches[module.trainer.state.fn.value] += 1
        return real(module, batch, batch_idx)

    monkeypatch.setattr(ForecastModule, "validation_step", counting)
    trial = RecordingTrial()
    outcome = run_trial(tiny_config(), {"model.patch": [1, 4, 4]}, TrialSettings(seconds=3, val_every=2, val_batches=1),
                        tmp_path / "t", trial)
    # validations inside fit read one batch each, after every 2 steps; the closing one reads all 3 (24 windows / 8)
    assert batches["validate"] == 3
    # (Lightning may validate once more when the budget stops training mid-epoch)
    assert outcome.steps >= 2 and outcome.steps // 2 <= batches["fit"] <= outcome.steps // 2 + 1
    assert math.isfinite(outcome.value) and trial.reports[-1] == (outcome.value, 4)
    assert trial.user_attrs["steps"] == outcome.steps
    trained = load_config(tmp_path / "t" / "config.yaml")
    assert trained.model["patch"] == [1, 4, 4] and trained.train.max_time == "3" and trained.train.limit_train_batches == 2
    assert not (tmp_path / "t" / "checkpoints").exists()


def test_a_trial_still_training_at_the_deadline_is_stopped_unscored(tmp_path):
    from stpatch.tune.trial import TrialCut, TrialSettings, run_trial

    trial = RecordingTrial()
    started = time.monotonic()
    with pytest.raises(TrialCut, match="deadline"):
        run_trial(tiny_config(), {}, TrialSettings(seconds=60, val_every=2, val_batches=1), tmp_path / "t", trial,
                  stop_at=time.time())
    assert time.monotonic() - started < 60  # it did not train its 60 s budget
    assert trial.user_attrs["steps"] >= 1 and not (tmp_path / "t" / "checkpoints").exists()


def test_budget_keeps_time_for_the_end():
    clock = budget_module.Budget(100.0, started=time.time(), reserve=10.0, first_overhead=20.0)
    assert clock.fits(60) and not clock.fits(75)  # 60 + 20 + 10 <= 100 < 75 + 20 + 10
    assert math.isclose(clock.stop_training_at(), clock.deadline - 10 - 10)  # half the first guess after training
    clock.record(trial_wall=50.0, trained=30.0, after_fit=4.0)
    assert clock.overhead() == 20.0 and math.isclose(clock.stop_training_at(), clock.deadline - 14)
    with pytest.raises(ValueError, match="HH:MM:SS"):
        budget_module.parse_budget("0")
    assert budget_module.parse_budget("00:15:00") == 900.0


# --------------------------------------------------------------------------- the space


def tiny_config(**model):
    from stpatch.engine.config import config_from_dict

    values = yaml.safe_load(yaml.safe_dump(TINY))
    values["model"].update(model)
    return config_from_dict(values)


def test_default_space_patches_fit_the_data():
    assert time_patches(10) == [1, 2, 5] and time_patches(12) == [1, 2, 3, 4, 6]
    assert space_patches(64, 64) == [4, 8, 16]
    assert space_patches(33, 49) == [4, 8, 16]  # padded by the model where they do not divide
    space = default_space(tiny_config(), t_in=10, grid=(64, 64))
    assert len(space["model.patch"].choices) == 9 and [2, 8, 8] in space["model.patch"].choices
    assert space["train.lr"].log and space["train.lr"].low == 1e-4


def test_the_config_value_joins_the_space():
    space = space_from_dict({"model.dims": [[16, 32]], "train.lr": {"low": 1e-2, "high": 1e-1, "log": True}},
                            tiny_config())
    widened, notes = with_default(space, {"model.dims": [8, 16], "train.lr": 1e-3})
    assert widened["model.dims"].choices == ([8, 16], [16, 32])
    assert widened["train.lr"].low == 1e-3 and len(notes) == 2


@pytest.mark.parametrize("space, words", [
    ({"model.dimz": [[8, 16]]}, ["model.dimz", "takes no option 'dimz'", "dims"]),
    ({"train.lrr": [0.1]}, ["train.lrr", "not a config key", "lr"]),
    ({"optimizer.lr": [0.1]}, ["expected section.key", "data, model or train"]),
    ({"train.max_time": ["00:01:00"]}, ["reserved", "remove it"]),
    ({"train.lr": {"low": 0.1, "high": 0.01}}, ["expected a range", "L < H"]),
    ({"train.lr": []}, ["non-empty list"]),
    ({"train.lr": ["fast"]}, ["'fast' makes an invalid config", "train.lr must be float"]),
])
def test_bad_spaces_say_what_was_expected(space, words):
    with pytest.raises(TuneSpaceError) as err:
        space_from_dict(space, tiny_config())
    for word in words:
        assert word in str(err.value)


def test_a_model_without_patch_is_refused():
    from stpatch.engine.config import config_from_dict

    values = yaml.safe_load(yaml.safe_dump(TINY))
    values["model"] = {"name": "linear"}
    with pytest.raises(TuneSpaceError, match="takes no `patch`.*give --space"):
        default_space(config_from_dict(values), t_in=4, grid=(16, 16))
    # convlstm's patch is one spatial size: the default space offers sizes, not tubelets
    values["model"] = {"name": "convlstm"}
    assert default_space(config_from_dict(values), t_in=4, grid=(64, 64))["model.patch"].choices == (4, 8, 16)


def test_command_line_bad_input(tmp_path, monkeypatch):
    start = time.time()
    monkeypatch.setattr(budget_module, "process_start", lambda: start)
    config = write_config(tmp_path)
    code, output = invoke("--config", str(config), "--budget", "8", "--trial-budget", "5", "--out", str(tmp_path / "a"))
    assert code == 2 and "too short for one trial" in output and "expected at least" in output
    code, output = invoke("--config", str(config), "--budget", "half an hour")
    assert code == 2 and "HH:MM:SS" in output
    bad = tmp_path / "space.yaml"
    bad.write_text("model.patch: [[2, 4, 4], [0, 4, 4]]\n")
    code, output = invoke("--config", str(config), "--budget", "60", "--space", str(bad), "--out", str(tmp_path / "b"))
    assert code == 2 and "[0, 4, 4]" in output and "remove them from the space" in output
    linear = tmp_path / "linear.yaml"
    linear.write_text(yaml.safe_dump({**TINY, "model": {"name": "linear"}}))
    code, output = invoke("--config", str(linear), "--budget", "60", "--out", str(tmp_path / "c"))
    assert code == 2 and "takes no `patch`" in output, output
    assert not (tmp_path / "a" / "study.db").exists()


def test_config_errors_surface_before_any_training(tmp_path):
    config = write_config(tmp_path)
    code, output = invoke("--config", str(config), "--budget", "60", "--set", "train.lrr=0.1")
    assert code == 2 and "unknown key(s) config.train.lrr" in output
    assert issubclass(TuneSpaceError, ConfigError)


def test_help_names_the_options():
    code, output = invoke("--help")
    assert code == 0
    for option in ("--budget", "--trial-budget", "--space", "--resume", "--pruner", "--out"):
        assert option in output
