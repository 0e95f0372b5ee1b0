"""Training-time augmentations of whole grid fields that keep radar physics plausible.

A rotation by a multiple of 90 degrees or a mirror flip of the *whole* field, applied with the same
transform to a window's inputs, targets and masks, is another physically possible rain field: rain
advected towards the north-east becomes rain advected towards the south-east, with the same growth,
decay and intensities.  Only the orientation (prevailing wind directions, terrain) is lost, which is
why the augmentations are opt-in.

* ``"rot90"``: rotate by 0, 90, 180 or 270 degrees (square frames only: ``H == W``);
* ``"flip"``: mirror left-right and/or up-down, each with probability 1/2.

The draw for a window depends only on ``(seed, epoch, window index)``, so a run is reproducible and
resumes with the same augmentations, whatever the batch size, order or number of workers.
:class:`~stpatch.data.module.STDataModule` applies them to training batches only (``augment=`` option,
in a config ``data.options.augment: [rot90, flip]``); validation and test windows are never changed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["AUGMENTATIONS", "check_augment", "augment_batch"]

AUGMENTATIONS = ("rot90", "flip")
#: Batch keys transformed together: (B, T, C, H, W) each.
_KEYS = ("x", "y", "x_mask", "y_mask")


def check_augment(augment: str | Sequence[str] | None, kind: str, spatial_shape: Sequence[int]) -> tuple[str, ...]:
    """The augmentations as a tuple; errors name what is wrong and what to do."""
    if augment is None or augment is False:
        return ()
    names = (augment,) if isinstance(augment, str) else tuple(augment)
    bad = [n for n in names if n not in AUGMENTATIONS]
    if bad:
        raise ValueError(f"augment: unknown augmentation(s) {bad}; choose from {list(AUGMENTATIONS)}")
    if names and kind != "grid":
        raise ValueError(f"augment {list(names)} rotates or flips grid fields; this data is {kind} data (no augment)")
    if "rot90" in names and spatial_shape[0] != spatial_shape[1]:
        raise ValueError(
            f"augment 'rot90' needs square frames, these are {tuple(spatial_shape)} (H, W); crop them square "
            "or use 'flip' only"
        )
    return tuple(dict.fromkeys(names))


def _draw(seed: int, epoch: int, index: int, names: tuple[str, ...]) -> tuple[int, bool, bool]:
    """(quarter turns, flip left-right, flip up-down) for one window."""
    rng = np.random.default_rng([int(seed), int(epoch), int(index)])
    k = int(rng.integers(4)) if "rot90" in names else 0
    lr, ud = (bool(b) for b in rng.integers(2, size=2)) if "flip" in names else (False, False)
    return k, lr, ud


def _apply(t: torch.Tensor, k: int, lr: bool, ud: bool) -> torch.Tensor:
    if k:
        t = torch.rot90(t, k, dims=(-2, -1))
    if lr:
        t = torch.flip(t, dims=(-1,))
    if ud:
        t = torch.flip(t, dims=(-2,))
    return t


def augment_batch(batch: dict, names: tuple[str, ...], seed: int = 0, epoch: int = 0) -> dict:
    """A copy of ``batch`` with ``x``, ``y``, ``x_mask``, ``y_mask`` (``(B, T, C, H, W)``) of each window
    rotated/flipped alike; the draw of window ``b`` is seeded by ``(seed, epoch, batch["index"][b])``."""
    if not names:
        return batch
    out = dict(batch)
    index = batch["index"].tolist() if "index" in batch else list(range(batch["x"].shape[0]))
    draws = [_draw(seed, epoch, i, names) for i in index]
    for key in _KEYS:
        if key in batch:
            out[key] = torch.stack([_apply(batch[key][b], *d) for b, d in enumerate(draws)]).contiguous()
    return out
