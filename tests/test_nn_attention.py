"""Cuboid spacetime attention: modes, masking, weights, capture and importance maps."""

from __future__ import annotations

import math

import pytest
import torch

from stpatch.nn import (
    ATTENTION_MODES,
    SpacetimeAttention,
    SpacetimeBlock,
    attention_importance,
    capture_attention,
    cuboid_layout,
)

GRIDS = [(2, 4, 4), (3, 5, 7)]  # the second divides no window below


@pytest.mark.parametrize("mode", ATTENTION_MODES)
@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("shift", [False, True])
def test_all_modes_run_and_weights_are_distributions(mode, grid, shift):
    torch.manual_seed(0)
    attn = SpacetimeAttention(16, heads=2, mode=mode, window=(2, 2, 3), shift=shift)
    x = torch.randn(2, *grid, 16)
    out, maps = attn(x, return_attention=True)
    assert out.shape == x.shape
    assert len(maps) == {"joint": 1, "divided": 2, "axial": 3, "window": 1}[mode]
    for m in maps:
        b, h, num, n, n2 = m.weights.shape
        assert (b, h, n) == (2, 2, n2) and num == m.layout.num_cuboids and n == m.layout.cuboid_volume
        assert (m.weights >= 0).all()
        torch.testing.assert_close(m.weights.sum(-1), torch.ones(b, h, num, n))
        valid = m.layout.valid_mask()
        padded_key = valid[:, :, None] & ~valid[:, None, :]  # real query, padded key
        assert m.weights[:, :, padded_key].abs().sum() == 0
        dense = m.dense()
        nt = math.prod(grid)
        torch.testing.assert_close(dense.sum(-1), torch.ones(2, 2, nt))  # every real query: a distribution
    # the explicit path and scaled_dot_product_attention agree
    torch.testing.assert_close(attn(x), out, rtol=1e-4, atol=1e-5)


def test_joint_weights_have_documented_shape():
    attn = SpacetimeAttention(8, heads=2, mode="joint")
    _, maps = attn(torch.randn(3, 2, 3, 4, 8), return_attention=True)
    assert maps[0].weights.shape == (3, 2, 1, 24, 24)
    torch.testing.assert_close(maps[0].dense(), maps[0].weights[:, :, 0])


@pytest.mark.parametrize("grid", GRIDS)
def test_window_covering_the_grid_equals_joint(grid):
    torch.manual_seed(1)
    joint = SpacetimeAttention(16, heads=4, mode="joint")
    window = SpacetimeAttention(16, heads=4, mode="window", window=grid, shift=True)
    window.load_state_dict(joint.state_dict())
    x = torch.randn(2, *grid, 16)
    out_j, maps_j = joint(x, return_attention=True)
    out_w, maps_w = window(x, return_attention=True)
    torch.testing.assert_close(out_w, out_j)
    torch.testing.assert_close(maps_w[0].dense(), maps_j[0].dense())
    # a window larger than the grid is clamped to it: joint again
    big = SpacetimeAttention(16, heads=4, mode="window", window=(9, 9, 9))
    big.load_state_dict(joint.state_dict())
    torch.testing.assert_close(big(x), out_j)


def test_window_attention_is_local():
    """A change at one token leaves tokens in other windows unchanged (one pass, no shift)."""
    attn = SpacetimeAttention(8, heads=2, mode="window", window=(1, 2, 2))
    x = torch.randn(1, 2, 4, 4, 8)
    x2 = x.clone()
    x2[0, 0, 0, 0] += 1.0
    diff = (attn(x) - attn(x2)).abs().sum(-1)[0]
    assert diff[0, :2, :2].min() > 0
    assert diff[0, 2:].max() == 0 and diff[1].max() == 0


def test_shifted_windows_roll_but_do_not_wrap_around():
    layout = cuboid_layout((1, 8, 8), (1, 4, 4), shift=True)
    assert layout.shift == (0, 2, 2) and layout.padded == (1, 8, 8) and layout.num_cuboids == 4
    attn = SpacetimeAttention(8, heads=2, mode="window", window=(1, 4, 4), shift=True)
    _, maps = attn(torch.randn(1, 1, 8, 8, 8), return_attention=True)
    dense = maps[0].dense()[0, 0].reshape(8, 8, 8, 8)  # (hq, wq, hk, wk)
    assert dense[0, 0, 0, 1] > 0 and dense[0, 0, 1, 1] > 0  # neighbours in the rolled corner cuboid
    assert dense[0, 0, 0, 7] == 0 and dense[0, 0, 7, 0] == 0  # same cuboid after the roll, but masked
    hq, wq, hk, wk = torch.nonzero(dense, as_tuple=True)
    assert (hq - hk).abs().max() < 4 and (wq - wk).abs().max() < 4  # every pair is local


@pytest.mark.parametrize("grid", [(3, 6, 9), (2, 5, 7)])
def test_shifted_window_pairs_are_local_on_any_grid(grid):
    attn = SpacetimeAttention(8, heads=1, mode="window", window=(2, 3, 4), shift=True)
    _, maps = attn(torch.randn(1, *grid, 8), return_attention=True)
    t, h, w = grid
    dense = maps[0].dense()[0, 0].reshape(t, h, w, t, h, w)
    tq, hq, wq, tk, hk, wk = torch.nonzero(dense, as_tuple=True)
    assert (tq - tk).abs().max() < 2 and (hq - hk).abs().max() < 3 and (wq - wk).abs().max() < 4


def test_divided_attention_reaches_across_space_and_time():
    torch.manual_seed(0)
    attn = SpacetimeAttention(8, heads=2, mode="divided")
    x = torch.randn(1, 3, 4, 4, 8)
    x2 = x.clone()
    x2[0, 0, 0, 0] += 1.0
    diff = (attn(x) - attn(x2)).abs().sum(-1)[0]
    assert diff[2, 3, 3] > 0  # other time, other place


def test_capture_collects_all_layers_with_names():
    torch.manual_seed(0)
    blocks = torch.nn.Sequential(
        SpacetimeBlock(16, 2, "joint"), SpacetimeBlock(16, 2, "divided"), SpacetimeBlock(16, 2, "window", (1, 2, 2), True)
    )
    x = torch.randn(2, 2, 3, 5, 16, requires_grad=True)
    plain = blocks(x)
    with capture_attention(blocks) as maps:
        captured = blocks(x)
    torch.testing.assert_close(captured, plain, rtol=1e-4, atol=1e-5)
    assert len(maps) == 1 + 2 + 1
    assert [m.name for m in maps] == ["0.attn.passes.0", "1.attn.passes.0", "1.attn.passes.1", "2.attn.passes.0"]
    assert maps[0].weights.shape == (2, 2, 1, 30, 30)
    assert not maps[0].weights.requires_grad
    imp = attention_importance(maps)
    assert imp.shape == (2, 2, 3, 5)
    torch.testing.assert_close(imp.sum((1, 2, 3)), torch.ones(2))
    # outside the context nothing is collected
    blocks(x)
    assert len(maps) == 4


def test_importance_matches_dense_mean():
    attn = SpacetimeAttention(8, heads=2, mode="window", window=(2, 2, 2), shift=True)
    _, maps = attn(torch.randn(2, 3, 3, 5, 8), return_attention=True)
    dense = maps[0].dense()  # (B, heads, N, N)
    expected = dense.mean(1).mean(1).reshape(2, 3, 3, 5)
    torch.testing.assert_close(attention_importance(maps[0]), expected)


def test_importance_highlights_an_attended_token():
    """With q = k projections that make one token's key dominant, it gets the most importance."""
    attn = SpacetimeAttention(4, heads=1, mode="joint")
    with torch.no_grad():
        attn.passes[0].qkv.weight.zero_()
        attn.passes[0].qkv.bias.zero_()
        attn.passes[0].qkv.weight[:4, :4] = torch.eye(4) * 5  # q = 5x
        attn.passes[0].qkv.weight[4:8, :4] = torch.eye(4) * 5  # k = 5x
    x = torch.zeros(1, 1, 3, 3, 4)
    x[..., 0] = 0.1
    x[0, 0, 1, 2, 0] = 1.0
    _, maps = attn(x, return_attention=True)
    imp = attention_importance(maps)[0, 0]
    assert imp.argmax() == 1 * 3 + 2


def test_attention_errors():
    with pytest.raises(ValueError, match="mode"):
        SpacetimeAttention(8, 2, mode="global")
    with pytest.raises(ValueError, match="divisible"):
        SpacetimeAttention(10, 3)
    with pytest.raises(ValueError, match="B, nT, nH, nW, D"):
        SpacetimeAttention(8, 2)(torch.randn(2, 5, 8))


def test_block_backward_in_every_mode():
    for mode in ATTENTION_MODES:
        block = SpacetimeBlock(8, 2, mode, window=(2, 2, 2), shift=True)
        x = torch.randn(1, 3, 3, 5, 8, requires_grad=True)
        block(x).square().mean().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()


def _grid_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(SpacetimeBlock(8, 2, "divided"), SpacetimeBlock(8, 2, "joint")).eval()


def _run_threads(work, barrier, n: int = 2) -> list:
    """Run ``work(i)`` in ``n`` threads at once; returns the results, re-raising the first error."""
    import threading

    results, errors = [None] * n, []

    def target(i):
        try:
            results[i] = work(i)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)
            barrier.abort()  # release the other thread at once

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("shared", [False, True], ids=["two_models", "one_shared_model"])
def test_capture_is_per_thread_under_concurrency(shared):
    """Two threads capture their own calls at the same time; each gets exactly its own maps."""
    import threading

    models = [_grid_model(0)] * 2 if shared else [_grid_model(0), _grid_model(1)]
    grids = [(2, 3, 4), (3, 2, 5)]  # different token grids: the maps' shapes tell the calls apart
    expected = [["0.attn.passes.0", "0.attn.passes.1", "1.attn.passes.0"]] * 2
    barrier = threading.Barrier(2, timeout=60)

    def work(i):
        model, grid = models[i], grids[i]
        seen = []
        for _ in range(25):
            with torch.no_grad(), capture_attention(model) as maps:
                barrier.wait()  # both captures are open ...
                model(torch.randn(1, *grid, 8))
                barrier.wait()  # ... while both models run
            seen.append(([m.name for m in maps], {m.grid for m in maps}))
        return seen

    for i, seen in enumerate(_run_threads(work, barrier)):
        for names, found in seen:
            assert names == expected[i]
            assert found == {grids[i]}


def test_capture_of_all_models_stays_in_its_thread():
    """``capture_attention()`` (no model) records every model, but only in the thread that opened it."""
    import threading

    model = _grid_model(0)
    barrier = threading.Barrier(2, timeout=60)

    def work(i):
        counts = []
        for _ in range(10):
            if i == 0:
                with torch.no_grad(), capture_attention() as maps:
                    barrier.wait()
                    barrier.wait()  # the other thread runs the model in between
                counts.append(len(maps))
            else:
                barrier.wait()
                with torch.no_grad():
                    model(torch.randn(1, 2, 2, 2, 8))
                barrier.wait()
        return counts

    assert _run_threads(work, barrier)[0] == [0] * 10
    with capture_attention() as maps:
        model(torch.randn(1, 2, 2, 2, 8))
    assert len(maps) == 3 and all(m.name is None for m in maps)


def test_capture_records_only_its_model():
    captured, other = _grid_model(0), _grid_model(1)
    x = torch.randn(1, 2, 3, 3, 8)
    with capture_attention(captured) as maps:
        other(x)
        assert maps == []
        captured(x)
        other(x)
    assert [m.name for m in maps] == ["0.attn.passes.0", "0.attn.passes.1", "1.attn.passes.0"]
    # a capture of a submodule records that part only, named inside it
    with capture_attention(captured[1]) as maps:
        captured(x)
    assert [m.name for m in maps] == ["attn.passes.0"]


def test_nested_captures_and_reuse():
    from stpatch.nn import AttentionCapture

    model = _grid_model(0)
    x = torch.randn(1, 2, 3, 3, 8)
    capture = AttentionCapture(model, detach=False)
    with capture as outer:
        model(x)
        with capture_attention(model[0]) as inner:
            model(x)
        with pytest.raises(RuntimeError, match="already open"):
            capture.__enter__()
    assert len(outer) == 6 and len(inner) == 2
    assert outer[0].weights.requires_grad  # detach=False keeps the graph
    with capture as again:  # a closed capture can be opened again, with a new list
        model(x)
    assert len(again) == 3 and len(outer) == 6
    model(x)
    assert len(again) == 3


@pytest.mark.slow
def test_layers_compile_without_graph_breaks_when_nothing_is_captured():
    """The capture check costs a plain int test when no capture is open, which torch.compile traces."""
    attn = SpacetimeAttention(8, heads=2, mode="divided").eval()
    x = torch.randn(1, 2, 3, 3, 8)
    compiled = torch.compile(attn, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), attn(x))


def test_layer_scale_starts_a_block_near_the_identity_and_is_learned():
    torch.manual_seed(0)
    x = torch.randn(2, 2, 4, 4, 8)
    plain, scaled = SpacetimeBlock(8, 2, "joint"), SpacetimeBlock(8, 2, "joint", layer_scale=1e-3)
    scaled.load_state_dict(plain.state_dict(), strict=False)  # same branches; only the scales differ
    change_plain, change_scaled = (plain(x) - x).abs().mean(), (scaled(x) - x).abs().mean()
    assert change_scaled < 2e-3 * change_plain
    scaled(x).square().sum().backward()
    assert scaled.gamma1.grad.abs().sum() > 0 and scaled.gamma2.grad.abs().sum() > 0
    assert plain.gamma1 is None and "gamma1" not in plain.state_dict()
    with pytest.raises(ValueError, match="layer_scale must be >= 0"):
        SpacetimeBlock(8, 2, "joint", layer_scale=-1.0)
