"""The moving-digits family: ``moving_mnist`` (the Moving MNIST protocol) and ``digits`` (no files).

The generator itself (:class:`~stpatch.data.moving.MovingDigits`, :func:`make_moving_digits`) lives in
:mod:`stpatch.data.moving`; this module holds the registry entries and the loaders that read the digits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core import DatasetInfo
from ..idx import read_idx
from ..moving import MovingDigits
from ..registry import missing_file_error

__all__ = [
    "MOVING_MNIST",
    "DIGITS",
    "DATASETS",
    "MNIST_FILES",
    "CANONICAL_TEST",
    "load_moving_mnist",
    "load_sklearn_digits",
    "sklearn_digit_images",
]

_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_MNIST_SHA = {
    "train-images-idx3-ubyte.gz": "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

MOVING_MNIST = DatasetInfo(
    name="moving_mnist",
    kind="grid",
    field="video",
    description="Moving MNIST: 2 MNIST digits bouncing in 64x64 frames, 10 frames in, 10 out",
    source=(
        "N. Srivastava, E. Mansimov, R. Salakhutdinov, 'Unsupervised Learning of Video Representations "
        "using LSTMs', ICML 2015 (http://www.cs.toronto.edu/~nitish/unsupervised_video/); digits from "
        "MNIST, Y. LeCun, C. Cortes, C. Burges (http://yann.lecun.com/exdb/mnist/)"
    ),
    license="MNIST: commonly cited as CC BY-SA 3.0",
    files=tuple(f"mnist/{f}" for f in _MNIST_SHA) + ("mnist/mnist_test_seq.npy (optional)",),
    sample_shape="(20, 1, 64, 64) per sequence; a step is (1, 64, 64) in [0, 1]",
    t_in=10,
    t_out=10,
    step="frame",
    split=(
        "train: train_size (10000) sequences generated on the fly from the 60000 MNIST training digits "
        "(sequence i seeded by (seed, 0, i)); val: val_size (1000) fixed sequences from the training digits "
        "(seed, 1, i); test: test_size (10000) fixed sequences from the 10000 MNIST test digits (seed, 2, i), "
        "or the canonical mnist_test_seq.npy when present"
    ),
    default_split="generated",
    default_scaler="identity",
    units="intensity in [0, 1]",
    urls={
        **{f"mnist/{f}": (tuple(m + f for m in _MNIST_MIRRORS), s) for f, s in _MNIST_SHA.items()},
        "mnist/mnist_test_seq.npy": (
            "http://www.cs.toronto.edu/~nitish/unsupervised_video/mnist_test_seq.npy",
            None,
            "optional",
        ),
    },
    notes=(
        "options: train_size, val_size, test_size, seed, num_digits, image_size, seq_len, step_length, "
        "use_canonical_test. Metrics follow the video convention: MSE/MAE summed per frame, SSIM, PSNR."
    ),
)

DIGITS = DatasetInfo(
    name="digits",
    kind="grid",
    field="video",
    description="Moving digits from scikit-learn's bundled 8x8 digits upscaled to 28x28; needs no files",
    source="scikit-learn load_digits (UCI ML hand-written digits, E. Alpaydin, C. Kaynak, 1998)",
    license="scikit-learn bundled data (BSD-3-Clause package; UCI data CC BY 4.0)",
    files=(),
    sample_shape="(20, 1, 64, 64) per sequence; a step is (1, 64, 64) in [0, 1]",
    t_in=10,
    t_out=10,
    step="frame",
    split=(
        "train: train_size (2000) sequences generated on the fly from digit images 0..1499; val: val_size "
        "(200) fixed sequences from the same images; test: test_size (500) fixed sequences from images "
        "1500..1796"
    ),
    default_split="generated",
    default_scaler="identity",
    units="intensity in [0, 1]",
    notes=(
        "options as moving_mnist plus digit_size (28) and n_train_images (1500); the default data of "
        "`make demo` (image_size=32, digit_size=14 make it four times cheaper)."
    ),
)


# ----------------------------------------------------------------------------- loaders
MNIST_FILES = {
    "train_images": "mnist/train-images-idx3-ubyte.gz",
    "train_labels": "mnist/train-labels-idx1-ubyte.gz",
    "test_images": "mnist/t10k-images-idx3-ubyte.gz",
    "test_labels": "mnist/t10k-labels-idx1-ubyte.gz",
}
CANONICAL_TEST = "mnist/mnist_test_seq.npy"


def _find(data_dir: Path, rel: str) -> Path | None:
    """``rel`` or its uncompressed twin (without ``.gz``), also looked for directly in data_dir."""
    cands = [data_dir / rel, data_dir / rel.removesuffix(".gz")]
    cands += [data_dir / Path(rel).name, data_dir / Path(rel.removesuffix(".gz")).name]
    for c in cands:
        if c.exists():
            return c
    return None


def _read_canonical(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r")
    except Exception as e:  # noqa: BLE001 - numpy raises several kinds for bad files
        raise ValueError(
            f"{path}: cannot read as .npy ({e}); expected the canonical Moving MNIST test set"
        ) from e
    if arr.ndim != 4 or arr.shape[2:] != (64, 64):
        raise ValueError(
            f"{path}: expected the canonical Moving MNIST test set of shape (20, 10000, 64, 64), found {arr.shape}"
        )
    return arr


def load_moving_mnist(
    data_dir: Path,
    info: DatasetInfo | None = None,
    train_size: int = 10000,
    val_size: int = 1000,
    test_size: int = 10000,
    seed: int = 0,
    num_digits: int = 2,
    image_size: int = 64,
    seq_len: int = 20,
    step_length: float = 0.1,
    use_canonical_test: bool = True,
) -> MovingDigits:
    """Moving MNIST from the four MNIST idx files in ``data_dir/mnist``.

    Reads ``mnist/mnist_test_seq.npy`` for the test set when present (and
    ``use_canonical_test``); otherwise generates ``test_size`` fixed sequences from the MNIST
    test digits.
    """
    data_dir = Path(data_dir)
    found = {}
    for key in ("train_images", "test_images"):
        p = _find(data_dir, MNIST_FILES[key])
        if p is None:
            raise missing_file_error("moving_mnist", data_dir, MNIST_FILES[key])
        found[key] = p
    train = read_idx(found["train_images"])
    test = read_idx(found["test_images"])
    for key, arr in (("train_images", train), ("test_images", test)):
        if arr.ndim != 3 or arr.shape[1:] != (28, 28):
            raise ValueError(f"{found[key]}: expected MNIST images (n, 28, 28), found shape {arr.shape}")
    canon, canon_path = None, None
    cp = data_dir / CANONICAL_TEST
    if not cp.exists():
        cp = data_dir / Path(CANONICAL_TEST).name
    if use_canonical_test and cp.exists():
        canon, canon_path = _read_canonical(cp), str(cp)
        test_size = min(test_size, canon.shape[1])
    return MovingDigits(
        train,
        test,
        name="moving_mnist",
        info=info,
        image_size=image_size,
        num_digits=num_digits,
        seq_len=seq_len,
        step_length=step_length,
        train_size=train_size,
        val_size=val_size,
        test_size=test_size,
        seed=seed,
        test_sequences=canon,
        test_source=canon_path,
    )


_DIGITS_CACHE: dict = {}


def sklearn_digit_images(digit_size: int = 28) -> np.ndarray:
    """scikit-learn's bundled 8x8 digits (1797), upscaled smoothly (cubic spline) to
    ``digit_size`` pixels, float32 in [0, 1], ``(1797, digit_size, digit_size)``."""
    if digit_size in _DIGITS_CACHE:
        return _DIGITS_CACHE[digit_size]
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    imgs = load_digits().images.astype(np.float32) / 16.0  # (1797, 8, 8)
    imgs = np.pad(imgs, ((0, 0), (1, 1), (1, 1)))  # a blank border so strokes fade out smoothly
    big = zoom(imgs, (1, digit_size / 10.0, digit_size / 10.0), order=3, grid_mode=True, mode="grid-constant")
    big = big[:, :digit_size, :digit_size]
    big = np.clip(big, 0.0, None)
    big /= np.maximum(big.max(axis=(1, 2), keepdims=True), 1e-6)
    big = big.astype(np.float32)
    big.setflags(write=False)
    _DIGITS_CACHE[digit_size] = big
    return big


def load_sklearn_digits(
    data_dir=None,
    info: DatasetInfo | None = None,
    train_size: int = 2000,
    val_size: int = 200,
    test_size: int = 500,
    seed: int = 0,
    num_digits: int = 2,
    image_size: int = 64,
    digit_size: int = 28,
    seq_len: int = 20,
    step_length: float = 0.1,
    n_train_images: int = 1500,
) -> MovingDigits:
    """Moving digits from scikit-learn's bundled digits: needs no files at all.

    Images ``0 .. n_train_images-1`` make training and validation sequences, the rest (297 by
    default) test sequences.
    """
    imgs = sklearn_digit_images(digit_size)
    if not 0 < n_train_images < len(imgs):
        raise ValueError(f"n_train_images should be in (0, {len(imgs)}), got {n_train_images}")
    return MovingDigits(
        imgs[:n_train_images],
        imgs[n_train_images:],
        name="digits",
        info=info,
        image_size=image_size,
        num_digits=num_digits,
        seq_len=seq_len,
        step_length=step_length,
        train_size=train_size,
        val_size=val_size,
        test_size=test_size,
        seed=seed,
    )


DATASETS = ((MOVING_MNIST, load_moving_mnist), (DIGITS, load_sklearn_digits))
