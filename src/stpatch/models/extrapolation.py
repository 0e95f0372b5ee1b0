"""The radar nowcasting baseline: pysteps' Lucas-Kanade optical flow + semi-Lagrangian extrapolation."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from stpatch.models.registry import register_model


class Extrapolation(nn.Module):
    """Advect the last frame along the motion field of the last frames (pysteps' classic nowcast).

    The motion field comes from ``pysteps.motion`` (Lucas-Kanade by default) on the last
    ``motion_frames`` inputs, and each future step from ``pysteps.extrapolation``'s
    semi-Lagrangian scheme. Works on whatever units it is given (rain rate or dBR alike: advection
    moves values); areas that move in from outside the domain take the minimum of the input.

    Input ``(B, T_in, C, H, W)``, output ``(B, T_out, C, H, W)``; no parameters, CPU NumPy inside.
    Needs the ``pysteps`` package (``pip install stpatch[radar]``).
    """

    kind = "grid"

    def __init__(self, in_channels: int = 1, t_in: int = 4, t_out: int = 12, motion: str = "LK",
                 motion_frames: int = 3, **_: object):
        super().__init__()
        try:
            import pysteps.extrapolation
            import pysteps.motion
        except ImportError as err:  # pragma: no cover - pysteps is in the radar extra
            raise ImportError("the extrapolation baseline needs pysteps: pip install 'stpatch[radar]'") from err
        self.t_out = t_out
        self.motion_frames = max(2, min(motion_frames, t_in))
        self._motion = pysteps.motion.get_method(motion)
        self._extrapolate = pysteps.extrapolation.get_method("semilagrangian")

    def _one(self, frames: np.ndarray) -> np.ndarray:
        """``(T, H, W) -> (T_out, H, W)`` for one sequence and channel."""
        floor = float(np.nanmin(frames)) if np.isfinite(frames).any() else 0.0
        frames = np.where(np.isfinite(frames), frames, floor)
        if np.ptp(frames[-1]) == 0:  # a flat field has no motion to find
            return np.repeat(frames[-1:], self.t_out, axis=0)
        velocity = self._motion(frames[-self.motion_frames:], verbose=False)
        out = self._extrapolate(frames[-1], velocity, self.t_out, outval=floor)
        return np.where(np.isfinite(out), out, floor)

    def forward(self, x: torch.Tensor, **_: object) -> torch.Tensor:
        data = x.detach().cpu().double().numpy()
        b, _, c, h, w = data.shape
        out = np.empty((b, self.t_out, c, h, w))
        for i in range(b):
            for ch in range(c):
                out[i, :, ch] = self._one(data[i, :, ch])
        return torch.from_numpy(out).to(dtype=x.dtype, device=x.device)


@register_model("extrapolation")
def extrapolation(**kwargs) -> Extrapolation:
    """pysteps Lucas-Kanade + semi-Lagrangian extrapolation nowcast (radar baseline)."""
    return Extrapolation(**kwargs)
