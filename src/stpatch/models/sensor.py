"""STPNet for sensor networks ``(B, T, N, C)`` (traffic, air quality, weather stations).

::

    x (B, T_in, N, C)
      -> time patches per sensor, Linear(pt*C -> node_dim)                     (B, nT, N, node_dim)
         + learnable node embedding + time-of-day / day-of-week embeddings (when given and used)
      -> graph mixing: h + Linear(A_norm @ h), A_norm = D^-1/2 (A + I) D^-1/2   (when adjacency given)
      -> spatial groups of k sensors (KD split of coords, else index order),
         Linear(k*node_dim -> dim)                                              (B, nT, G, dim)
      -> SpacetimeBlocks (joint attention over nT x G tokens)
      -> per group: Linear(nT*dim -> k*node_dim), back to sensors, + node skip
      -> per sensor MLP -> T_out*C; + last input value (residual=True)          (B, T_out, N, C)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from stpatch.models._common import check_sensor
from stpatch.models.registry import register_model
from stpatch.nn._utils import ceil_div
from stpatch.nn.block import SpacetimeBlock
from stpatch.nn.position import LearnedPosition3d
from stpatch.patches import SensorGroups, group_sensors, patchify_sensors

__all__ = ["STPNetSensor", "normalized_adjacency"]


def normalized_adjacency(adjacency: Any, self_loops: bool = True) -> torch.Tensor:
    """Symmetrically normalised adjacency ``D^-1/2 (A + I) D^-1/2`` as a float tensor ``(N, N)``.

    Negative or non-finite entries are an error; weights are kept (a weighted graph stays weighted).
    """
    a = torch.as_tensor(np.asarray(adjacency.detach().cpu() if isinstance(adjacency, torch.Tensor) else adjacency),
                        dtype=torch.float32)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"adjacency must be a square (N, N) matrix, got shape {tuple(a.shape)}")
    if not torch.isfinite(a).all() or (a < 0).any():
        raise ValueError("adjacency must hold finite, non-negative weights")
    if self_loops:
        a = a + torch.eye(a.shape[0])
    deg = a.sum(1)
    inv = torch.where(deg > 0, deg.rsqrt(), torch.zeros_like(deg))
    return inv[:, None] * a * inv[None, :]


class _NodeMLP(nn.Module):
    """``u + fc2(dropout(gelu(fc1(norm(u)))))`` on the last axis, per sensor."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.norm, self.fc1, self.fc2 = nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.Linear(2 * dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return u + self.fc2(self.drop(F.gelu(self.fc1(self.norm(u)))))


@register_model("stpnet_sensor")
class STPNetSensor(nn.Module):
    """Spacetime patch forecaster for sensor networks: ``(B, T_in, N, C) -> (B, T_out, N, C_out)``.

    Args:
        in_channels, t_in, t_out: the usual.
        num_nodes: ``N`` (required).
        coords: ``(N, 2)`` sensor positions; groups are spatial regions of ``group_size`` sensors.
            Without coords the groups are runs of consecutive sensor indices.
        adjacency: ``(N, N)`` non-negative weights; enables one graph-mixing step.
        out_channels: defaults to ``in_channels``.
        time_patch: steps per time patch ``pt``.
        group_size: sensors per spatial group ``k``.
        node_dim: per-sensor feature size; ``dim``: token size of the attention.
        attn_depth, heads, attention, mlp_ratio: the attention blocks (``attention`` is a
            :class:`~stpatch.nn.SpacetimeAttention` mode over the ``(nT, G)`` token grid).
        tod_slots: time-of-day embedding slots (288 = 5-minute steps; fewer slots share a table
            row between neighbouring times, which needs less data to learn).
        use_tod, use_dow: whether the time-of-day / day-of-week embeddings exist. Turn ``dow``
            off when the training span does not cover every weekday (Los-loop's 7 days split
            chronologically leave the test weekdays unseen).
        residual: forecast = last input value + predicted change (head starts at zero). The
            general form is ``base=`` (see :mod:`stpatch.models.base_forecast`).
        head_layers: residual MLP layers per sensor before the output projection (STID-style,
            ``u + FC(Dropout(GELU(FC(LN(u)))))``); 0 keeps the single hidden layer.
        dropout: dropout in the blocks and the output MLP.

    ``forward(x, tod=None, dow=None)``: ``tod`` ``(B, T_in)`` float in ``[0, 1)``, ``dow``
    ``(B, T_in)`` int in ``0..6``; each adds its embedding when given.
    """

    kind = "sensor"

    def __init__(
        self,
        in_channels: int = 1,
        t_in: int = 12,
        t_out: int = 12,
        num_nodes: int | None = None,
        coords: Any = None,
        adjacency: Any = None,
        out_channels: int | None = None,
        time_patch: int = 3,
        group_size: int = 4,
        node_dim: int = 32,
        dim: int = 64,
        attn_depth: int = 2,
        heads: int = 4,
        attention: str = "joint",
        mlp_ratio: float = 2.0,
        tod_slots: int = 288,
        use_tod: bool = True,
        use_dow: bool = True,
        residual: bool = True,
        head_layers: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if num_nodes is None:
            raise ValueError("stpnet_sensor needs num_nodes=N (the number of sensors)")
        self.in_channels, self.t_in, self.t_out = int(in_channels), int(t_in), int(t_out)
        self.num_nodes = int(num_nodes)
        self.out_channels = int(out_channels or in_channels)
        if residual and self.out_channels != self.in_channels:
            raise ValueError("residual=True needs out_channels == in_channels")
        self.residual = residual
        self.time_patch = int(time_patch)
        self.t_tokens = ceil_div(self.t_in, self.time_patch)
        self.tod_slots = int(tod_slots)

        groups = group_sensors(coords, group_size, num_nodes=self.num_nodes)
        self.register_buffer("group_perm", groups.perm.clone())
        self.register_buffer("group_mask", groups.mask.clone())
        self.group_size = groups.group_size
        g = groups.num_groups

        self.patch_embed = nn.Linear(self.time_patch * self.in_channels, node_dim)
        self.node_embed = nn.Parameter(torch.randn(self.num_nodes, node_dim) * 0.02)
        # small initial rows: a slot never seen in training adds (almost) nothing
        self.tod_embed = nn.Embedding(self.tod_slots, node_dim) if use_tod else None
        self.dow_embed = nn.Embedding(7, node_dim) if use_dow else None
        for table in (self.tod_embed, self.dow_embed):
            if table is not None:
                nn.init.normal_(table.weight, std=0.02)
        if adjacency is not None:
            adj = normalized_adjacency(adjacency)
            if adj.shape[0] != self.num_nodes:
                raise ValueError(f"adjacency is {tuple(adj.shape)} but num_nodes={self.num_nodes}")
            self.register_buffer("adjacency", adj)
            self.graph_mix = nn.Linear(node_dim, node_dim)
        else:
            self.adjacency = None
            self.graph_mix = None
        self.group_in = nn.Linear(self.group_size * node_dim, dim)
        self.position = LearnedPosition3d(dim, (self.t_tokens, g, 1))
        self.blocks = nn.ModuleList(
            SpacetimeBlock(dim, heads, attention, mlp_ratio=mlp_ratio, drop=dropout) for _ in range(attn_depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.group_out = nn.Linear(self.t_tokens * dim, self.group_size * node_dim)
        self.node_skip = nn.Linear(self.t_tokens * node_dim, node_dim)
        self.head_layers = nn.ModuleList(_NodeMLP(node_dim, dropout) for _ in range(head_layers))
        self.out = nn.Sequential(
            nn.LayerNorm(node_dim), nn.Linear(node_dim, 2 * node_dim), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(2 * node_dim, self.t_out * self.out_channels),
        )
        if residual:
            nn.init.zeros_(self.out[-1].weight)
            nn.init.zeros_(self.out[-1].bias)

    @property
    def output_layer(self) -> nn.Linear:
        """The last projection (zeroed when the model stands on a base forecast)."""
        return self.out[-1]

    @property
    def groups(self) -> SensorGroups:
        """The spatial :class:`~stpatch.patches.SensorGroups` (rebuilt from the buffers)."""
        return SensorGroups(self.num_nodes, self.group_size, self.group_perm, self.group_mask)

    def _time_embedding(self, values: torch.Tensor, table: nn.Embedding, b: int) -> torch.Tensor:
        """``(B, T_in)`` indices -> ``(B, nT, 1, node_dim)``, averaged within each time patch."""
        if values.shape != (b, self.t_in):
            raise ValueError(f"tod/dow must be (B, T_in) = ({b}, {self.t_in}), got {tuple(values.shape)}")
        e = table(values)  # (B, T_in, d)
        pad = self.t_tokens * self.time_patch - self.t_in
        if pad:
            e = torch.cat([e, e[:, -1:].expand(b, pad, e.shape[-1])], dim=1)
        return e.reshape(b, self.t_tokens, self.time_patch, -1).mean(2)[:, :, None]

    def forward(
        self, x: torch.Tensor, tod: torch.Tensor | None = None, dow: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(B, T_in, N, C) -> (B, T_out, N, C_out)``."""
        check_sensor(x, "stpnet_sensor", self.num_nodes, self.in_channels, self.t_in)
        b = x.shape[0]
        tokens, _ = patchify_sensors(x, self.time_patch, None, pad="replicate")  # (B, nT, N, pt*C)
        h = self.patch_embed(tokens) + self.node_embed
        if self.tod_embed is not None and tod is not None:
            slot = (tod.to(x.device).float() * self.tod_slots).floor().long().clamp(0, self.tod_slots - 1)
            h = h + self._time_embedding(slot, self.tod_embed, b)
        elif self.tod_embed is not None:  # keep the table in the graph (zero contribution) so DDP sees every parameter used
            h = h + 0.0 * self.tod_embed.weight[0]
        if self.dow_embed is not None and dow is not None:
            h = h + self._time_embedding(dow.to(x.device).long().clamp(0, 6), self.dow_embed, b)
        elif self.dow_embed is not None:
            h = h + 0.0 * self.dow_embed.weight[0]
        if self.graph_mix is not None:
            h = h + self.graph_mix(torch.einsum("nm,btmd->btnd", self.adjacency, h))
        groups = self.groups
        z = self.group_in(rearrange(groups.to_groups(h), "b t g k d -> b t g (k d)"))[:, :, :, None]
        if len(self.blocks):
            z = self.position(z)
            for block in self.blocks:
                z = block(z)
        z = self.norm(z[:, :, :, 0])  # (B, nT, G, dim)
        back = self.group_out(rearrange(z, "b t g d -> b g (t d)"))
        back = rearrange(back, "b g (k d) -> b 1 g k d", k=self.group_size)
        u = groups.from_groups(back)[:, 0] + self.node_skip(rearrange(h, "b t n d -> b n (t d)")) + self.node_embed
        for layer in self.head_layers:
            u = layer(u)
        out = rearrange(self.out(F.gelu(u)), "b n (t c) -> b t n c", t=self.t_out)
        return out + x[:, -1:] if self.residual else out
