"""The Lightning DataModule the training engine uses: :func:`make_datamodule` / :class:`STDataModule`.

Batches are dicts:

* ``"x"``: float32 ``(B, T_in, C, H, W)`` (grid) or ``(B, T_in, N, C)`` (sensor), scaled, with
  missing values set to 0;
* ``"y"``: float32 targets, same layout with ``T_out``;
* ``"x_mask"``, ``"y_mask"``: bool like ``x`` / ``y``, True = observed (always present);
* ``"tod"`` float32 ``(B, T_in)`` in [0, 1) and ``"dow"`` int64 ``(B, T_in)`` (Monday = 0) when
  timestamps are known (also ``"y_tod"``, ``"y_dow"`` for the targets);
* ``"index"``: int64 ``(B,)`` window id within the split.

>>> dm = make_datamodule("digits", batch_size=4, train_size=8, val_size=4, test_size=4)
>>> b = next(iter(dm.train_dataloader()))
>>> tuple(b["x"].shape), tuple(b["y"].shape)
((4, 10, 1, 64, 64), (4, 10, 1, 64, 64))
"""

from __future__ import annotations

import warnings

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from .augment import augment_batch, check_augment
from .core import SpatioTemporalData
from .moving import MovingDigits
from .registry import load
from .scalers import IdentityScaler, Scaler, get_scaler, scaler_from_state
from .streaming import read_blocks
from .windows import WindowDataset, collate, split_ranges

__all__ = ["STDataModule", "make_datamodule"]


class STDataModule(L.LightningDataModule):
    """Windows of a data set, split chronologically, scaled with a scaler fitted on train only.

    Attributes (available right after construction)
    ----------------------------------------------
    kind: ``"grid"`` or ``"sensor"``.
    in_channels: ``C``.
    spatial_shape: ``(H, W)`` or ``(N,)``.
    num_nodes: ``N`` for sensors, else None.
    t_in, t_out: window lengths.
    coords, adjacency, info: from the data.
    lat: ``(H,)`` latitudes for lat-weighted metrics, or None.
    scaler: the fitted scaler (fitting happens on first access or in :meth:`setup`).

    See :func:`make_datamodule` for the parameters.
    """

    def __init__(
        self,
        data,
        t_in: int | None = None,
        t_out: int | None = None,
        batch_size: int = 16,
        split=None,
        stride: int = 1,
        scaler="auto",
        num_workers: int = 0,
        seed: int = 0,
        data_dir=None,
        eval_stride: int | None = None,
        eval_batch_size: int | None = None,
        empty_windows: str = "drop",
        drop_last: bool = False,
        pin_memory: bool = False,
        augment=None,
        **dataset_options,
    ):
        super().__init__()
        if isinstance(data, str):
            data = load(data, data_dir=data_dir, **dataset_options)
        elif dataset_options:
            raise ValueError(
                f"options {sorted(dataset_options)} are for loading a named data set; pass the data set's name "
                "instead of a data object, or drop them"
            )
        if not isinstance(data, SpatioTemporalData | MovingDigits):
            raise TypeError(
                f"data should be a data set name, a SpatioTemporalData or MovingDigits, got {type(data).__name__}"
            )
        self.data = data
        self.info = data.info
        self.kind = data.kind
        self.in_channels = data.num_channels
        self.spatial_shape = tuple(data.spatial_shape)
        self.num_nodes = data.num_nodes
        self.coords = data.coords
        self.adjacency = data.adjacency
        lat = data.lat
        self.lat = None if lat is None else np.asarray(lat, dtype=np.float64)
        self.channels = list(data.channels)
        if self.info is not None:
            default_t = (self.info.t_in, self.info.t_out)
        elif isinstance(data, MovingDigits):
            default_t = (data.seq_len // 2, data.seq_len - data.seq_len // 2)
        else:
            default_t = (None, None)
        self.t_in = int(t_in if t_in is not None else default_t[0] or 0)
        self.t_out = int(t_out if t_out is not None else default_t[1] or 0)
        if self.t_in < 1 or self.t_out < 1:
            raise ValueError(
                f"t_in and t_out must be >= 1 (got t_in={t_in}, t_out={t_out}); pass them for data without a registry entry"
            )
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.split = (
            split
            if split is not None
            else (self.info.default_split if self.info is not None else (0.7, 0.1, 0.2))
        )
        self.stride = int(stride)
        self.eval_stride = int(eval_stride or stride)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.empty_windows = empty_windows
        self.drop_last = bool(drop_last)
        self.pin_memory = bool(pin_memory)
        self.augment = check_augment(augment, self.kind, self.spatial_shape)
        self._scaler_spec = scaler
        self._scaler: Scaler | None = None
        self._datasets: dict | None = None  # None until setup; then the splits built so far
        self._observed: dict = {}  # observed steps per (segment, start, stop), shared by the splits
        self.ranges: dict | None = None

    # ------------------------------------------------------------------ setup
    def _choose_scaler(self) -> Scaler:
        spec = self._scaler_spec
        axis = -3 if self.kind == "grid" else -1
        if isinstance(self.data, MovingDigits):
            if spec not in ("auto", None, "identity", "none") and not isinstance(spec, IdentityScaler):
                warnings.warn(
                    f"{self.data.name}: values are in [0, 1]; scaler={spec!r} is applied anyway", stacklevel=3
                )
            else:
                return IdentityScaler(axis)
        if isinstance(spec, str) and spec == "auto":
            if isinstance(self.data, SpatioTemporalData) and self.data.attrs.get("transform"):
                spec = "standard"  # already in dBR / log units
            elif self.info is not None:
                spec = self.info.default_scaler
            else:  # user data may say what suits it (from_radar: "db")
                spec = getattr(self.data, "attrs", {}).get("default_scaler") or "standard"
        return get_scaler(spec, channel_axis=axis)

    def setup(self, stage: str | None = None) -> None:
        """Split the data and fit the scaler on train (idempotent); the train windows are built now
        (unless ``stage`` is ``"test"`` or ``"predict"``), the others when first asked for.

        The scaler's statistics and the train split's observed steps come from one streaming pass
        (:mod:`stpatch.data.streaming`), so data larger than memory never sits in memory whole."""
        if self._datasets is not None:
            return
        if isinstance(self.data, MovingDigits):
            if (
                self.data.test_sequences is not None
                and self.t_in + self.t_out > self.data.test_sequences.shape[0]
            ):
                raise ValueError(
                    f"t_in + t_out = {self.t_in + self.t_out} but the canonical Moving MNIST test sequences have "
                    f"{self.data.test_sequences.shape[0]} frames"
                )
            scaler = self._scaler if self._scaler is not None else self._choose_scaler()
            if not scaler.fitted:
                scaler.fit(self.training_sample())
            self._scaler = scaler
            self._datasets = {
                s: self.data.dataset(s, self.t_in, self.t_out) for s in ("train", "val", "test")
            }
            self.ranges = {"train": "generated", "val": "generated", "test": "generated"}
            return
        data = self.data
        self.ranges = split_ranges(data.lengths, self.split, data.times, window=self.t_in + self.t_out)
        self._observed = {}
        scaler = self._scaler if self._scaler is not None else self._choose_scaler()
        if not scaler.fitted:
            try:
                scaler.fit_blocks(self._training_blocks())
            except ValueError:
                # no observed value to fit on: when the train split has no window either, say that
                self._datasets = {}
                try:
                    self.dataset("train")
                finally:
                    self._datasets = None
                raise
        self._scaler = scaler
        self._datasets = {}
        if stage in (None, "fit"):
            self.dataset("train")  # fails now, not at the first batch, when no training window fits

    def _training_blocks(self):
        """``(values, valid)`` blocks of the train ranges, for the scaler; the observed steps that the
        train windows need are taken from the same blocks, so fitting costs one pass over the split."""
        data = self.data
        for seg, a, b in self.ranges["train"]:
            flags = np.empty(b - a, dtype=bool)
            for t, e, x, valid in read_blocks(data.segments[seg], data.segment_mask(seg), data.null_value, a, b,
                                              dtype=np.float64):
                flags[t - a : e - a] = valid.reshape(valid.shape[0], -1).any(1)
                yield x, valid
            self._observed[(seg, a, b)] = flags

    def _build(self, split: str) -> WindowDataset:
        """The window dataset of ``split``, scaled with the fitted scaler; built on first use, so that a
        job reads only the splits it uses (evaluation: the test split)."""
        data, L_ = self.data, self.t_in + self.t_out
        stride = self.stride if split == "train" else self.eval_stride
        ds = WindowDataset(data, self.t_in, self.t_out, self.ranges[split], stride, scaler=self._scaler,
                           split_name=split, empty_windows=self.empty_windows, observed=self._observed)
        if split == "train" and len(ds) == 0:
            ranges = self.ranges["train"]
            raise ValueError(
                f"{data.name!r}: the train split has no window of t_in + t_out = {L_} steps "
                f"(segment lengths {data.lengths}, train ranges (segment, start, stop) {ranges}"
                + (f", {ds.num_dropped} all-missing windows dropped" if ds.num_dropped else "")
                + "); the series is shorter than one window: use a shorter t_in/t_out or more data"
            )
        if len(ds) == 0 and ds.ranges:
            warnings.warn(
                f"{data.name!r}: the {split} split has no window of {L_} steps (ranges {ds.ranges})", stacklevel=3
            )
        return ds

    def training_sample(self) -> np.ndarray:
        """Generated data only: the first (up to 64) training sequences ``(B, T, C, H, W)``, which the
        scaler is fitted on and the run's data profile describes."""
        if not isinstance(self.data, MovingDigits):
            raise TypeError("training_sample is for generated data; use the train ranges of a SpatioTemporalData")
        return np.stack([self.data.sequence("train", i) for i in range(min(64, self.data.sizes["train"]))])

    # ------------------------------------------------------------------ accessors
    @property
    def scaler(self) -> Scaler:
        if self._scaler is None or not self._scaler.fitted:
            self.setup()
        return self._scaler

    def dataset(self, split: str):
        """The PyTorch dataset of ``split`` (``"train"``, ``"val"`` or ``"test"``)."""
        self.setup()
        if split not in self._datasets:
            if split not in ("train", "val", "test"):
                raise ValueError(f"split should be 'train', 'val' or 'test', got {split!r}")
            self._datasets[split] = self._build(split)
        return self._datasets[split]

    @property
    def train_dataset(self):
        return self.dataset("train")

    @property
    def val_dataset(self):
        return self.dataset("val")

    @property
    def test_dataset(self):
        return self.dataset("test")

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        ds = self.dataset(split)
        return DataLoader(
            ds,
            batch_size=self.batch_size if split == "train" else self.eval_batch_size,
            sampler=EpochShuffleSampler(len(ds), self.seed) if shuffle else None,
            num_workers=self.num_workers,
            drop_last=self.drop_last and split == "train",
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            collate_fn=collate,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        """Training batches only: the opt-in rotations/flips (:mod:`stpatch.data.augment`), seeded by
        ``(seed, epoch, window index)``; validation, test and prediction batches pass unchanged."""
        trainer = self.trainer
        if self.augment and trainer is not None and trainer.training:
            return augment_batch(batch, self.augment, self.seed, trainer.current_epoch)
        return batch

    def inverse_transform(self, x):
        """Scaled values (numpy or torch, batch layout) back to data units."""
        return self.scaler.inverse_transform(x)

    def describe(self) -> dict:
        """Counts and shapes, for logs and reports."""
        self.setup()
        return {
            "name": getattr(self.data, "name", None),
            "kind": self.kind,
            "in_channels": self.in_channels,
            "spatial_shape": self.spatial_shape,
            "t_in": self.t_in,
            "t_out": self.t_out,
            "windows": {k: len(self.dataset(k)) for k in ("train", "val", "test")},
            "augment": list(self.augment),
            "split": self.ranges,
            "scaler": repr(self.scaler),
        }

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Stored by Lightning in checkpoints: the fitted scaler and the window settings."""
        return {
            "scaler": self.scaler.state_dict(),
            "t_in": self.t_in,
            "t_out": self.t_out,
            "channels": self.channels,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore the fitted scaler (so that resuming never refits on different data)."""
        if "scaler" in state:
            self._scaler = scaler_from_state(state["scaler"])
            if self._datasets is not None:
                for ds in self._datasets.values():
                    if hasattr(ds, "scaler"):
                        ds.scaler = self._scaler

    def __repr__(self) -> str:
        return (
            f"STDataModule({getattr(self.data, 'name', '?')!r}, kind={self.kind!r}, in_channels={self.in_channels}, "
            f"spatial_shape={self.spatial_shape}, t_in={self.t_in}, t_out={self.t_out}, batch_size={self.batch_size})"
        )


class EpochShuffleSampler(Sampler[int]):
    """A random order that depends only on ``(seed, epoch)``.

    Lightning calls ``set_epoch`` before every epoch, so a run resumed at epoch k sees the same
    order as an uninterrupted one (a generator seeded once would depend on how many epochs ran
    in this process).
    """

    def __init__(self, size: int, seed: int = 0):
        self.size = int(size)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


def make_datamodule(
    data,
    t_in: int | None = None,
    t_out: int | None = None,
    batch_size: int = 16,
    split=None,
    stride: int = 1,
    scaler="auto",
    num_workers: int = 0,
    seed: int = 0,
    **dataset_options,
) -> STDataModule:
    """A :class:`STDataModule` for a named data set or a ``SpatioTemporalData``.

    Parameters
    ----------
    data: a registry name (``"moving_mnist"``, ``"los_loop"`` ...; loaded with ``dataset_options``
        and ``data_dir``) or a ``SpatioTemporalData`` / ``MovingDigits``.
    t_in, t_out: input and target steps (default: the registry entry's).
    batch_size: training batch size (``eval_batch_size=`` for val/test, default the same).
    split: fractions ``(0.7, 0.1, 0.2)``, two dates ``(val_start, test_start)``, ``"event"`` or a
        dict (see :mod:`stpatch.data.windows`); default: the registry entry's, else 0.7/0.1/0.2.
    stride: steps between window starts in train (``eval_stride=`` for val/test, default the same).
    scaler: ``"auto"`` (the registry's choice: identity for digits, dB for radar, standard
        otherwise), ``"standard"``, ``"minmax"``, ``"log"``, ``"db"``, ``"identity"`` or a Scaler.
    num_workers: DataLoader workers (0 works everywhere).
    seed: seeds the training shuffle (and nothing else: generated sequences use their own seed).
    dataset_options: ``data_dir=``, ``eval_stride=``, ``eval_batch_size=``, ``empty_windows=``
        (``"drop"`` | ``"error"`` | ``"keep"``), ``drop_last=``, ``pin_memory=``,
        ``augment=["rot90", "flip"]`` (training batches only, see :mod:`stpatch.data.augment`), and
        options of the named data set's loader (``train_size=``, ``crop=`` ...).
    """
    return STDataModule(
        data,
        t_in=t_in,
        t_out=t_out,
        batch_size=batch_size,
        split=split,
        stride=stride,
        scaler=scaler,
        num_workers=num_workers,
        seed=seed,
        **dataset_options,
    )
