"""Windows as index maps (views), chronological splits, scalers, masks and the DataModule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import stpatch.data as D
from stpatch.data.windows import WindowDataset, split_ranges

KEYS = {"x", "y", "x_mask", "y_mask", "index"}


def grid_data(T=50, C=2, H=6, W=5, seed=0, **kw):
    rng = np.random.default_rng(seed)
    return D.from_numpy(rng.normal(10, 3, (T, C, H, W)).astype(np.float32), layout="TCHW", **kw)


def sensor_data(T=60, N=7, seed=0, **kw):
    rng = np.random.default_rng(seed)
    return D.from_numpy(rng.uniform(20, 70, (T, N)).astype(np.float32), layout="TN", **kw)


# ----------------------------------------------------------------------------- windows
def test_windows_are_views_of_the_segment():
    d = grid_data()
    ds = WindowDataset(d, 4, 3, [(0, 0, 50)])
    assert len(ds) == 50 - 7 + 1
    x, y = ds.window(5)
    assert np.shares_memory(x, d.segments[0]) and np.shares_memory(y, d.segments[0])
    np.testing.assert_array_equal(x, d.segments[0][5:9])
    np.testing.assert_array_equal(y, d.segments[0][9:12])
    assert ds.index.shape == (len(ds), 2)  # an index map, not copies


def test_windows_from_thwc_and_batches_are_views():
    a = np.zeros((3, 12, 4, 5, 2), dtype=np.float32)  # B, T, H, W, C
    d = D.from_numpy(a, layout="BTHWC")
    assert d.num_segments == 3 and d.segments[0].shape == (12, 2, 4, 5)
    ds = WindowDataset(d, 2, 2, [(s, 0, 12) for s in range(3)])
    x, _ = ds.window(len(ds) - 1)
    assert np.shares_memory(x, a)


def test_stride_and_segment_boundaries():
    d = D.from_numpy([np.zeros((10, 3)), np.ones((9, 3))], layout="TN")
    ds = WindowDataset(d, 3, 2, [(0, 0, 10), (1, 0, 9)], stride=2)
    starts = [tuple(r) for r in ds.index]
    assert starts == [(0, 0), (0, 2), (0, 4), (1, 0), (1, 2), (1, 4)]
    for i in range(len(ds)):  # no window mixes the two segments
        b = ds[i]
        assert torch.unique(b["x"]).numel() == 1 and torch.equal(torch.unique(b["x"]), torch.unique(b["y"]))


def test_split_fractions_dates_event_and_dict():
    r = split_ranges([100], (0.7, 0.1, 0.2))
    assert r == {"train": [(0, 0, 70)], "val": [(0, 70, 80)], "test": [(0, 80, 100)]}
    times = [np.datetime64("2020-01-01T00:00") + np.arange(48) * np.timedelta64(1, "h")]
    r = split_ranges([48], ("2020-01-02T00:00", "2020-01-02T12:00"), times)
    assert r == {"train": [(0, 0, 24)], "val": [(0, 24, 36)], "test": [(0, 36, 48)]}
    assert split_ranges([48], {"val": "2020-01-02", "test": "2020-01-02T12"}, times) == r
    r = split_ranges([40, 40, 40], "event", window=16)
    assert r == {"train": [(0, 0, 40)], "val": [(1, 0, 40)], "test": [(2, 0, 40)]}
    r = split_ranges([40, 40], "event", window=16)
    assert r == {"train": [(0, 0, 24)], "val": [(0, 24, 40)], "test": [(1, 0, 40)]}
    r = split_ranges([10, 20, 30], {"train": [0, (1, 0, 15)], "val": [(1, 15, None)], "test": [-1]})
    assert r == {"train": [(0, 0, 10), (1, 0, 15)], "val": [(1, 15, 20)], "test": [(2, 0, 30)]}


def test_split_errors():
    with pytest.raises(ValueError, match="needs timestamps"):
        split_ranges([10], ("2020-01-01", "2020-01-02"))
    with pytest.raises(ValueError, match="summing to at most 1"):
        split_ranges([10], (0.8, 0.3, 0.2))
    with pytest.raises(ValueError, match="at least 2"):
        split_ranges([10], "event")
    with pytest.raises(ValueError, match="unknown split"):
        split_ranges([10], "random")


@settings(max_examples=40, deadline=None)
@given(
    T=st.integers(20, 200),
    t_in=st.integers(1, 8),
    t_out=st.integers(1, 8),
    stride=st.integers(1, 4),
    f=st.tuples(st.floats(0.3, 0.8), st.floats(0.0, 0.2)),
)
def test_no_window_crosses_a_split_boundary(T, t_in, t_out, stride, f):
    fr = (f[0], f[1], 1.0 - f[0] - f[1])
    d = D.from_numpy(np.zeros((T, 2), np.float32), layout="TN")
    rng = split_ranges([T], fr)
    spans = {}
    for k, rs in rng.items():
        ds = WindowDataset(d, t_in, t_out, rs, stride, empty_windows="keep")
        spans[k] = [(int(s), int(s) + t_in + t_out) for _, s in ds.index]
        (_, a, b) = rs[0] if rs else (0, 0, 0)
        assert all(a <= s and e <= b for s, e in spans[k])
    if spans["train"] and spans["test"]:
        assert max(e for _, e in spans["train"]) <= min(s for s, _ in spans["test"])


# ----------------------------------------------------------------------------- scalers
@pytest.mark.parametrize("name", ["standard", "minmax", "log", "identity"])
@pytest.mark.parametrize("kind", ["grid", "sensor"])
def test_scalers_invert_numpy_and_torch(name, kind):
    rng = np.random.default_rng(1)
    if kind == "grid":
        x, axis = rng.uniform(0, 50, (20, 3, 4, 5)), -3
    else:
        x, axis = rng.uniform(0, 50, (20, 6, 3)), -1
    s = D.get_scaler(name, channel_axis=axis).fit(x)
    y = s.transform(x)
    np.testing.assert_allclose(s.inverse_transform(y), x, rtol=1e-12, atol=1e-10)
    xb = torch.from_numpy(x[None])  # batch layout (B, T, ...)
    yb = s.transform(xb)
    assert isinstance(yb, torch.Tensor) and yb.dtype == torch.float64
    np.testing.assert_allclose(yb[0].numpy(), y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s.inverse_transform(yb)[0].numpy(), x, rtol=1e-12, atol=1e-10)
    s2 = D.scaler_from_state(s.state_dict())
    np.testing.assert_allclose(s2.transform(x), y, rtol=1e-12)
    import json

    json.dumps(s.state_dict())  # checkpoint friendly


def test_standard_scaler_per_channel_ignores_nan_and_mask():
    x = np.zeros((10, 2, 3, 3))
    x[:, 0] = 5.0
    x[:, 1] = np.arange(10)[:, None, None]
    x[0, 0, 0, 0] = np.nan
    mask = np.ones_like(x, dtype=bool)
    mask[:, 1, 0, 0] = False
    x[:, 1, 0, 0] = 1e6  # masked out
    s = D.StandardScaler(channel_axis=-3).fit(x, mask)
    np.testing.assert_allclose(s.params["mean"], [5.0, 4.5])
    np.testing.assert_allclose(s.params["std"], [1.0, np.std(np.arange(10))])  # zero std -> 1


def test_db_scaler_matches_pysteps_convention_and_inverts():
    r = np.array([0.0, 0.05, 0.1, 1.0, 5.0, 80.0, np.nan])[None, :, None]  # (T, N, C)
    s = D.DBScaler(channel_axis=-1, standardize=False).fit(r)
    y = s.transform(r)
    np.testing.assert_allclose(y[0, :6, 0], [-15, -15, -10, 0, 10 * np.log10(5), 10 * np.log10(80)])
    back = s.inverse_transform(y)
    np.testing.assert_allclose(back[0, :, 0], [0, 0, 0.1, 1, 5, 80, np.nan], rtol=1e-12)
    s = D.DBScaler(channel_axis=-1).fit(r)  # standardised
    back = s.inverse_transform(torch.from_numpy(s.transform(r)))
    np.testing.assert_allclose(back.numpy()[0, :, 0], [0, 0, 0.1, 1, 5, 80, np.nan], rtol=1e-10)
    assert D.scaler_from_state(s.state_dict()).zerovalue == -15


def test_scaler_errors():
    with pytest.raises(ValueError, match="unknown scaler"):
        D.get_scaler("zscore")
    with pytest.raises(RuntimeError, match="not fitted"):
        D.StandardScaler().transform(np.zeros((2, 1, 2, 2)))
    with pytest.raises(ValueError, match="no observed"):
        D.StandardScaler(channel_axis=-1).fit(np.full((3, 2, 1), np.nan))
    s = D.StandardScaler(channel_axis=-3).fit(np.zeros((3, 2, 2, 2)))
    with pytest.raises(ValueError, match="fitted on 2 channels"):
        s.transform(np.zeros((3, 3, 2, 2)))


# ----------------------------------------------------------------------------- masks
def test_null_value_and_nan_reach_the_batch_as_masks():
    x = np.full((30, 4), 50.0, dtype=np.float32)
    x[20, 1] = 0.0  # traffic-style missing reading
    x[21, 2] = np.nan
    d = D.from_numpy(x, layout="TN", null_value=0.0)
    dm = D.make_datamodule(d, t_in=3, t_out=2, batch_size=64, split=(0.5, 0.0, 0.5))
    b = next(iter(dm.test_dataloader()))
    assert set(b) == KEYS
    assert b["y_mask"].shape == b["y"].shape == (len(dm.test_dataset), 2, 4, 1)
    # window starting at 18 has targets at steps 21, 22 -> (21, sensor 2) missing
    i = [int(s) for _, s in dm.test_dataset.index].index(19)  # targets 22, 23 all observed
    assert bool(b["y_mask"][i].all())
    i = [int(s) for _, s in dm.test_dataset.index].index(16)  # targets 19, 20 -> (20, 1) missing
    assert not bool(b["y_mask"][i, 1, 1, 0]) and int((~b["y_mask"][i]).sum()) == 1
    assert float(b["y"][i, 1, 1, 0]) == 0.0  # filled with 0 after scaling
    assert torch.isfinite(b["x"]).all() and torch.isfinite(b["y"]).all()
    # the scaler ignored the null and the NaN
    assert dm.scaler.params["mean"][0] == pytest.approx(50.0)


def test_explicit_mask_reaches_the_batch():
    x = np.ones((12, 2, 3, 3), np.float32)
    m = np.ones_like(x, dtype=bool)
    m[8, 1, 2, 2] = False
    d = D.from_numpy(x, layout="TCHW", mask=m)
    ds = WindowDataset(d, 4, 4, [(0, 0, 12)])
    b = ds[1]  # steps 1..8, targets 5..8
    assert not bool(b["y_mask"][3, 1, 2, 2]) and int((~b["y_mask"]).sum()) == 1
    assert bool(b["x_mask"].all())


def test_all_nan_windows_are_dropped_or_raise():
    x = np.ones((40, 3), np.float32)
    x[10:20] = np.nan  # ten fully missing steps
    d = D.from_numpy(x, layout="TN")
    ds = WindowDataset(d, 4, 4, [(0, 0, 40)])
    kept = {int(s) for _, s in ds.index}
    # inputs [s, s+4) all NaN for s in 10..16, targets [s+4, s+8) all NaN for s in 6..12
    assert kept == set(range(0, 6)) | set(range(17, 33))
    assert ds.num_dropped == 11
    with pytest.raises(ValueError, match="entirely missing"):
        WindowDataset(d, 4, 4, [(0, 0, 40)], empty_windows="error")
    assert len(WindowDataset(d, 4, 4, [(0, 0, 40)], empty_windows="keep")) == 33


# ----------------------------------------------------------------------------- DataModule
def test_datamodule_grid_contract():
    times = np.datetime64("2021-06-07T00:00") + np.arange(50) * np.timedelta64(30, "m")
    d = grid_data(times=times)
    dm = D.make_datamodule(d, t_in=5, t_out=3, batch_size=4, scaler="standard", seed=3, split=(0.6, 0.2, 0.2))
    assert (dm.kind, dm.in_channels, dm.spatial_shape, dm.num_nodes) == ("grid", 2, (6, 5), None)
    assert dm.lat is None and dm.adjacency is None
    dm.setup()
    dm.setup()  # idempotent
    b = next(iter(dm.train_dataloader()))
    assert KEYS | {"tod", "dow"} <= set(b)
    assert b["x"].shape == (4, 5, 2, 6, 5) and b["x"].dtype == torch.float32
    assert b["y"].shape == (4, 3, 2, 6, 5) and b["y_mask"].dtype == torch.bool
    assert b["tod"].shape == (4, 5) and b["dow"].dtype == torch.int64
    i = int(b["index"][0])
    seg, s = dm.train_dataset.index[i]
    np.testing.assert_allclose(
        dm.inverse_transform(b["x"][0]).numpy(), d.segments[0][s : s + 5], rtol=1e-5, atol=1e-4
    )
    # June 7 2021 was a Monday
    assert int(dm.test_dataset[0]["dow"][0]) == 0
    # train statistics only
    np.testing.assert_allclose(dm.scaler.params["mean"], d.segments[0][:30].mean(axis=(0, 2, 3)), rtol=1e-5)


def test_datamodule_shuffle_is_deterministic_from_seed():
    d = sensor_data()

    def order(seed):
        dm = D.make_datamodule(d, t_in=4, t_out=4, batch_size=8, seed=seed, split=(0.6, 0.2, 0.2))
        return torch.cat([b["index"] for b in dm.train_dataloader()]).tolist()

    assert order(0) == order(0)
    assert order(0) != order(1)


def test_datamodule_sensor_with_adjacency_and_state_dict():
    d = sensor_data(adjacency=np.eye(7), coords=np.zeros((7, 2)))
    dm = D.make_datamodule(d, t_in=6, t_out=2, batch_size=5, scaler="minmax", split=(0.6, 0.2, 0.2))
    assert (dm.kind, dm.num_nodes, dm.spatial_shape) == ("sensor", 7, (7,))
    b = next(iter(dm.test_dataloader()))
    assert b["x"].shape[1:] == (6, 7, 1) and b["y"].shape[1:] == (2, 7, 1)
    state = dm.state_dict()
    dm2 = D.make_datamodule(d, t_in=6, t_out=2, scaler="standard", split=(0.6, 0.2, 0.2))
    dm2.load_state_dict(state)
    assert isinstance(dm2.scaler, D.MinMaxScaler)
    np.testing.assert_allclose(dm2.scaler.params["min"], dm.scaler.params["min"])


def test_datamodule_with_lazy_dask_segments():
    import dask.array as da

    x = np.random.default_rng(0).normal(size=(40, 1, 4, 4)).astype(np.float32)
    d = D.from_numpy(da.from_array(x, chunks=(8, 1, 4, 4)), layout="TCHW")
    assert d.lazy
    dm = D.make_datamodule(d, t_in=4, t_out=4, batch_size=3, scaler="standard", split=(0.6, 0.2, 0.2))
    b = next(iter(dm.test_dataloader()))
    ref = D.make_datamodule(
        D.from_numpy(x), t_in=4, t_out=4, batch_size=3, scaler="standard", split=(0.6, 0.2, 0.2)
    )
    rb = next(iter(ref.test_dataloader()))
    torch.testing.assert_close(b["x"], rb["x"])


def test_series_shorter_than_one_window():
    d = D.from_numpy(np.zeros((10, 3), np.float32), layout="TN", name="tiny")
    dm = D.make_datamodule(d, t_in=8, t_out=8)
    with pytest.raises(ValueError, match=r"'tiny'.*no window of t_in \+ t_out = 16.*segment lengths \[10\]"):
        dm.setup()


def test_datamodule_rejects_bad_arguments():
    d = sensor_data()
    with pytest.raises(ValueError, match="t_in and t_out"):
        D.make_datamodule(d)  # no registry defaults
    with pytest.raises(ValueError, match="options"):
        D.make_datamodule(d, t_in=2, t_out=2, crop=64)
    with pytest.raises(TypeError, match="data should be"):
        D.make_datamodule(np.zeros((10, 3)), t_in=2, t_out=2)


def test_digits_datamodule_defaults_and_determinism():
    dm = D.make_datamodule("digits", batch_size=4, train_size=8, val_size=4, test_size=4)
    assert (dm.kind, dm.in_channels, dm.spatial_shape, dm.t_in, dm.t_out) == ("grid", 1, (64, 64), 10, 10)
    assert isinstance(dm.scaler, D.IdentityScaler)
    b1 = next(iter(dm.test_dataloader()))
    b2 = next(
        iter(
            D.make_datamodule("digits", batch_size=4, train_size=8, val_size=4, test_size=4).test_dataloader()
        )
    )
    torch.testing.assert_close(b1["y"], b2["y"])
    assert set(b1) == KEYS and b1["y_mask"].all()
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [8, 4, 4]


def test_lightning_trainer_runs_and_checkpoints_the_scaler(tmp_path):
    import lightning as L

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, _):
            pred = batch["x"][:, -1:].expand_as(batch["y"]) * (1 + self.w)
            err = (pred - batch["y"]) ** 2
            return (err * batch["y_mask"]).sum() / batch["y_mask"].sum().clamp(min=1)

        def validation_step(self, batch, _):
            self.log("val", self.training_step(batch, 0))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    d = sensor_data(T=80)
    dm = D.make_datamodule(d, t_in=4, t_out=2, batch_size=8, split=(0.6, 0.2, 0.2))
    trainer = L.Trainer(
        max_steps=3,
        limit_val_batches=1,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        enable_checkpointing=False,
    )
    trainer.fit(Tiny(), datamodule=dm)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    ckpt = torch.load(tmp_path / "m.ckpt", weights_only=False)
    state = next(v for k, v in ckpt.items() if "STDataModule" in k)
    assert D.scaler_from_state(state["scaler"]).params["mean"][0] == pytest.approx(
        dm.scaler.params["mean"][0]
    )


def test_worker_processes_give_the_same_batches():
    d = sensor_data(T=40)
    kw = dict(t_in=3, t_out=3, batch_size=4, split=(0.6, 0.2, 0.2))
    b0 = next(iter(D.make_datamodule(d, num_workers=0, **kw).test_dataloader()))
    b1 = next(iter(D.make_datamodule(d, num_workers=1, **kw).test_dataloader()))
    torch.testing.assert_close(b0["x"], b1["x"])
