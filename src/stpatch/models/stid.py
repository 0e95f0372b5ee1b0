"""STID: an MLP over spatial and temporal identities, the simple strong baseline of traffic forecasting.

Z. Shao, Z. Zhang, F. Wang, W. Wei, Y. Xu, "Spatial-Temporal Identity: A Simple yet Effective
Baseline for Multivariate Time Series Forecasting", CIKM 2022 (arXiv:2208.05233). Written from
the paper::

    x (B, T_in, N, C)
      -> per sensor, the window flattened and embedded: Linear(T_in*C -> embed_dim)   (a 1x1 conv)
      -> concatenated with the node embedding E_n (spatial identity), the time-of-day embedding
         T_tod and the day-of-week embedding T_dow of the last input step (temporal identities)
      -> L residual MLP layers: h + FC(Dropout(ReLU(FC(h))))
      -> regression layer Linear(hidden -> T_out*C)                                   (B, T_out, N, C)

The defaults are the paper's (embeddings of 32, 3 layers, dropout 0.15, 288 time-of-day slots);
the input embedding reads the measured channels only, the time identities come as ``tod``/``dow``.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from stpatch.models._common import check_sensor
from stpatch.models.registry import register_model

__all__ = ["STID"]


class _ResidualMLP(nn.Module):
    """``h + fc2(dropout(relu(fc1(h))))`` on the last axis."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.fc2(self.drop(torch.relu(self.fc1(h))))


@register_model("stid")
class STID(nn.Module):
    """STID (Shao et al., CIKM 2022): ``(B, T_in, N, C) -> (B, T_out, N, C_out)``.

    Args:
        in_channels, t_in, t_out: the usual; ``num_nodes``: ``N`` (required).
        out_channels: defaults to ``in_channels``.
        embed_dim: size of the window embedding.
        node_dim, tod_dim, dow_dim: sizes of the spatial and temporal identity embeddings.
        num_layers: residual MLP layers ``L``.
        tod_slots: time-of-day slots (288 = 5-minute steps).
        use_node, use_tod, use_dow: which identities are attached (the paper's ablations).
        dropout: in the MLP layers.

    ``forward(x, tod=None, dow=None)``: ``tod`` ``(B, T_in)`` float in ``[0, 1)``, ``dow``
    ``(B, T_in)`` int in ``0..6``; the last step's are used. A missing ``tod``/``dow`` contributes
    a zero embedding.
    """

    kind = "sensor"

    def __init__(
        self,
        in_channels: int = 1,
        t_in: int = 12,
        t_out: int = 12,
        num_nodes: int | None = None,
        out_channels: int | None = None,
        embed_dim: int = 32,
        node_dim: int = 32,
        tod_dim: int = 32,
        dow_dim: int = 32,
        num_layers: int = 3,
        tod_slots: int = 288,
        use_node: bool = True,
        use_tod: bool = True,
        use_dow: bool = True,
        dropout: float = 0.15,
    ) -> None:
        super().__init__()
        if num_nodes is None:
            raise ValueError("stid needs num_nodes=N (the number of sensors)")
        self.in_channels, self.t_in, self.t_out = int(in_channels), int(t_in), int(t_out)
        self.num_nodes, self.out_channels = int(num_nodes), int(out_channels or in_channels)
        self.tod_slots = int(tod_slots)
        self.series_embed = nn.Linear(self.t_in * self.in_channels, embed_dim)
        self.node_embed = nn.Parameter(torch.empty(self.num_nodes, node_dim)) if use_node else None
        self.tod_embed = nn.Parameter(torch.empty(self.tod_slots, tod_dim)) if use_tod else None
        self.dow_embed = nn.Parameter(torch.empty(7, dow_dim)) if use_dow else None
        for table in (self.node_embed, self.tod_embed, self.dow_embed):
            if table is not None:
                nn.init.xavier_uniform_(table)
        hidden = embed_dim + sum(t.shape[1] for t in (self.node_embed, self.tod_embed, self.dow_embed) if t is not None)
        self.encoder = nn.Sequential(*(_ResidualMLP(hidden, dropout) for _ in range(num_layers)))
        self.regression = nn.Linear(hidden, self.t_out * self.out_channels)

    @property
    def output_layer(self) -> nn.Linear:
        """The regression layer (zeroed when the model stands on a base forecast)."""
        return self.regression

    def _identity(self, table: torch.Tensor, index: torch.Tensor | None, b: int, n: int) -> torch.Tensor:
        """``(B,)`` row indices -> ``(B, N, dim)``; zeros (kept in the graph) without an index."""
        if index is None:
            return (0.0 * table[0]).expand(b, n, -1)
        return table[index][:, None].expand(b, n, -1)

    def forward(self, x: torch.Tensor, tod: torch.Tensor | None = None, dow: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, T_in, N, C) -> (B, T_out, N, C_out)``."""
        check_sensor(x, "stid", self.num_nodes, self.in_channels, self.t_in)
        b, _, n, _ = x.shape
        for name, value in (("tod", tod), ("dow", dow)):
            if value is not None and value.shape != (b, self.t_in):
                raise ValueError(f"stid: {name} must be (B, T_in) = ({b}, {self.t_in}), got {tuple(value.shape)}")
        parts = [self.series_embed(rearrange(x, "b t n c -> b n (t c)"))]
        if self.node_embed is not None:
            parts.append(self.node_embed.expand(b, n, -1))
        if self.tod_embed is not None:
            slot = None if tod is None else (tod[:, -1].float() * self.tod_slots).floor().long().clamp(0, self.tod_slots - 1)
            parts.append(self._identity(self.tod_embed, slot, b, n))
        if self.dow_embed is not None:
            day = None if dow is None else dow[:, -1].long().clamp(0, 6)
            parts.append(self._identity(self.dow_embed, day, b, n))
        h = self.encoder(torch.cat(parts, dim=-1))
        return rearrange(self.regression(h), "b n (t c) -> b t n c", t=self.t_out)
