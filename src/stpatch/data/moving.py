"""Moving digits: Moving MNIST (Srivastava et al., 2015) and a file-free variant on sklearn digits.

The standard protocol: ``num_digits=2`` digits of 28x28 bounce inside a 64x64 canvas, each
with a random direction and a speed of ``step_length=0.1`` of the free range per frame,
overlapping digits combine by maximum; sequences of 20 frames, 10 in and 10 out; values in
[0, 1].

* Training sequences are generated on the fly from the training digits; sequence ``i`` always
  comes from ``numpy.random.default_rng([seed, 0, i])``, so every epoch (and every worker)
  sees the same data.
* Validation (``[seed, 1, i]``) draws from the training digits, test (``[seed, 2, i]``) from the
  test digits; both are fixed.  When the canonical ``mnist_test_seq.npy`` (shape
  ``(20, 10000, 64, 64)``, uint8) is in the data directory, the test set is read from it instead.

The registry entries and loaders (``load_moving_mnist``, ``load_sklearn_digits``,
``sklearn_digit_images``, ``MNIST_FILES``, ``CANONICAL_TEST``) moved to
:mod:`stpatch.data.sets.moving`; they are still importable from here.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .core import DatasetInfo, SpatioTemporalData
from .sets import moved_attribute

__all__ = [
    "bouncing_trajectory",
    "make_moving_digits",
    "MovingDigits",
    "MovingDigitsDataset",
    "load_moving_mnist",  # noqa: F822 - served by __getattr__
    "load_sklearn_digits",  # noqa: F822 - served by __getattr__
    "sklearn_digit_images",  # noqa: F822 - served by __getattr__
]

_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
_MOVED = ("load_moving_mnist", "load_sklearn_digits", "sklearn_digit_images", "MNIST_FILES", "CANONICAL_TEST")


def __getattr__(name: str):  # the loaders moved to stpatch.data.sets.moving; read on first use
    return moved_attribute(__name__, "moving", _MOVED, name)


def bouncing_trajectory(rng: np.random.Generator, length: int, step_length: float = 0.1) -> np.ndarray:
    """Positions in [0, 1]^2 of a point bouncing off the walls, ``(length, 2)`` as (y, x).

    Starts at a uniform random position with a uniform random direction and moves by
    ``step_length`` per frame (the classic Moving MNIST generator).
    """
    pos = rng.random(2)
    theta = rng.random() * 2.0 * np.pi
    vel = np.array([np.sin(theta), np.cos(theta)])
    out = np.empty((length, 2))
    for t in range(length):
        pos = pos + vel * step_length
        for k in range(2):
            if pos[k] <= 0.0:
                pos[k], vel[k] = 0.0, -vel[k]
            elif pos[k] >= 1.0:
                pos[k], vel[k] = 1.0, -vel[k]
        out[t] = pos
    return out


def make_moving_digits(
    digits: np.ndarray,
    rng: np.random.Generator,
    length: int = 20,
    image_size: int = 64,
    num_digits: int = 2,
    step_length: float = 0.1,
) -> np.ndarray:
    """One sequence of ``num_digits`` digits bouncing in a square canvas.

    Parameters
    ----------
    digits: ``(K, d, d)`` digit images, uint8 in [0, 255] or float in [0, 1].
    rng: the random generator (seed it per sequence for reproducibility).

    Returns
    -------
    float32 array ``(length, 1, image_size, image_size)`` in [0, 1].
    """
    d = digits.shape[-1]
    if d > image_size:
        raise ValueError(f"digit size {d} is larger than the canvas {image_size}")
    scale = 255.0 if digits.dtype == np.uint8 else 1.0
    free = image_size - d
    out = np.zeros((length, 1, image_size, image_size), dtype=np.float32)
    picks = rng.integers(0, len(digits), size=num_digits)
    for k in picks:
        img = digits[k].astype(np.float32) / scale
        yx = (bouncing_trajectory(rng, length, step_length) * free).astype(np.int64)
        for t in range(length):
            y, x = yx[t]
            tile = out[t, 0, y : y + d, x : x + d]
            np.maximum(tile, img, out=tile)
    return out


class MovingDigits:
    """A generated-sequence data source (Moving MNIST protocol) that plugs into the DataModule.

    Attributes mirror :class:`~stpatch.data.core.SpatioTemporalData` where they make sense:
    ``kind="grid"``, ``channels=["intensity"]``, ``spatial_shape=(H, W)``, no coords, times or
    adjacency.  Use :meth:`dataset` for the PyTorch datasets and :meth:`to_data` to get a fixed
    set of sequences as a ``SpatioTemporalData`` (one segment per sequence).
    """

    kind = "grid"
    coords = None
    adjacency = None
    times = None
    mask = None
    null_value = None
    lat = None

    def __init__(
        self,
        train_digits: np.ndarray,
        test_digits: np.ndarray,
        name: str,
        info: DatasetInfo | None = None,
        image_size: int = 64,
        num_digits: int = 2,
        seq_len: int = 20,
        step_length: float = 0.1,
        train_size: int = 10000,
        val_size: int = 1000,
        test_size: int = 10000,
        seed: int = 0,
        test_sequences: np.ndarray | None = None,
        test_source: str | None = None,
    ):
        self.train_digits, self.test_digits = train_digits, test_digits
        self.name, self.info = name, info
        self.image_size, self.num_digits = int(image_size), int(num_digits)
        self.seq_len, self.step_length = int(seq_len), float(step_length)
        self.seed = int(seed)
        self.test_sequences = test_sequences
        self.test_source = test_source
        if test_sequences is not None:
            if test_size > test_sequences.shape[1]:
                raise ValueError(
                    f"test_size={test_size} but {test_source or 'the canonical test file'} holds "
                    f"{test_sequences.shape[1]} sequences"
                )
            self.image_size = int(test_sequences.shape[-1])
        self.sizes = {"train": int(train_size), "val": int(val_size), "test": int(test_size)}
        self.channels = ["intensity"]
        self.attrs = {"value_range": (0.0, 1.0)}
        if self.train_digits.shape[-1] > self.image_size:
            raise ValueError(
                f"digit size {self.train_digits.shape[-1]} is larger than image_size={self.image_size}"
            )

    # data-like properties
    @property
    def num_channels(self) -> int:
        return 1

    @property
    def spatial_shape(self) -> tuple[int, int]:
        return (self.image_size, self.image_size)

    @property
    def num_nodes(self):
        return None

    def sequence(self, split: str, i: int, length: int | None = None) -> np.ndarray:
        """Sequence ``i`` of ``split`` as float32 ``(length, 1, H, W)`` in [0, 1]."""
        length = self.seq_len if length is None else int(length)
        if split not in _SPLIT_CODE:
            raise ValueError(f"split should be one of {tuple(_SPLIT_CODE)}, got {split!r}")
        if not 0 <= i < self.sizes[split]:
            raise IndexError(f"sequence {i} out of range for the {split} set of {self.sizes[split]}")
        if split == "test" and self.test_sequences is not None:
            if length > self.test_sequences.shape[0]:
                raise ValueError(
                    f"t_in + t_out = {length} but the canonical test sequences have {self.test_sequences.shape[0]} frames"
                )
            seq = np.asarray(self.test_sequences[:length, i], dtype=np.float32) / 255.0
            return seq[:, None]
        digits = self.test_digits if split == "test" else self.train_digits
        rng = np.random.default_rng([self.seed, _SPLIT_CODE[split], int(i)])
        return make_moving_digits(digits, rng, length, self.image_size, self.num_digits, self.step_length)

    def dataset(self, split: str, t_in: int = 10, t_out: int = 10) -> MovingDigitsDataset:
        return MovingDigitsDataset(self, split, t_in, t_out)

    def to_data(
        self, split: str = "test", n: int | None = None, length: int | None = None
    ) -> SpatioTemporalData:
        """The first ``n`` sequences of ``split`` as a ``SpatioTemporalData`` (one segment each)."""
        n = self.sizes[split] if n is None else min(int(n), self.sizes[split])
        segs = [self.sequence(split, i, length) for i in range(n)]
        return SpatioTemporalData(
            kind="grid",
            segments=segs,
            channels=list(self.channels),
            info=self.info,
            name=f"{self.name}:{split}",
        )

    def __repr__(self) -> str:
        test = (
            f"canonical test file {self.test_source}" if self.test_sequences is not None else "generated test"
        )
        return (
            f"MovingDigits(name={self.name!r}, image_size={self.image_size}, num_digits={self.num_digits}, "
            f"sizes={self.sizes}, {test})"
        )


class MovingDigitsDataset(Dataset):
    """Windows of a :class:`MovingDigits` split; same sample keys as ``WindowDataset`` (no times)."""

    def __init__(self, source: MovingDigits, split: str, t_in: int = 10, t_out: int = 10):
        if t_in < 1 or t_out < 0:
            raise ValueError(f"t_in must be >= 1 and t_out >= 0, got {t_in}, {t_out}")
        self.source, self.split = source, split
        self.t_in, self.t_out = int(t_in), int(t_out)
        self.split_name = split

    def __len__(self) -> int:
        return self.source.sizes[self.split]

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(f"sequence {i} out of range for {len(self)} sequences")
        seq = self.source.sequence(self.split, int(i), self.t_in + self.t_out)
        x, y = np.ascontiguousarray(seq[: self.t_in]), np.ascontiguousarray(seq[self.t_in :])
        return {
            "x": torch.from_numpy(x),
            "y": torch.from_numpy(y),
            "x_mask": torch.from_numpy(np.ones(x.shape, dtype=bool)),
            "y_mask": torch.from_numpy(np.ones(y.shape, dtype=bool)),
            "index": torch.tensor(int(i), dtype=torch.long),
        }
