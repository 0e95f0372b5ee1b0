"""Patch embedding and head, positional encodings, spacetime convolutions."""

from __future__ import annotations

import math

import pytest
import torch

from stpatch.nn import (
    LearnedPosition3d,
    PatchEmbed,
    PatchHead,
    SinCosPosition3d,
    SpacetimeConv,
    SpacetimeConvDecoder,
    SpacetimeConvNet,
    pad_to_patch,
)
from stpatch.patches import patchify


@pytest.mark.parametrize("size", [(4, 16, 16), (5, 30, 45), (1, 3, 5)])
def test_patch_embed_shapes_and_grid(size):
    t, h, w = size
    embed = PatchEmbed(3, 8, (2, 4, 4))
    tokens, grid = embed(torch.randn(2, t, 3, h, w))
    expected = (-(-t // 2), -(-h // 4), -(-w // 4))
    assert tokens.shape == (2, *expected, 8)
    assert grid.size == size and grid.num_patches == expected
    assert grid.padded == tuple(n * p for n, p in zip(expected, (2, 4, 4)))


def test_patch_embed_is_a_linear_map_of_patchify_tokens():
    """Conv3d with kernel = stride = patch equals a Linear on patchify's (C, pt, ph, pw) tokens."""
    torch.manual_seed(0)
    embed = PatchEmbed(2, 5, (2, 3, 3), pad_mode="zeros")
    x = torch.randn(1, 4, 2, 7, 8)
    tokens, _ = embed(x)
    raw, _ = patchify(x, (2, 3, 3), pad="zeros")
    expected = raw @ embed.proj.weight.reshape(5, -1).t() + embed.proj.bias
    torch.testing.assert_close(tokens, expected, rtol=1e-4, atol=1e-5)


def test_pad_to_patch_replicate_repeats_edges():
    x = torch.arange(2 * 3 * 5, dtype=torch.float32).reshape(1, 2, 1, 3, 5)
    padded, grid = pad_to_patch(x, (1, 2, 4), "replicate")
    assert padded.shape == (1, 2, 1, 4, 8) and grid.padded == (2, 4, 8)
    assert torch.equal(padded[..., 3, :5], x[..., 2, :])
    assert torch.equal(padded[..., :3, 7], x[..., :, 4])


def test_patch_embed_rejects_wrong_channels():
    with pytest.raises(ValueError, match="C=3"):
        PatchEmbed(3, 8)(torch.randn(1, 4, 2, 8, 8))


@pytest.mark.parametrize("t_tokens,t_out", [(3, 7), (None, 5)])
def test_patch_head_crops_back(t_tokens, t_out):
    embed = PatchEmbed(1, 8, (2, 4, 4))
    tokens, grid = embed(torch.randn(2, 6, 1, 30, 45))
    head = PatchHead(8, 2, t_out, (2, 4, 4), t_tokens=t_tokens)
    assert head(tokens, grid).shape == (2, t_out, 2, 30, 45)


def test_patch_head_without_t_tokens_inverts_patchify_layout():
    """A head whose linear map is the identity puts every feature back where patchify took it."""
    x = torch.randn(1, 4, 2, 6, 9)
    raw, grid = patchify(x, (2, 3, 3), pad="replicate")
    head = PatchHead(raw.shape[-1], 2, 4, (2, 3, 3))
    head.norm = torch.nn.Identity()
    with torch.no_grad():
        head.proj.weight.copy_(torch.eye(raw.shape[-1]))
        head.proj.bias.zero_()
    torch.testing.assert_close(head(raw, grid), x)


def test_patch_head_errors_name_the_problem():
    head = PatchHead(8, 1, 4, (2, 4, 4), t_tokens=3)
    with pytest.raises(ValueError, match="t_tokens=3"):
        head(torch.randn(1, 2, 2, 2, 8), (8, 8))
    with pytest.raises(ValueError, match="t_out=9"):
        PatchHead(8, 1, 9, (2, 4, 4))(torch.randn(1, 2, 2, 2, 8), (8, 8))


# --------------------------------------------------------------------------- positions


def test_learned_position_interpolates_to_other_grids():
    pos = LearnedPosition3d(12, (4, 8, 8))
    x = torch.zeros(2, 4, 8, 8, 12)
    enc = pos(x) - x
    assert torch.equal(enc[0], pos.encoding((4, 8, 8)))
    other = pos(torch.zeros(1, 3, 5, 11, 12))
    assert other.shape == (1, 3, 5, 11, 12)
    # factorised: the time part is the same for every (h, w)
    e = pos.encoding((3, 5, 11))
    torch.testing.assert_close(e[:, 1, 2] - e[:, 0, 2], e[:, 1, 7] - e[:, 0, 7])
    # gradients reach the tables through the interpolation
    other.sum().backward()
    assert pos.time.grad is not None and pos.height.grad.abs().sum() > 0


def test_sincos_position_any_grid_and_consistent():
    pos = SinCosPosition3d(16)
    small, large = pos.encoding((2, 3, 4)), pos.encoding((5, 7, 9))
    assert small.shape == (2, 3, 4, 16) and large.shape == (5, 7, 9, 16)
    torch.testing.assert_close(large[:2, :3, :4], small)  # computed on the fly, same positions agree
    flat = large.reshape(-1, 16)
    assert torch.unique(flat, dim=0).shape[0] == flat.shape[0]  # every position distinct
    assert list(pos.parameters()) == []
    assert pos(torch.zeros(1, 5, 7, 9, 16)).shape == (1, 5, 7, 9, 16)


# --------------------------------------------------------------------------- convolutions


@pytest.mark.parametrize("mode", ["full", "factorized", "causal"])
@pytest.mark.parametrize("kernel", [(3, 3, 3), (2, 4, 3)])
def test_spacetime_conv_keeps_size(mode, kernel):
    conv = SpacetimeConv(3, 6, kernel, mode)
    assert conv(torch.randn(2, 3, 5, 9, 7)).shape == (2, 6, 5, 9, 7)


def test_spacetime_conv_depthwise_and_groups():
    conv = SpacetimeConv(4, 8, 3, "factorized", depthwise=True)
    assert conv.spatial.groups == 4
    assert conv(torch.randn(1, 4, 3, 5, 5)).shape == (1, 8, 3, 5, 5)
    with pytest.raises(ValueError, match="groups"):
        SpacetimeConv(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="mode"):
        SpacetimeConv(4, 4, 3, mode="dilated")


@pytest.mark.parametrize("kernel,depthwise", [((3, 3, 3), False), ((2, 3, 1), False), ((3, 3, 3), True)])
def test_factorized_conv_is_the_two_conv3d_passes(kernel, depthwise):
    """The temporal pass runs as a 2-D conv (faster on CPU): same values and gradients as its Conv3d."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    conv = SpacetimeConv(4, 8, kernel, "factorized", depthwise=depthwise)
    x = torch.randn(2, 4, 5, 6, 7, requires_grad=True)
    kt, kh, kw = kernel
    top, left = (kh - 1) // 2, (kw - 1) // 2
    h = conv.spatial(F.pad(x, (left, kw - 1 - left, top, kh - 1 - top, 0, 0)))
    expected = conv.temporal(F.pad(h, (0, 0, 0, 0, (kt - 1) // 2, kt // 2)))  # nn.Conv3d's own forward
    y = conv(x)
    torch.testing.assert_close(y, expected)
    g = torch.randn_like(y)
    grads = torch.autograd.grad((y * g).sum(), [x, conv.temporal.weight, conv.temporal.bias])
    ref = torch.autograd.grad((expected * g).sum(), [x, conv.temporal.weight, conv.temporal.bias])
    for a, b in zip(grads, ref):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("t", [0, 3, 6])
def test_causal_conv_never_looks_ahead(t):
    torch.manual_seed(0)
    conv = SpacetimeConv(2, 3, (3, 3, 3), mode="causal")
    x = torch.randn(1, 2, 7, 6, 6)
    x2 = x.clone()
    x2[:, :, t] += torch.randn_like(x2[:, :, t])
    y, y2 = conv(x), conv(x2)
    torch.testing.assert_close(y[:, :, :t], y2[:, :, :t], rtol=0, atol=0)
    assert (y[:, :, t] - y2[:, :, t]).abs().max() > 1e-3


def test_causal_conv_is_a_one_sided_convolution():
    """C[i, j] = sum_k W[k] X[i - k, j] with one channel and a 3x1x1 kernel."""
    conv = SpacetimeConv(1, 1, (3, 1, 1), mode="causal", bias=False)
    w = torch.tensor([0.5, -2.0, 3.0])  # W[0] multiplies X[i], W[1] X[i-1], W[2] X[i-2]
    with torch.no_grad():
        conv.conv.weight.copy_(w.flip(0).reshape(1, 1, 3, 1, 1))
    x = torch.randn(1, 1, 6, 2, 2)
    y = conv(x)
    xp = torch.nn.functional.pad(x, (0, 0, 0, 0, 2, 0))
    expected = sum(w[k] * xp[:, :, 2 - k : 2 - k + 6] for k in range(3))
    torch.testing.assert_close(y, expected)


def test_full_conv_does_look_ahead():
    conv = SpacetimeConv(1, 1, (3, 1, 1), mode="full")
    x = torch.randn(1, 1, 5, 2, 2)
    x2 = x.clone()
    x2[:, :, 3] += 1.0
    assert (conv(x)[:, :, 2] - conv(x2)[:, :, 2]).abs().max() > 0


@pytest.mark.parametrize("size", [(4, 16, 16), (3, 9, 13)])
def test_convnet_and_decoder_shapes(size):
    net = SpacetimeConvNet(3, dims=(8, 16, 24), depths=(1, 1, 1))
    x = torch.randn(2, 3, *size)
    out = net(x)
    t, h, w = size
    assert out.features.shape == (2, 24, t, math.ceil(math.ceil(h / 2) / 2), math.ceil(math.ceil(w / 2) / 2))
    assert [s.shape[1] for s in out.skips] == [8, 16]
    assert out.skips[0].shape[2:] == x.shape[2:]
    dec = SpacetimeConvDecoder((8, 16, 24))
    y = dec(out.features, out.skips)
    assert y.shape == (2, 8, *size)
    y.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_patch_head_kernel_reads_the_neighbouring_tokens():
    torch.manual_seed(0)
    tokens = torch.randn(1, 2, 4, 5, 8)
    linear = PatchHead(8, 1, t_out=3, patch=(2, 2, 2), t_tokens=2)
    conv = PatchHead(8, 1, t_out=3, patch=(2, 2, 2), t_tokens=2, kernel=3)
    assert conv(tokens, (8, 10)).shape == linear(tokens, (8, 10)).shape == (1, 3, 1, 8, 10)
    # changing one token moves only its own patch with kernel 1, and the 3x3 neighbourhood with kernel 3
    moved = tokens.clone()
    moved[:, :, 1, 1] += torch.randn(8)  # not a constant shift, which the head's LayerNorm removes
    for head, rows in ((linear, {1}), (conv, {0, 1, 2})):
        diff = (head(moved, (8, 10)) - head(tokens, (8, 10))).abs().sum(dim=(0, 1, 2))  # (H, W)
        patch_rows = {int(r) // 2 for r in torch.nonzero(diff > 1e-6)[:, 0]}
        assert patch_rows == rows, (head.kernel, patch_rows)
    with pytest.raises(ValueError, match="odd size"):
        PatchHead(8, 1, t_out=3, patch=(2, 2, 2), t_tokens=2, kernel=2)
    with pytest.raises(ValueError, match="needs t_tokens"):
        PatchHead(8, 1, t_out=3, patch=(2, 2, 2), kernel=3)


def test_frame_refiner_starts_as_identity_and_learns_per_pixel_detail():
    from stpatch.nn.heads import FrameRefiner

    torch.manual_seed(0)
    refine = FrameRefiner(2, width=4, depth=1)
    frames, x = torch.rand(2, 3, 2, 9, 7), torch.rand(2, 5, 2, 9, 7)
    assert torch.equal(refine(frames, x), frames)  # zero-initialised: leaves the forecast alone
    target = frames + 0.1 * torch.sign(x[:, -1:] - 0.5)  # a per-pixel correction read from the last input
    opt = torch.optim.Adam(refine.parameters(), lr=1e-2)
    first = ((refine(frames, x) - target) ** 2).mean().item()
    for _ in range(60):
        loss = ((refine(frames, x) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    with pytest.raises(ValueError, match="width >= 1"):
        FrameRefiner(1, width=0)
