"""The spacetime patch core: round trips, hand-checked layouts, gradients, sensor groups, errors."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stpatch.patches import (
    group_sensors,
    patchify,
    patchify_sensors,
    time_space_merge,
    time_space_partition,
    unpatchify,
    unpatchify_sensors,
)

PADS = ["zeros", "replicate", "reflect"]


@st.composite
def grid_case(draw):
    patch = tuple(draw(st.integers(1, 4)) for _ in range(3))
    overlap = draw(st.booleans())
    stride = tuple(draw(st.integers(1, p)) for p in patch) if overlap else None
    t, h, w = (draw(st.integers(1, 9)) for _ in range(3))
    b, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    return (b, t, c, h, w), patch, stride, draw(st.sampled_from(PADS)), draw(st.booleans())


@settings(max_examples=150, deadline=None)
@given(grid_case(), st.booleans())
def test_round_trip_every_mode(case, use_numpy):
    shape, patch, stride, pad, flatten = case
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    data = x if use_numpy else torch.from_numpy(x)
    tokens, grid = patchify(data, patch, stride, pad=pad, flatten=flatten)
    assert isinstance(tokens, type(data))
    assert tokens.shape[-1] == shape[2] * np.prod(patch)
    expected_tokens = (grid.num_tokens,) if flatten else grid.num_patches
    assert tuple(tokens.shape[1:-1]) == tuple(expected_tokens)
    back = unpatchify(tokens, grid)
    assert isinstance(back, type(data))
    np.testing.assert_allclose(np.asarray(back), x, rtol=1e-5, atol=1e-5)


def test_values_land_where_docstring_says():
    # x[b, t, c, h, w] = unique code so every token element can be traced back
    b, t, c, h, w = 1, 4, 2, 4, 6
    x = torch.arange(b * t * c * h * w, dtype=torch.float32).reshape(b, t, c, h, w)
    tokens, grid = patchify(x, (2, 2, 3))
    assert tokens.shape == (1, 2, 2, 2, 2 * 2 * 2 * 3)
    assert grid.num_patches == (2, 2, 2) and grid.padded == (4, 4, 6)
    # token [0, 1, 0, 1] covers t 2..3, h 0..1, w 3..5; features ordered (C, pt, ph, pw)
    expected = x[0, 2:4, :, 0:2, 3:6].permute(1, 0, 2, 3).reshape(-1)
    assert torch.equal(tokens[0, 1, 0, 1], expected)
    # first feature of a token is channel 0, first frame, top-left pixel
    assert tokens[0, 1, 1, 0, 0] == x[0, 2, 0, 2, 0]


def test_overlapping_tokens_hold_windows():
    x = torch.arange(1 * 3 * 1 * 5 * 5, dtype=torch.float32).reshape(1, 3, 1, 5, 5)
    tokens, grid = patchify(x, (1, 3, 3), stride=(1, 2, 2))
    assert grid.num_patches == (3, 2, 2)
    assert torch.equal(tokens[0, 2, 1, 0], x[0, 2, 0, 2:5, 0:3].reshape(-1))


def test_padding_modes_fill_as_named():
    x = torch.tensor([1.0, 2.0, 3.0]).reshape(1, 1, 1, 1, 3)
    for pad, tail in [("zeros", [0.0, 0.0, 0.0]), ("replicate", [3.0, 3.0, 3.0]), ("reflect", [2.0, 1.0, 2.0])]:
        tokens, grid = patchify(x, (1, 1, 6), pad=pad)
        assert grid.padded == (1, 1, 6)
        assert tokens.reshape(-1).tolist() == [1.0, 2.0, 3.0, *tail], pad
        assert torch.equal(unpatchify(tokens, grid), x)


def test_pad_none_requires_exact_tiling():
    x = torch.zeros(1, 4, 1, 8, 8)
    tokens, grid = patchify(x, (2, 4, 4), pad="none")
    assert tokens.shape == (1, 2, 2, 2, 32)
    with pytest.raises(ValueError, match="not tiled exactly"):
        patchify(torch.zeros(1, 4, 1, 9, 8), (2, 4, 4), pad="none")
    with pytest.raises(ValueError, match="larger than the input"):
        patchify(torch.zeros(1, 4, 1, 2, 8), (2, 4, 4), pad="none")


def test_gradients_flow_through_round_trip():
    x = torch.randn(2, 5, 2, 7, 6, requires_grad=True)
    weight = torch.randn(2, 5, 2, 7, 6)
    for stride in [None, (1, 2, 2)]:
        tokens, grid = patchify(x, (2, 3, 3), stride=stride, pad="reflect")
        (unpatchify(tokens * 2.0, grid) * weight).sum().backward()
        torch.testing.assert_close(x.grad, 2.0 * weight)
        x.grad = None


@pytest.mark.parametrize(
    "args, message",
    [
        ((torch.zeros(4, 1, 8, 8), (1, 2, 2)), "5 dims"),
        ((torch.zeros(1, 4, 1, 8, 8), (0, 2, 2)), "positive"),
        ((torch.zeros(1, 4, 1, 8, 8), (1, 2)), "3 entries"),
    ],
)
def test_bad_input_errors(args, message):
    with pytest.raises(ValueError, match=message):
        patchify(*args)


def test_stride_larger_than_patch_is_rejected():
    with pytest.raises(ValueError, match="stride 3 is larger than patch 2"):
        patchify(torch.zeros(1, 4, 1, 8, 8), (1, 2, 2), stride=(1, 3, 2))
    with pytest.raises(ValueError, match="pad must be one of"):
        patchify(torch.zeros(1, 4, 1, 8, 8), 2, pad="circular")


def test_unpatchify_rejects_foreign_tokens():
    tokens, grid = patchify(torch.zeros(1, 4, 1, 8, 8), 2)
    with pytest.raises(ValueError, match="expects tokens"):
        unpatchify(tokens[:, :1], grid)


# ----------------------------------------------------------------------------- sensors


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.integers(1, 9), st.integers(1, 12), st.integers(1, 5), st.booleans())
def test_sensor_round_trip(n, k, t, pt, use_coords):
    rng = np.random.default_rng(n * 31 + k)
    coords = rng.uniform(size=(n, 2)) if use_coords else None
    groups = group_sensors(coords, k, num_nodes=n)
    x = torch.from_numpy(rng.standard_normal((2, t, n, 3)).astype(np.float32))
    tokens, grid = patchify_sensors(x, pt, groups)
    assert tokens.shape == (2, -(-t // pt), groups.num_groups, pt * k * 3)
    assert torch.equal(unpatchify_sensors(tokens, grid), x)
    # every sensor sits in exactly one real slot, padding slots are zero
    real = groups.perm[groups.mask.reshape(-1)]
    assert sorted(real.tolist()) == list(range(n))
    assert torch.all(groups.to_groups(x)[:, :, ~groups.mask] == 0)


def test_sensor_groups_are_balanced_and_compact():
    rng = np.random.default_rng(0)
    # four well-separated clusters of 10 sensors: groups of 10 must recover them
    centres = np.array([[0, 0], [0, 100], [100, 0], [100, 100]])
    coords = np.concatenate([c + rng.normal(size=(10, 2)) for c in centres])
    order = rng.permutation(40)
    groups = group_sensors(coords[order], 10)
    assert groups.num_groups == 4 and bool(groups.mask.all())
    for members in groups.perm.reshape(4, 10):
        clusters = {int(order[m]) // 10 for m in members}
        assert len(clusters) == 1
    sizes = group_sensors(rng.uniform(size=(207, 2)), 8).mask.sum(1)
    assert sizes.max() <= 8 and sizes.min() >= 7 and int(sizes.sum()) == 207


def test_sensor_patches_without_groups_and_numpy():
    x = np.arange(2 * 6 * 4 * 1, dtype=np.float32).reshape(2, 6, 4, 1)
    tokens, grid = patchify_sensors(x, 3)
    assert isinstance(tokens, np.ndarray) and tokens.shape == (2, 2, 4, 3)
    assert tokens[0, 1, 2].tolist() == x[0, 3:6, 2, 0].tolist()
    assert np.array_equal(unpatchify_sensors(tokens, grid), x)


def test_sensor_errors():
    groups = group_sensors(np.random.rand(10, 2), 3)
    with pytest.raises(ValueError, match="N=10"):
        patchify_sensors(torch.zeros(1, 4, 9, 1), 2, groups)
    with pytest.raises(ValueError, match="4 dims"):
        patchify_sensors(torch.zeros(4, 10, 1), 2)
    with pytest.raises(ValueError, match="positive"):
        group_sensors(np.random.rand(10, 2), 0)
    with pytest.raises(ValueError, match="NaN"):
        group_sensors(np.array([[0.0, np.nan], [1.0, 1.0]]), 1)


# ----------------------------------------------------------------------------- time_space_partition


def test_time_space_partition_blocks_and_merge():
    data = np.arange(7 * 5 * 2).reshape(7, 5, 2)
    blocks = time_space_partition(data, 3, 2)
    assert blocks.shape == (3, 3, 3, 2, 2)
    np.testing.assert_array_equal(blocks[1, 2, :, :1], data[3:6, 4:5])
    assert (blocks[2, 2, 1:] == 0).all() and (blocks[1, 2, :, 1] == 0).all()  # zero padding
    np.testing.assert_array_equal(time_space_merge(blocks, 7, 5), data)
    torch_blocks = time_space_partition(torch.from_numpy(data), 3, 2, pad="replicate")
    assert isinstance(torch_blocks, torch.Tensor)
    assert torch.equal(torch_blocks[2, 2, 2, 1], torch.from_numpy(data[6, 4]))


def test_time_space_partition_errors():
    with pytest.raises(ValueError, match="at least 2 dims"):
        time_space_partition(np.zeros(5), 2, 2)
    with pytest.raises(ValueError, match="positive"):
        time_space_partition(np.zeros((4, 4)), 0, 2)
    with pytest.raises(ValueError, match="not tiled exactly"):
        time_space_partition(np.zeros((5, 4)), 2, 2, pad="none")


def test_module_docstring_examples_run():
    import doctest

    import stpatch.patches

    result = doctest.testmod(stpatch.patches)
    assert result.attempted >= 3 and result.failed == 0
