"""Moving digits (Moving MNIST protocol and sklearn digits) and the IDX reader."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

import stpatch.data as D
from stpatch.data.moving import (
    bouncing_trajectory,
    load_moving_mnist,
    make_moving_digits,
    sklearn_digit_images,
)


def write_idx(path, arr, compress=True):
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    raw = header + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return raw


def fake_mnist_dir(tmp_path, n_train=50, n_test=20):
    rng = np.random.default_rng(0)
    (tmp_path / "mnist").mkdir()
    write_idx(tmp_path / "mnist/train-images-idx3-ubyte.gz", rng.integers(0, 256, (n_train, 28, 28)))
    write_idx(tmp_path / "mnist/t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n_test, 28, 28)))
    return tmp_path


# ----------------------------------------------------------------------------- idx
def test_idx_roundtrip_plain_and_gzip(tmp_path):
    a = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(np.uint8)
    write_idx(tmp_path / "a.gz", a)
    write_idx(tmp_path / "a.idx", a, compress=False)
    np.testing.assert_array_equal(D.read_idx(tmp_path / "a.gz"), a)
    np.testing.assert_array_equal(D.read_idx(tmp_path / "a.idx"), a)


def test_idx_corrupt_and_truncated(tmp_path):
    a = np.zeros((10, 28, 28), np.uint8)
    raw = write_idx(tmp_path / "ok.idx", a, compress=False)
    (tmp_path / "trunc.idx").write_bytes(raw[:-100])
    with pytest.raises(
        ValueError,
        match=r"trunc\.idx: truncated IDX data: header says shape \(10, 28, 28\).*found 7740 bytes",
    ):
        D.read_idx(tmp_path / "trunc.idx")
    gz = gzip.compress(raw)
    (tmp_path / "trunc.gz").write_bytes(gz[: len(gz) // 2])
    with pytest.raises(ValueError, match=r"trunc\.gz: corrupt or truncated gzip stream"):
        D.read_idx(tmp_path / "trunc.gz")
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(ValueError, match=r"bad\.gz: corrupt or truncated gzip"):
        D.read_idx(tmp_path / "bad.gz")
    (tmp_path / "notidx").write_bytes(b"hello world")
    with pytest.raises(ValueError, match=r"notidx: not an IDX file"):
        D.read_idx(tmp_path / "notidx")
    with pytest.raises(FileNotFoundError):
        D.read_idx(tmp_path / "absent.idx")


def test_moving_mnist_reports_truncated_train_file(tmp_path):
    d = fake_mnist_dir(tmp_path)
    p = d / "mnist/train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz: corrupt or truncated gzip"):
        D.load("moving_mnist", data_dir=d)


# ----------------------------------------------------------------------------- generator
def test_trajectory_bounces_inside_unit_square():
    rng = np.random.default_rng(1)
    for _ in range(20):
        p = bouncing_trajectory(rng, 200)
        assert p.min() >= 0 and p.max() <= 1
        steps = np.linalg.norm(np.diff(p, axis=0), axis=1)
        assert steps.max() <= 0.1 + 1e-9


def test_make_moving_digits_shapes_and_values():
    digits = np.zeros((3, 28, 28), np.uint8)
    digits[:, 10:18, 10:18] = 255
    seq = make_moving_digits(digits, np.random.default_rng(0), length=20, image_size=64, num_digits=2)
    assert seq.shape == (20, 1, 64, 64) and seq.dtype == np.float32
    assert seq.min() == 0.0 and seq.max() == 1.0
    assert all((f > 0).sum() >= 64 for f in seq[:, 0])  # digits never leave the canvas
    with pytest.raises(ValueError, match="larger than the canvas"):
        make_moving_digits(digits, np.random.default_rng(0), image_size=20)


def test_fake_moving_mnist_is_reproducible_and_generated_on_demand(tmp_path, monkeypatch):
    import stpatch.data.moving as moving

    generated = []
    real = moving.make_moving_digits

    def spy(digits, rng, length=20, *args, **kwargs):
        generated.append(length)
        return real(digits, rng, length, *args, **kwargs)

    monkeypatch.setattr(moving, "make_moving_digits", spy)
    d = fake_mnist_dir(tmp_path)
    mm = D.load("moving_mnist", data_dir=d, train_size=100, val_size=10, test_size=20)
    assert generated == []  # loading makes no sequence...
    assert mm.test_sequences is None and mm.sizes["test"] == 20
    a = mm.sequence("train", 7)
    assert generated == [20]  # ...asking for one makes exactly that one
    mm2 = D.load("moving_mnist", data_dir=d, train_size=100)
    np.testing.assert_array_equal(a, mm2.sequence("train", 7))
    assert not np.array_equal(mm.sequence("val", 7), a)
    assert mm.sequence("train", 3, length=7).shape == (7, 1, 64, 64) and generated[-1] == 7
    with pytest.raises(IndexError):
        mm.sequence("test", 20)


def test_canonical_test_file_is_used(tmp_path):
    d = fake_mnist_dir(tmp_path)
    canon = np.random.default_rng(0).integers(0, 256, (20, 6, 64, 64)).astype(np.uint8)
    np.save(d / "mnist/mnist_test_seq.npy", canon)
    mm = load_moving_mnist(d, test_size=10000)
    assert mm.sizes["test"] == 6
    np.testing.assert_allclose(mm.sequence("test", 2)[:, 0], canon[:, 2] / 255.0, rtol=1e-6)
    dm = D.make_datamodule(mm, batch_size=3)
    b = next(iter(dm.test_dataloader()))
    np.testing.assert_allclose(b["y"][1, :, 0].numpy(), canon[10:, 1] / 255.0, rtol=1e-6)
    with pytest.raises(ValueError, match="t_in \\+ t_out = 24"):
        D.make_datamodule(mm, t_in=12, t_out=12).setup()
    np.save(d / "mnist/mnist_test_seq.npy", np.zeros((20, 3, 32, 32), np.uint8))
    with pytest.raises(
        ValueError,
        match=r"expected the canonical Moving MNIST test set of shape \(20, 10000, 64, 64\), found \(20, 3, 32, 32\)",
    ):
        load_moving_mnist(d)
    (d / "mnist/mnist_test_seq.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match="mnist_test_seq.npy: cannot read as .npy"):
        load_moving_mnist(d)


def test_digits_need_no_files_and_are_smooth(tmp_path):
    imgs = sklearn_digit_images(28)
    assert imgs.shape == (1797, 28, 28) and imgs.min() >= 0 and imgs.max() == pytest.approx(1.0)
    assert len(np.unique(imgs[0])) > 50  # smooth interpolation, not blocky nearest-neighbour
    dg = D.load("digits", data_dir=tmp_path / "empty", train_size=64, val_size=8, test_size=8, image_size=32,
                digit_size=14)  # a data directory with nothing in it
    assert not (tmp_path / "empty").exists()
    seqs = [dg.sequence("train", i) for i in range(64)]
    assert seqs[0].shape == (20, 1, 32, 32) and len({s.tobytes() for s in seqs}) == 64
    assert dg.train_digits.shape[0] == 1500 and dg.test_digits.shape[0] == 297
    data = dg.to_data("test", n=3)
    assert data.num_segments == 3 and data.segments[0].shape == (20, 1, 32, 32)
