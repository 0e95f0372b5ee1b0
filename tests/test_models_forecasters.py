"""Every registered forecaster: shapes (incl. non-divisible sizes, T_out != T_in), backward, overfit."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from stpatch.models import create_model, list_models, profile_model
from stpatch.nn import attention_importance, capture_attention

GRID_MODELS = list_models(kind="grid")
SENSOR_MODELS = list_models(kind="sensor")
GRID_SIZES = [(16, 16), (18, 22), (7, 5), (1, 1)]
N_NODES = 10


def build(name: str, kind: str, c: int = 2, t_in: int = 5, t_out: int = 3, **options):
    extra = {"num_nodes": N_NODES} if kind == "sensor" else {}
    return create_model(name, in_channels=c, t_in=t_in, t_out=t_out, **extra, **options)


def skip_without_radar_extra(name: str, err: Exception) -> None:
    """A model that needs the radar extra (pysteps + OpenCV: ``extrapolation``) is skipped when that
    extra is absent, and fails like any other when it is installed."""
    missing = isinstance(err, ImportError) or type(err).__name__ == "MissingOptionalDependency"
    if missing and importlib.util.find_spec("pysteps") is None:
        pytest.skip(f"{name} needs the radar extra (pip install 'stpatch[radar]'): {err}")


def make(name: str, kind: str, c: int = 2, t_in: int = 5, t_out: int = 3, **options):
    try:
        return build(name, kind, c, t_in, t_out, **options)
    except Exception as err:
        skip_without_radar_extra(name, err)
        raise


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def run(model: torch.nn.Module, x: torch.Tensor, **kw) -> torch.Tensor:
    try:
        return model(x, **kw)
    except Exception as err:
        skip_without_radar_extra(type(model).__name__, err)
        raise


@pytest.mark.parametrize("name", GRID_MODELS)
def test_grid_model_shapes_and_backward(name):
    torch.manual_seed(0)
    model = make(name, "grid")
    assert model.kind == "grid"
    for h, w in GRID_SIZES:
        x = torch.randn(2, 5, 2, h, w, requires_grad=True)
        y = run(model, x)
        assert y.shape == (2, 3, 2, h, w), (name, h, w)
        assert torch.isfinite(y).all()
    if not list(model.parameters()):
        return  # a model with no parameter at all (not even an anchor) is not trained
    y.square().mean().backward()  # works for the weight-free baselines too (zero-size anchor)
    grads = [p.grad for p in model.parameters() if p.numel()]
    assert all(g is not None for g in grads)
    if n_params(model):
        assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", GRID_MODELS)
@pytest.mark.parametrize("t_in,t_out", [(4, 9), (6, 1)])
def test_grid_model_any_horizon(name, t_in, t_out):
    model = make(name, "grid", c=1, t_in=t_in, t_out=t_out)
    with torch.no_grad():
        assert run(model, torch.randn(1, t_in, 1, 12, 20)).shape == (1, t_out, 1, 12, 20)


@pytest.mark.parametrize("name", SENSOR_MODELS)
def test_sensor_model_shapes_and_backward(name):
    torch.manual_seed(0)
    model = make(name, "sensor", t_in=6, t_out=4)
    assert model.kind == "sensor"
    x = torch.randn(3, 6, N_NODES, 2)
    y = run(model, x)
    assert y.shape == (3, 4, N_NODES, 2)
    y.square().mean().backward()


def test_sensor_model_with_coords_adjacency_and_time_features():
    torch.manual_seed(0)
    n = 23
    coords = torch.rand(n, 2)
    adj = (torch.rand(n, n) > 0.7).float()
    model = create_model("stpnet_sensor", in_channels=1, t_in=7, t_out=5, num_nodes=n, coords=coords.numpy(),
                         adjacency=adj.numpy(), group_size=4)
    assert model.groups.num_groups == 6 and model.graph_mix is not None
    x = torch.randn(2, 7, n, 1)
    tod = torch.rand(2, 7)
    dow = torch.randint(0, 7, (2, 7))
    y = model(x, tod=tod, dow=dow)
    assert y.shape == (2, 5, n, 1)
    y.mean().backward()
    assert model.tod_embed.weight.grad is not None and model.dow_embed.weight.grad is not None
    with pytest.raises(ValueError, match="tod/dow"):
        model(x, tod=torch.rand(2, 3))
    options = dict(use_dow=False, head_layers=2, time_patch=2)
    lean = create_model("stpnet_sensor", in_channels=1, t_in=7, t_out=5, num_nodes=n, **options)
    assert lean.dow_embed is None and len(lean.head_layers) == 2
    assert lean(x, tod=tod, dow=dow).shape == (2, 5, n, 1)
    with pytest.raises(ValueError, match="N=23"):
        model(torch.randn(2, 7, 5, 1))
    with pytest.raises(ValueError, match="num_nodes"):
        create_model("stpnet_sensor", in_channels=1, t_in=7, t_out=5)


def test_stid_uses_time_of_day_and_day_of_week_and_learns():
    torch.manual_seed(0)
    model = create_model("stid", in_channels=1, t_in=12, t_out=6, num_nodes=N_NODES)
    model.eval()
    x = torch.randn(4, 12, N_NODES, 1)
    tod = torch.rand(4, 12)
    dow = torch.randint(0, 7, (4, 12))
    out = model(x, tod=tod, dow=dow)
    assert out.shape == (4, 6, N_NODES, 1)
    assert not torch.allclose(out, model(x, tod=(tod + 0.5) % 1.0, dow=dow))
    assert not torch.allclose(out, model(x, tod=tod, dow=(dow + 1) % 7))
    assert not torch.allclose(out, model(x))  # without identities: zero embeddings
    with pytest.raises(ValueError, match="tod must be"):
        model(x, tod=torch.rand(4, 3))
    # the forecast depends on the time of day: a few steps of training lower the loss
    model.train()
    y = torch.sin(2 * torch.pi * tod[:, -1:, None, None]).expand(4, 6, N_NODES, 1) + 0.5 * x[:, -1:]
    first, last = _overfit(model, x, y, steps=60, tod=tod, dow=dow)
    assert last < first / 5, (first, last)


def _overfit(model, x, y, steps=100, lr=3e-3, factor=5.0, **fw):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    with torch.no_grad():
        first = torch.nn.functional.mse_loss(model(x, **fw), y).item()
    loss = first
    for _ in range(steps):
        opt.zero_grad()
        loss_t = torch.nn.functional.mse_loss(model(x, **fw), y)
        loss_t.backward()
        opt.step()
        loss = loss_t.item()
        if loss < first / factor:
            break
    return first, loss


def _target(x: torch.Tensor, t_out: int) -> torch.Tensor:
    """A forecast every model can learn: per location a fixed linear map of the window."""
    steps = torch.arange(t_out, dtype=x.dtype).reshape(1, t_out, *([1] * (x.ndim - 2)))
    return 0.6 * x[:, -1:] - 0.3 * x[:, :1] + 0.1 * steps


def trainable(names: list[str], kind: str) -> list[str]:
    """The models of ``names`` with weights to learn (the baselines have none, nothing to overfit);
    one whose extra is not installed is left out (its shape test says so)."""
    out = []
    for name in names:
        try:
            model = build(name, kind, c=1)
        except ImportError:
            continue
        if n_params(model) > 0:
            out.append(name)
    return out


def test_only_the_baselines_have_no_weights_to_learn():
    baselines = {"climatology", "extrapolation", "linear", "persistence"}
    for names, kind in ((GRID_MODELS, "grid"), (SENSOR_MODELS, "sensor")):
        fixed = set(names) - set(trainable(names, kind))
        assert {"climatology", "linear", "persistence"} <= fixed <= baselines, (kind, fixed)


@pytest.mark.parametrize("name", trainable(GRID_MODELS, "grid"))
def test_grid_model_overfits_one_batch(name):
    torch.manual_seed(0)
    model = make(name, "grid", c=1, t_in=4, t_out=3)
    x = torch.randn(2, 4, 1, 12, 12)
    y = _target(x, 3)
    first, last = _overfit(model, x, y)
    assert last < first / 5, (name, first, last)


@pytest.mark.parametrize("name", trainable(SENSOR_MODELS, "sensor"))
def test_sensor_model_overfits_one_batch(name):
    torch.manual_seed(0)
    model = make(name, "sensor", c=1, t_in=6, t_out=4)
    x = torch.randn(4, 6, N_NODES, 1)
    y = _target(x, 4)
    first, last = _overfit(model, x, y)
    assert last < first / 5, (name, first, last)


def test_stpnet_attention_maps_and_features():
    model = create_model("stpnet_tiny", in_channels=1, t_in=4, t_out=2)
    x = torch.randn(2, 4, 1, 18, 22)
    with capture_attention(model) as maps:
        model(x)
    assert len(maps) == 2 and maps[0].name == "blocks.0.attn.passes.0"
    feats = model.forward_features(x)
    assert feats.shape[:4] == (2, 2, 3, 3)  # 18x22 -> 5x6 tokens -> 3x3 after one downsampling
    assert attention_importance(maps).shape == (2, 2, 3, 3)


def test_stpnet_options():
    x = torch.randn(1, 4, 3, 20, 20)
    for options in [
        dict(attention="divided"), dict(attention="axial"), dict(position="learned"), dict(position="none"),
        dict(conv_mode="causal"), dict(conv_mode="full", kernel=(3, 5, 5)), dict(patch=(1, 4, 4), residual=False),
        dict(dims=(16, 24, 32), heads=2), dict(out_channels=1, residual=False),
    ]:
        model = create_model("stpnet_tiny", in_channels=3, t_in=4, t_out=2, **options)
        out_c = options.get("out_channels", 3)
        assert model(x).shape == (1, 2, out_c, 20, 20), options


def test_stpnet_time_of_day_conditioning():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 1, 12, 14)
    tod = torch.rand(2, 5)
    model = create_model("stpnet_tiny", in_channels=1, t_in=5, t_out=2, use_tod=True, residual=False)
    assert not torch.allclose(model(x, tod=tod), model(x, tod=(tod + 0.3) % 1.0))
    assert model(x).shape == (2, 2, 1, 12, 14)  # without tod: no conditioning
    with pytest.raises(ValueError, match="tod must be"):
        model(x, tod=torch.rand(2, 3))
    plain = create_model("stpnet_tiny", in_channels=1, t_in=5, t_out=2, residual=False)
    torch.testing.assert_close(plain(x, tod=tod), plain(x))  # off by default: tod is ignored


def test_residual_model_starts_as_persistence():
    model = create_model("stpnet_tiny", in_channels=1, t_in=4, t_out=3)
    x = torch.randn(2, 4, 1, 9, 13)
    torch.testing.assert_close(model(x), x[:, -1:].expand(2, 3, 1, 9, 13))


def test_grid_model_input_errors():
    model = create_model("stpnet_tiny", in_channels=2, t_in=4, t_out=3)
    with pytest.raises(ValueError, match="C=2"):
        model(torch.randn(1, 4, 3, 8, 8))
    with pytest.raises(ValueError, match="t_in=4"):
        model(torch.randn(1, 5, 2, 8, 8))
    with pytest.raises(ValueError, match="sensor"):
        model(torch.randn(1, 4, 10, 2))


def test_parameter_free_baselines_train_in_a_loop():
    for name in ["persistence", "climatology"]:
        model = create_model(name, in_channels=1, t_in=4, t_out=2)
        assert n_params(model) == 0 and model.has_parameters is False
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.randn(2, 4, 1, 8, 8)
        loss = (model(x) - x[:, :2]).square().mean()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("name,shape", [("stpnet_tiny", (2, 4, 1, 16, 16)), ("stpnet_sensor", (2, 6, 12, 1)),
                                        ("convlstm", (1, 3, 1, 12, 12))])
def test_profile_model_positive(name, shape):
    stats = profile_model(name, shape, t_out=2, repeats=1)
    assert set(stats) == {"params", "gflops_per_sample", "peak_memory_mb", "latency_ms"}
    assert all(v > 0 for v in stats.values()), stats
    train = profile_model(name, shape, t_out=2, repeats=1, backward=True)
    assert train["gflops_per_sample"] > stats["gflops_per_sample"]
    assert train["peak_memory_mb"] > stats["peak_memory_mb"]


def test_flop_counter_counts_cpu_attention():
    from stpatch.models import flop_counter

    q = torch.randn(1, 2, 64, 8)
    counter = flop_counter()
    with counter:
        torch.nn.functional.scaled_dot_product_attention(q, q, q)
    assert counter.get_total_flops() == 4 * 2 * 64 * 64 * 8


def test_stpnet_checkpointing_changes_memory_only_not_outputs_or_gradients():
    import torch

    from stpatch.models import create_model

    torch.manual_seed(0)
    plain = create_model("stpnet", in_channels=1, t_in=4, t_out=3, dims=(8, 16), heads=2, window=(2, 2, 2))
    ckpt = create_model("stpnet", in_channels=1, t_in=4, t_out=3, dims=(8, 16), heads=2, window=(2, 2, 2),
                        checkpointing=True)
    torch.nn.init.normal_(plain.head.proj.weight, std=0.1)  # a non-zero head: gradients reach every layer
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 4, 1, 32, 32)
    outs = []
    for model in (plain, ckpt):
        model.train()
        y = model(x)
        y.square().mean().backward()
        outs.append((y.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    torch.testing.assert_close(outs[0][0], outs[1][0])
    assert outs[0][1].keys() == outs[1][1].keys() and len(outs[0][1]) > 10
    for name in outs[0][1]:
        torch.testing.assert_close(outs[0][1][name], outs[1][1][name], msg=name)
    # and it recomputes: the conv network is started twice per training step
    calls = []
    handle = ckpt.convnet.register_forward_pre_hook(lambda *_: calls.append(1))  # recomputation stops early
    ckpt(x).sum().backward()
    handle.remove()
    assert len(calls) == 2
