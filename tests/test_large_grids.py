"""Large grids: activation checkpointing changes nothing but memory, bf16 trains, the grid bench reports."""

from __future__ import annotations

import math

import pytest
import torch

from stpatch.bench.grids import GridConfig, format_section, largest_square, measure
from stpatch.models import create_model


def _outputs_and_grads(model: torch.nn.Module, x: torch.Tensor, counted: torch.nn.Module) -> tuple:
    """Output, gradients of every parameter, and how often ``counted`` ran forward in one training step."""
    calls = []
    handle = counted.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # the same drop-path masks in both runs
        out = model(x)
        (out**2).mean().backward()
    finally:
        handle.remove()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, len(calls)


def _check_same(model: torch.nn.Module, x: torch.Tensor, counted: torch.nn.Module) -> None:
    with torch.no_grad():  # a non-zero head, so that every layer gets a gradient
        for p in model.parameters():
            if not p.abs().sum():
                p.normal_(0, 0.1)
    model.train()
    model.checkpointing = False
    out, grads, calls = _outputs_and_grads(model, x, counted)
    model.checkpointing = True
    out_ck, grads_ck, calls_ck = _outputs_and_grads(model, x, counted)
    # checkpointing really ran: the segment was started again in the backward pass (a pre-hook: the
    # recomputation stops as soon as it has what backward needs, before a forward hook would fire)
    assert (calls, calls_ck) == (1, 2)
    torch.testing.assert_close(out_ck, out, rtol=0, atol=1e-6)
    assert grads_ck.keys() == grads.keys() and len(grads) == len(list(model.parameters()))
    for name in grads:
        torch.testing.assert_close(grads_ck[name], grads[name], rtol=1e-5, atol=1e-6, msg=name)
    # inference (eval, no gradients) runs every segment once, checkpointing or not
    with torch.no_grad():
        assert _count_forward(model.eval(), x, counted) == 1


def _count_forward(model: torch.nn.Module, x: torch.Tensor, counted: torch.nn.Module) -> int:
    calls = []
    handle = counted.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        model(x)
    finally:
        handle.remove()
    return len(calls)


def test_stpnet_checkpointing_gives_the_same_outputs_and_gradients():
    torch.manual_seed(0)
    # 32x32, patch 4, one downsampling: a 2 x 4 x 4 token grid in (2, 2, 2) windows, shifted on block 2
    model = create_model("stpnet", in_channels=1, t_in=4, t_out=3, dims=(8, 16), heads=2, window=(2, 2, 2),
                         drop_path=0.2)
    x = torch.randn(2, 4, 1, 32, 32)
    assert model.blocks[0].attn.passes[0].layout((2, 4, 4)).num_cuboids > 1  # window attention, not joint
    _check_same(model, x, model.blocks[1])
    _check_same(model, x, model.convnet)


def test_convlstm_checkpointing_gives_the_same_outputs_and_gradients():
    torch.manual_seed(0)
    model = create_model("convlstm", in_channels=1, t_in=3, t_out=2, hidden=(4, 4))
    x = torch.randn(2, 3, 1, 12, 12)
    assert _count_forward(model.train(), x, model.encoder[0]) == 3  # one call per input step
    model.checkpointing = True
    calls = []
    handle = model.encoder[0].register_forward_pre_hook(lambda *_: calls.append(1))
    model.zero_grad(set_to_none=True)
    out_ck = model(x)
    (out_ck**2).mean().backward()
    handle.remove()
    grads_ck = {n: p.grad.clone() for n, p in model.named_parameters()}
    assert len(calls) == 6  # every step recomputed in the backward pass
    model.checkpointing = False
    model.zero_grad(set_to_none=True)
    out = model(x)
    (out**2).mean().backward()
    torch.testing.assert_close(out_ck, out, rtol=0, atol=1e-6)
    for name, p in model.named_parameters():
        torch.testing.assert_close(grads_ck[name], p.grad, rtol=1e-5, atol=1e-7, msg=name)


def test_checkpointing_is_a_model_option_of_the_config():
    from stpatch.engine.config import ConfigError, config_from_dict

    for name in ("stpnet", "stpnet_small", "convlstm"):
        assert config_from_dict({"model": {"name": name, "checkpointing": True}}).model["checkpointing"] is True
    with pytest.raises(ConfigError, match="model.checkpointng"):
        config_from_dict({"model": {"name": "stpnet", "checkpointng": True}})


def test_bf16_mixed_trains_through_lightning(tmp_path):
    import lightning.pytorch as pl

    from stpatch.engine.training import train

    class Probe(pl.Callback):
        def on_train_start(self, trainer, module):
            self.precision = trainer.precision
            self.dtypes = []
            self.handle = module.model.blocks[0].mlp.fc1.register_forward_hook(
                lambda mod, args, out: self.dtypes.append(out.dtype))

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.losses = getattr(self, "losses", []) + [float(outputs["loss"])]

        def on_train_end(self, trainer, module):
            self.handle.remove()
            self.head = module.model.head.proj.weight.detach().clone()

    probe = Probe()
    config = {"data": {"name": "digits", "t_in": 4, "t_out": 2, "batch_size": 2,
                       "options": {"train_size": 4, "val_size": 2, "test_size": 2, "image_size": 32, "digit_size": 14}},
              "model": {"name": "stpnet", "dims": [8, 16], "heads": 2, "checkpointing": True},
              "train": {"max_steps": 2, "precision": "bf16-mixed", "progress": False},
              "run_dir": str(tmp_path / "run")}
    result = train(config, callbacks=[probe])
    assert probe.precision == "bf16-mixed"
    assert torch.bfloat16 in probe.dtypes  # the blocks ran in bf16 (autocast), forward and recomputation
    assert len(probe.losses) == 2 and all(math.isfinite(v) for v in probe.losses)
    # the zero-initialised head learned something, in float32 weights
    assert probe.head.dtype == torch.float32 and probe.head.abs().sum() > 0 and torch.isfinite(probe.head).all()
    assert result.last_checkpoint.is_file()


def test_grid_cell_runs_in_its_own_process_and_reports_memory():
    row = measure(GridConfig("stpnet", "stpnet"), 32, steps=2, time_cap_s=60)
    assert row["status"] == "ok", row
    assert row["peak_mib"] >= row["ready_mib"] > 50 and row["step_s"] > 0 and row["steps_run"] == 2


def test_a_grid_cell_over_its_memory_cap_is_reported_not_raised():
    # 1024x1024 needs about 4 GiB; the 2 GiB cap on the address space refuses it
    row = measure(GridConfig("stpnet", "stpnet"), 1024, steps=1, time_cap_s=120, mem_cap_gib=2)
    assert row["status"] == "out of memory", row
    text = format_section([{**row, "size": 64, "ready_mib": 0.0}], [], None, (64,), 24.0, 2.0, 120.0, "cmd")
    assert "| 64x64 | out of memory (cap 2 GiB) |" in text


def test_largest_square_from_a_line_through_the_peaks():
    # peak = 300 MiB + 0.004 MiB per pixel: 24 GiB holds sqrt((24576 - 300) / 0.004) ~ 2463 pixels a side
    rows = [{"config": "m", "size": s, "status": "ok", "peak_mib": 300 + 0.004 * s * s} for s in (128, 256, 512)]
    rows.append({"config": "m", "size": 64, "status": "ok", "peak_mib": 9999.0})  # not among the 3 largest: left out
    rows.append({"config": "m", "size": 1024, "status": "out of memory", "peak_mib": None})  # not measured
    side, a, b = largest_square(rows, "m", 24 * 1024)
    assert side == int(math.sqrt((24 * 1024 - 300) / 0.004)) and a == pytest.approx(300) and b == pytest.approx(0.004)
    assert largest_square(rows[:1], "m", 1024) is None
