"""ConvLSTM encoder-forecaster (Shi et al., 2015, "Convolutional LSTM Network").

Frames are first folded into ``patch x patch`` space-to-depth blocks (as the paper does for
Moving MNIST), an encoder of stacked ConvLSTM layers reads the ``T_in`` inputs, and a forecaster
of ConvLSTM layers, started from the encoder's states and given no input, unrolls ``T_out`` steps;
a 1x1 conv over all forecaster hidden states gives each output frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from stpatch.models._common import check_grid
from stpatch.models.registry import register_model
from stpatch.nn._utils import ceil_div

__all__ = ["ConvLSTM", "ConvLSTMCell"]


class ConvLSTMCell(nn.Module):
    """One ConvLSTM cell: gates from a conv over ``[x, h]``.

    ``forward(x (B, C_in, H, W) or None, (h, c) each (B, hidden, H, W)) -> (h, c)``.
    ``in_channels=0`` makes a cell that takes no input (``x=None``).
    """

    def __init__(self, in_channels: int, hidden: int, kernel: int = 3) -> None:
        super().__init__()
        self.in_channels, self.hidden = in_channels, hidden
        self.conv = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel, padding=kernel // 2)
        with torch.no_grad():  # forget-gate bias 1: remember by default
            self.conv.bias.zero_()
            self.conv.bias[hidden : 2 * hidden].fill_(1.0)

    def forward(
        self, x: torch.Tensor | None, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        z = self.conv(h if x is None else torch.cat([x, h], dim=1))
        i, f, o, g = z.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


@register_model("convlstm")
class ConvLSTM(nn.Module):
    """ConvLSTM encoder-forecaster: ``(B, T_in, C, H, W) -> (B, T_out, C, H, W)``, any H, W.

    Args:
        in_channels, t_in, t_out: the usual; ``T_out`` is independent of ``T_in``.
        out_channels: defaults to ``in_channels``.
        hidden: hidden channels per layer (default two layers of 32).
        kernel: conv kernel of the cells.
        patch: space-to-depth factor (H and W are end-padded to a multiple, then cropped back).
        residual: add the last input frame to the output (off by default, as in the paper).
        checkpointing: keep only each cell step's states ``(h, c)`` and recompute its gates in the
            backward pass (``torch.utils.checkpoint``, non-reentrant): the gates are most of the
            memory of a long unroll on a large grid. Training only; outputs and gradients are the same.
    """

    kind = "grid"

    def __init__(
        self,
        in_channels: int = 1,
        t_in: int = 10,
        t_out: int = 10,
        out_channels: int | None = None,
        hidden: Sequence[int] = (32, 32),
        kernel: int = 3,
        patch: int = 4,
        residual: bool = False,
        checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels, self.t_in, self.t_out = in_channels, t_in, int(t_out)
        self.out_channels = out_channels or in_channels
        if residual and self.out_channels != in_channels:
            raise ValueError("residual=True needs out_channels == in_channels")
        self.patch, self.residual = int(patch), residual
        self.checkpointing = bool(checkpointing)
        self.hidden = tuple(int(h) for h in hidden)
        depth = in_channels * self.patch**2
        ins = (depth,) + self.hidden[:-1]
        self.encoder = nn.ModuleList(ConvLSTMCell(i, h, kernel) for i, h in zip(ins, self.hidden))
        self.forecaster = nn.ModuleList(
            ConvLSTMCell(0 if n == 0 else self.hidden[n - 1], h, kernel) for n, h in enumerate(self.hidden)
        )
        self.out = nn.Conv2d(sum(self.hidden), self.out_channels * self.patch**2, 1)

    def _step(
        self, cell: ConvLSTMCell, x: torch.Tensor | None, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One cell step; with ``checkpointing`` (training with gradients) its gates are recomputed in backward."""
        if self.checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(cell, x, state, use_reentrant=False)
        return cell(x, state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_grid(x, "convlstm", self.in_channels)
        b, t, _, h, w = x.shape
        p = self.patch
        hp, wp = ceil_div(h, p) * p, ceil_div(w, p) * p
        z = x.reshape(b * t, *x.shape[2:])
        if (hp, wp) != (h, w):
            z = F.pad(z, (0, wp - w, 0, hp - h), mode="replicate")
        z = rearrange(F.pixel_unshuffle(z, p), "(b t) c h w -> b t c h w", b=b)
        states = [
            (z.new_zeros(b, c, hp // p, wp // p), z.new_zeros(b, c, hp // p, wp // p)) for c in self.hidden
        ]
        for step in range(t):
            inp = z[:, step]
            for n, cell in enumerate(self.encoder):
                states[n] = self._step(cell, inp, states[n])
                inp = states[n][0]
        frames = []
        for _ in range(self.t_out):
            inp = None
            for n, cell in enumerate(self.forecaster):
                states[n] = self._step(cell, inp, states[n])
                inp = states[n][0]
            frames.append(self.out(torch.cat([s[0] for s in states], dim=1)))
        out = F.pixel_shuffle(torch.stack(frames, dim=1).flatten(0, 1), p)
        out = rearrange(out, "(b t) c h w -> b t c h w", b=b)[..., :h, :w]
        return out + x[:, -1:] if self.residual else out
