"""train.ema_decay: an exponential moving average of the weights for validation and the checkpoints."""

from __future__ import annotations

import pytest
import torch
from tests.test_engine_run import CrashAtEpoch, tiny_grid_config

from stpatch.engine.checkpoint import read_checkpoint
from stpatch.engine.config import ConfigError, load_config
from stpatch.engine.ema import RAW_KEY, WeightEMA
from stpatch.engine.training import train


class _Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(3))
        self.frozen = torch.nn.Parameter(torch.zeros(2), requires_grad=False)
        self.register_buffer("fitted", torch.zeros(2))


def test_average_follows_the_formula_and_leaves_buffers_and_frozen_weights_alone():
    toy, ema = _Toy(), WeightEMA(0.5)
    ema.on_fit_start(None, toy)
    expected = torch.zeros(3)
    for step, value in enumerate([4.0, 2.0, 8.0, 8.0]):
        with torch.no_grad():
            toy.w.fill_(value)
            toy.fitted.fill_(value)
        ema.on_train_batch_end(None, toy, None, None, step)
        d = min(0.5, (1 + step) / (10 + step))  # the warm-up keeps the first steps from averaging with init
        expected = d * expected + (1 - d) * value
        torch.testing.assert_close(ema.shadow["w"], expected)
    assert set(ema.shadow) == {"w"}  # neither the frozen parameter nor the buffer is averaged
    # a checkpoint holds the average as the weights and the raw ones beside them
    checkpoint = {"state_dict": dict(toy.state_dict())}
    ema.on_save_checkpoint(None, toy, checkpoint)
    torch.testing.assert_close(checkpoint["state_dict"]["w"], expected)
    torch.testing.assert_close(checkpoint[RAW_KEY]["w"], torch.full((3,), 8.0))
    torch.testing.assert_close(checkpoint["state_dict"]["fitted"], torch.full((2,), 8.0))


def test_decay_outside_zero_one_is_refused_with_the_range():
    with pytest.raises(ConfigError, match=r"ema_decay must be in \[0, 1\)"):
        load_config(None, ["train.ema_decay=1.0"])
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        WeightEMA(0.0)


def test_checkpoints_hold_the_average_and_resume_equals_uninterrupted(tmp_path):
    def cfg(name):  # two epochs of two steps; a narrow model keeps it to seconds
        config = tiny_grid_config(tmp_path / name, max_epochs=2, ema_decay=0.9, limit_train_batches=2,
                                  limit_val_batches=1)
        return {**config, "model": {"name": "stpnet", "dims": [8, 16], "attn_depth": 1, "heads": 1}}

    full = train(cfg("full"))
    last = read_checkpoint(full.last_checkpoint)
    raw, state = last[RAW_KEY], last["state_dict"]
    assert raw.keys() <= state.keys()
    assert any(not torch.equal(raw[k], state[k]) for k in raw), "the checkpoint's weights are not the average"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg("parts"), callbacks=[CrashAtEpoch(1)])
    resumed = read_checkpoint(train(cfg("parts"), resume=True).last_checkpoint)
    for key in state:  # the average and the raw weights both continue exactly
        torch.testing.assert_close(state[key], resumed["state_dict"][key], msg=f"{key} differs after resume")
    for key in raw:
        torch.testing.assert_close(raw[key], resumed[RAW_KEY][key], msg=f"raw {key} differs after resume")
