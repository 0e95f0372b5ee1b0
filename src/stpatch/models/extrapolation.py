"""The radar nowcasting baseline: pysteps' Lucas-Kanade optical flow + semi-Lagrangian extrapolation."""

from __future__ import annotations

import hashlib
from collections import OrderedDict

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

    ``cache`` (number of sequences, 0 = off) keeps the nowcasts of inputs seen before, keyed by a
    hash of each sequence's bytes: as the base of a learned model (``model.base: extrapolation``) the
    same training windows come back every epoch, and the optical flow (~0.1 s per 128x128 window on
    a CPU) is then computed once per window instead of once per step.
    """

    kind = "grid"

    def __init__(self, in_channels: int = 1, t_in: int = 4, t_out: int = 12, motion: str = "LK",
                 motion_frames: int = 3, cache: int = 0, **_: object):
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
        self.cache_size = int(cache)
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()

    def _one(self, frames: np.ndarray) -> np.ndarray:
        """``(T, H, W) -> (T_out, H, W)`` for one sequence and channel."""
        floor = float(np.nanmin(frames)) if np.isfinite(frames).any() else 0.0
        frames = np.where(np.isfinite(frames), frames, floor)
        if np.ptp(frames[-1]) == 0:  # a flat field has no motion to find
            return np.repeat(frames[-1:], self.t_out, axis=0)
        velocity = self._motion(frames[-self.motion_frames:], verbose=False)
        out = self._extrapolate(frames[-1], velocity, self.t_out, outval=floor)
        return np.where(np.isfinite(out), out, floor)

    def _sequence(self, frames: np.ndarray) -> np.ndarray:
        """``(T, C, H, W) -> (T_out, C, H, W)``, from the cache when this input was seen before."""
        key = hashlib.blake2b(frames.tobytes(), digest_size=16).digest() + str(frames.shape).encode()
        if self.cache_size and key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        out = np.stack([self._one(frames[:, ch]) for ch in range(frames.shape[1])], axis=1)
        if self.cache_size:
            self._cache[key] = out.astype(np.float32)
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return out

    def forward(self, x: torch.Tensor, **_: object) -> torch.Tensor:
        data = x.detach().cpu().double().numpy()
        out = np.stack([self._sequence(data[i]) for i in range(data.shape[0])])
        return torch.from_numpy(out).to(dtype=x.dtype, device=x.device)


@register_model("extrapolation")
def extrapolation(**kwargs) -> Extrapolation:
    """pysteps Lucas-Kanade + semi-Lagrangian extrapolation nowcast (radar baseline)."""
    return Extrapolation(**kwargs)
