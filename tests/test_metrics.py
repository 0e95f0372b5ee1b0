"""stpatch.metrics: hand-computed values, the named conventions, references, accumulation, errors."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stpatch.metrics import (
    METRIC_SUITES,
    MetricAccumulator,
    compute_metrics,
    contingency_table,
    csi,
    far,
    fss,
    get_metric,
    horizon_table,
    is_metric,
    lat_weighted_acc,
    lat_weighted_rmse,
    lat_weights,
    list_metrics,
    mae_per_frame,
    mae_per_pixel,
    masked_mae,
    masked_mape,
    masked_rmse,
    mse_per_frame,
    mse_per_pixel,
    pod,
    psnr,
    register_metric,
    register_suite,
    rmse,
    rmse_per_frame,
    ssim,
    summarize,
    unregister_metric,
)


def close(actual, expected, **kw):
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64), **kw)


def tiny_video():
    """(B=1, T=2, C=1, H=2, W=2): frame 0 errors 1..4, frame 1 errors all 0.5."""
    pred = torch.tensor([[[[[1.0, 2.0], [3.0, 4.0]]], [[[0.5, 0.5], [0.5, 0.5]]]]])
    return pred, torch.zeros_like(pred)


# --------------------------------------------------------------------------- video / grid


def test_video_errors_by_hand():
    pred, target = tiny_video()
    assert pred.shape == (1, 2, 1, 2, 2)
    close(mse_per_frame(pred, target), [1 + 4 + 9 + 16, 4 * 0.25])
    close(mae_per_frame(pred, target), [10, 2])
    close(mse_per_pixel(pred, target), [7.5, 0.25])
    close(mae_per_pixel(pred, target), [2.5, 0.5])
    close(rmse(pred, target), [math.sqrt(7.5), 0.5])
    close(rmse_per_frame(pred, target), [math.sqrt(30), 1.0])
    close(mse_per_frame(pred, target, reduce="mean"), 15.5)
    assert mse_per_frame(pred, target).shape == (2,)


def test_per_frame_is_mean_over_sequences():
    pred, target = tiny_video()
    second = torch.zeros_like(pred)
    second[0, 0] = 1.0  # frame 0: squared-error sum 4; frame 1: 0
    both = torch.cat([pred, second])
    close(mse_per_frame(both, torch.zeros_like(both)), [(30 + 4) / 2, (1 + 0) / 2])


@settings(max_examples=25, deadline=None)
@given(st.tuples(*(st.integers(1, 4) for _ in range(5))), st.integers(0, 2**16))
def test_per_frame_over_per_pixel_is_chw(shape, seed):
    rng = np.random.default_rng(seed)
    pred, target = rng.standard_normal(shape), rng.standard_normal(shape)
    chw = shape[2] * shape[3] * shape[4]
    close(mse_per_frame(pred, target), mse_per_pixel(pred, target) * chw, rtol=1e-12)
    close(mae_per_frame(pred, target), mae_per_pixel(pred, target) * chw, rtol=1e-12)
    close(rmse_per_frame(pred, target), rmse(pred, target) * math.sqrt(chw), rtol=1e-12)


def test_psnr_by_hand_is_mean_of_per_frame_values():
    pred = torch.zeros(2, 2, 1, 2, 2, dtype=torch.float64)
    target = torch.zeros_like(pred)
    pred[0, 0] = 0.5  # frame mse 0.25 -> 10 log10 4
    pred[1, 0] = 0.1  # frame mse 0.01 -> 20 dB
    pred[:, 1] = 1.0  # frame mse 1 -> 0 dB
    expected0 = (10 * math.log10(4) + 20.0) / 2
    close(psnr(pred, target), [expected0, 0.0], rtol=1e-12)
    assert abs(expected0 - 10 * math.log10(1 / 0.13)) > 1  # not the PSNR of the mean MSE
    close(psnr(pred, target, data_range=2.0), [expected0 + 20 * math.log10(2), 20 * math.log10(2)],
          rtol=1e-12)
    close(psnr(2 * pred, 2 * target, data_range=2.0), psnr(pred, target), rtol=1e-12)  # scale-free
    assert torch.isinf(psnr(target, target)).all()  # identical frames: +inf, as OpenSTL


def test_ssim_matches_torchmetrics_frame_by_frame():
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    g = torch.Generator().manual_seed(0)
    target = torch.rand(3, 2, 2, 16, 16, generator=g)
    pred = (target + 0.1 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    ours = ssim(pred, target, data_range=1.0)
    ref = [tm_ssim(pred[:, k], target[:, k], data_range=1.0, reduction="none").mean() for k in range(2)]
    close(ours, ref, rtol=1e-5)
    assert 0 < ours.min() < ours.max() < 1
    close(ssim(target, target), [1.0, 1.0], rtol=1e-6)
    close(ssim(pred, target, mask=torch.ones_like(pred, dtype=torch.bool)), ours, rtol=1e-10)


def test_ssim_mask_ignores_masked_values():
    g = torch.Generator().manual_seed(1)
    target = torch.rand(2, 2, 1, 12, 12, generator=g)
    pred = torch.rand(2, 2, 1, 12, 12, generator=g)
    mask = torch.ones_like(pred, dtype=torch.bool)
    mask[..., :4, :] = False
    changed = pred.clone()
    changed[..., :4, :] = 99.0
    close(ssim(pred, target, mask=mask), ssim(changed, target, mask=mask), rtol=1e-12)


# --------------------------------------------------------------------------- sensors


def sensor_case():
    """(B=1, T=2, N=2, C=1); target 0 marks missing (traffic)."""
    target = torch.tensor([[[[10.0], [0.0]], [[20.0], [40.0]]]])
    pred = torch.tensor([[[[12.0], [5.0]], [[10.0], [44.0]]]])
    return pred, target


def test_masked_sensor_metrics_by_hand():
    pred, target = sensor_case()
    close(masked_mae(pred, target, null_value=0.0), [2.0, (10 + 4) / 2])
    close(masked_rmse(pred, target, null_value=0.0), [2.0, math.sqrt((100 + 16) / 2)])
    close(masked_mape(pred, target, null_value=0.0), [0.2, (0.5 + 0.1) / 2])  # a fraction
    # default null is NaN: the 0 target counts for MAE but never for MAPE
    close(masked_mae(pred, target), [(2 + 5) / 2, 7.0])
    close(masked_mape(pred, target), [0.2, 0.3])
    # NaN targets are always missing
    nan_target = target.clone()
    nan_target[0, 0, 1, 0] = math.nan
    close(masked_mae(pred, nan_target), [2.0, 7.0])


def test_masked_metrics_ignore_masked_entries():
    pred, target = sensor_case()
    changed = pred.clone()
    changed[0, 0, 1, 0] = 1000.0  # where the target is null
    for fn in (masked_mae, masked_rmse, masked_mape):
        close(fn(pred, target, null_value=0.0), fn(changed, target, null_value=0.0))
    mask = torch.tensor([[[[True], [True]], [[False], [True]]]])
    close(masked_mae(pred, target, null_value=0.0, mask=mask), [2.0, 4.0])
    changed[0, 1, 0, 0] = -50.0
    close(masked_mae(changed, target, null_value=0.0, mask=mask), [2.0, 4.0])


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**16))
def test_masked_values_never_matter(seed):
    rng = np.random.default_rng(seed)
    shape = (2, 3, 1, 6, 7)
    pred, target = rng.gamma(1.0, 2.0, shape), rng.gamma(1.0, 2.0, shape)
    mask = rng.random(shape) > 0.3
    pred2, target2 = pred.copy(), target.copy()
    pred2[~mask] = rng.standard_normal((~mask).sum()) * 100
    target2[~mask] = np.nan
    lat = np.linspace(-60, 60, 6)
    for fn in (mse_per_frame, mae_per_frame, mse_per_pixel, mae_per_pixel, rmse, psnr, masked_mae,
               masked_rmse, masked_mape, lambda p, t, mask: lat_weighted_rmse(p, t, lat, mask=mask),
               lambda p, t, mask: fss(p, t, 1.0, 3, mask=mask), lambda p, t, mask: csi(p, t, 1.0, mask=mask)):
        close(fn(pred, target, mask=mask), fn(pred2, target2, mask=mask), rtol=1e-12)


def test_masked_horizon_without_valid_entries_is_nan():
    pred, target = sensor_case()
    target[:, 1] = 0.0
    out = masked_mae(pred, target, null_value=0.0)
    assert out[0] == 2.0 and torch.isnan(out[1])


# --------------------------------------------------------------------------- weather


def test_lat_weights():
    lat = np.linspace(-90, 90, 19)
    w = lat_weights(lat)
    close(w.mean(), 1.0, rtol=1e-12)
    assert w[9] > w[5] > w[0] and w[9] > 1  # equator > mid-latitude > pole
    close(w, w.flip(0), atol=1e-12)
    close(lat_weights([0.0, 60.0]), [4 / 3, 2 / 3])
    with pytest.raises(ValueError, match="-90, 90"):
        lat_weights([0.0, 95.0])


def test_lat_weighted_rmse_by_hand():
    pred = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2, 1)  # error 1 on the equator row, 0 at 60N
    close(lat_weighted_rmse(pred, torch.zeros_like(pred), [0.0, 60.0]), [math.sqrt((4 / 3) / 2)])


def test_lat_weighted_rmse_flat_is_per_sample_rmse():
    g = torch.Generator().manual_seed(2)
    pred, target = torch.randn(1, 3, 1, 4, 5, generator=g), torch.randn(1, 3, 1, 4, 5, generator=g)
    zeros = np.zeros(4)
    close(lat_weighted_rmse(pred, target, zeros), rmse(pred, target), rtol=1e-12)
    # several samples and channels: sqrt per (sample, channel), then the mean
    pred, target = torch.randn(3, 2, 2, 4, 5, generator=g), torch.randn(3, 2, 2, 4, 5, generator=g)
    per_sample = ((pred.double() - target.double()) ** 2).mean(dim=(-2, -1)).sqrt()  # (B, T, C)
    close(lat_weighted_rmse(pred, target, zeros, per_channel=True), per_sample.mean(0), rtol=1e-12)
    close(lat_weighted_rmse(pred, target, zeros), per_sample.mean(dim=(0, 2)), rtol=1e-12)


def wb1_acc(pred, target, clim, lat):
    """WeatherBench 1 ``compute_weighted_acc`` for one lead time and channel, in NumPy."""
    w = np.cos(np.deg2rad(lat))
    w = (w / w.mean())[:, None]
    fa, a = pred - clim, target - clim
    fa, a = fa - fa.mean(), a - a.mean()
    return np.sum(w * fa * a) / np.sqrt(np.sum(w * fa**2) * np.sum(w * a**2))


def test_lat_weighted_acc():
    rng = np.random.default_rng(3)
    lat = np.linspace(-80, 80, 6)
    clim = rng.standard_normal((1, 6, 8))  # (C, H, W), broadcast over B, T
    target = clim + rng.standard_normal((4, 2, 1, 6, 8))
    pred = target + 0.7 * rng.standard_normal(target.shape)
    close(lat_weighted_acc(target, target, clim, lat), [1.0, 1.0], rtol=1e-12)
    close(lat_weighted_acc(2 * clim - target, target, clim, lat), [-1.0, -1.0], rtol=1e-12)
    ours = lat_weighted_acc(pred, target, clim, lat)
    close(ours, [wb1_acc(pred[:, k, 0], target[:, k, 0], clim[0], lat) for k in range(2)], rtol=1e-10)
    assert 0 < ours.min() < 1
    scaled = clim + 3.0 * (pred - clim)  # ACC ignores the amplitude of the anomalies
    close(lat_weighted_acc(scaled, target, clim, lat), ours, rtol=1e-10)


# --------------------------------------------------------------------------- precipitation


def test_contingency_scores_by_hand():
    # (B=1, T=2, N=6, C=1); lead 0: hit, miss, false alarm, correct negative, hit (1 >= 1), NaN pair
    pred0, target0 = [2.0, 0.0, 2.0, 0.0, 3.0, math.nan], [2.0, 2.0, 0.0, 0.0, 1.0, 5.0]
    pred1, target1 = [0.0] * 6, [0.0] * 6  # lead 1: no event anywhere
    pred = torch.tensor([pred0, pred1]).view(1, 2, 6, 1)
    target = torch.tensor([target0, target1]).view(1, 2, 6, 1)
    table = contingency_table(pred, target, 1.0)
    close(table["hits"], [2, 0])
    close(table["misses"], [1, 0])
    close(table["false_alarms"], [1, 0])
    close(table["correct_negatives"], [1, 6])
    for fn, value in ((csi, 2 / 4), (pod, 2 / 3), (far, 1 / 3)):
        out = fn(pred, target, 1.0)
        close(out[0], value)
        assert torch.isnan(out[1])  # zero denominator -> NaN
    mask = torch.ones(1, 2, 6, 1, dtype=torch.bool)
    mask[0, 0, 1] = False  # drop the miss
    close(csi(pred, target, 1.0, mask=mask)[0], 2 / 3)


@pytest.mark.parametrize("scale", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("threshold", [0.5, 2.0])
def test_fss_matches_pysteps(scale, threshold):
    spatialscores = pytest.importorskip(
        "pysteps.verification.spatialscores", reason="the FSS reference is pysteps (the radar extra)")
    rng = np.random.default_rng(scale)
    obs = rng.gamma(0.6, 2.0, size=(3, 23, 19))
    fct = np.roll(obs, 2, axis=-1) * rng.uniform(0.5, 1.5, size=obs.shape)
    ours = fss(fct[None, None, :1], obs[None, None, :1], threshold, scale)  # one (H, W) field
    close(ours, [spatialscores.fss(fct[0], obs[0], threshold, scale)], rtol=1e-10)
    # a batch pools the sums, as pysteps' fss_accum over several fields
    state = spatialscores.fss_init(threshold, scale)
    for f, o in zip(fct, obs, strict=True):
        spatialscores.fss_accum(state, f, o)
    batched = fss(fct[:, None, None], obs[:, None, None], threshold, scale)
    close(batched, [spatialscores.fss_compute(state)], rtol=1e-10)


def test_fss_limits():
    x = torch.rand(2, 2, 1, 10, 10) * 4
    close(fss(x, x, 1.0, 3), [1.0, 1.0])
    assert torch.isnan(fss(torch.zeros_like(x), torch.zeros_like(x), 1.0, 3)).all()
    with pytest.raises(ValueError, match="scale"):
        fss(x, x, 1.0, 0)


# --------------------------------------------------------------------------- suites and accumulation


def split_batches(*arrays, sizes=(2, 3, 1)):
    start = 0
    for n in sizes:
        yield tuple(None if a is None else a[start:start + n] for a in arrays)
        start += n


def assert_same_metrics(a, b):
    assert a.keys() == b.keys()
    for name in a:  # SSIM filters in float32, whose kernels may depend on the batch size
        close(a[name], b[name], rtol=1e-6 if name == "ssim" else 1e-10, atol=1e-12, err_msg=name)


def test_accumulator_equals_one_pass_every_suite():
    rng = np.random.default_rng(4)
    video = rng.random((6, 3, 1, 8, 8))
    sensor_t = rng.gamma(2.0, 10.0, (6, 4, 5, 1))
    sensor_t[rng.random(sensor_t.shape) < 0.2] = 0.0  # null entries
    lat = np.linspace(-70, 70, 6)
    clim = rng.standard_normal((2, 6, 8))
    weather_t = clim + rng.standard_normal((6, 3, 2, 6, 8))
    rain_t = rng.gamma(0.5, 3.0, (6, 3, 1, 12, 12))
    cases = {
        "video": (np.clip(video + 0.1 * rng.standard_normal(video.shape), 0, 1), video,
                  rng.random(video.shape) > 0.1, {}),
        "sensor": (sensor_t + rng.standard_normal(sensor_t.shape), sensor_t,
                   rng.random(sensor_t.shape) > 0.1, {}),
        "weather": (weather_t + 0.5 * rng.standard_normal(weather_t.shape), weather_t, None,
                    {"lat": lat, "climatology": clim}),
        "precip": (np.roll(rain_t, 1, axis=-1), rain_t, None, {"thresholds": (0.5, 2.0), "fss_scale": (1, 4)}),
    }
    for suite, (pred, target, mask, kw) in cases.items():
        for use_mask in (False, True) if mask is not None else (False,):
            m = mask if use_mask else None
            one_pass = compute_metrics(pred, target, suite, mask=m, **kw)
            acc = MetricAccumulator(suite, **kw)
            for p, t, mb in split_batches(pred, target, m):
                acc.update(torch.from_numpy(p), torch.from_numpy(t), mask=mb)
            assert acc.num_batches == 3 and acc.num_sequences == 6
            assert_same_metrics(acc.compute(), one_pass)
            assert all(len(v) == pred.shape[1] for v in one_pass.values())


def test_suite_names():
    rng = np.random.default_rng(5)
    rain = rng.gamma(0.5, 3.0, (2, 3, 1, 12, 12))
    out = compute_metrics(rain, rain, "precip", thresholds=(1.0, 5.0), fss_scale=8)
    assert list(out) == ["csi@1.0", "csi@5.0", "pod@1.0", "pod@5.0", "far@1.0", "far@5.0",
                         "fss@1.0/8px", "fss@5.0/8px"]
    video = compute_metrics(rain / rain.max(), rain / rain.max(), "video")
    assert list(video) == list(METRIC_SUITES["video"])
    explicit = compute_metrics(rain, rain, ["mae_per_pixel", "csi@2.5", "fss@1.0/4px"])
    assert list(explicit) == ["mae_per_pixel", "csi@2.5", "fss@1.0/4px"]
    close(explicit["csi@2.5"], csi(rain, rain, 2.5))
    lat, clim = np.linspace(-60, 60, 12), np.zeros((1, 12, 12))
    weather = compute_metrics(np.concatenate([rain, rain], 2), np.concatenate([rain, 1 + rain], 2),
                              "weather", lat=lat, climatology=clim)
    assert list(weather) == ["lat_weighted_rmse", "lat_weighted_rmse/ch0", "lat_weighted_rmse/ch1",
                             "lat_weighted_acc", "lat_weighted_acc/ch0", "lat_weighted_acc/ch1"]
    close(weather["lat_weighted_rmse/ch0"], [0, 0, 0])
    with pytest.warns(UserWarning, match="lat_weighted_acc"):
        no_clim = compute_metrics(rain, rain, "weather", lat=lat)
    assert list(no_clim) == ["lat_weighted_rmse"]
    with pytest.raises(ValueError, match="climatology"):
        compute_metrics(rain, rain, ["lat_weighted_acc"], lat=lat)
    with pytest.raises(ValueError, match="lat"):
        compute_metrics(rain, rain, "weather", climatology=clim)
    with pytest.raises(ValueError, match="unknown metric suite"):
        MetricAccumulator("rader")
    assert list(compute_metrics(rain, rain, "radar")) == ["csi@1.0", "csi@5.0", "fss@1.0/8px", "mae_per_pixel"]
    with pytest.raises(ValueError, match="unknown metric"):
        MetricAccumulator(["msee"])


def test_sensor_suite_uses_null_value_zero():
    pred, target = sensor_case()
    out = compute_metrics(pred, target, "sensor")
    close(out["masked_mae"], [2.0, 7.0])
    close(out["masked_mape"], [0.2, 0.3])


def test_summarize_and_horizon_table():
    per_horizon = {"masked_mae": [float(k) for k in range(1, 13)], "masked_rmse": [2.0] * 12}
    assert summarize(per_horizon) == {"masked_mae": 6.5, "masked_rmse": 2.0}
    rows = horizon_table(per_horizon, [3, 6, 12], step_minutes=5)
    assert rows == [
        {"horizon": 3, "minutes": 15, "masked_mae": 3.0, "masked_rmse": 2.0},
        {"horizon": 6, "minutes": 30, "masked_mae": 6.0, "masked_rmse": 2.0},
        {"horizon": 12, "minutes": 60, "masked_mae": 12.0, "masked_rmse": 2.0},
    ]
    rows = horizon_table(per_horizon, include_mean=True)
    assert len(rows) == 13 and "minutes" not in rows[0]
    assert rows[-1] == {"horizon": "mean", "masked_mae": 6.5, "masked_rmse": 2.0}
    with pytest.raises(ValueError, match="outside 1..12"):
        horizon_table(per_horizon, [0, 13])


# --------------------------------------------------------------------------- inputs and errors


def test_numpy_and_torch_agree():
    pred, target = tiny_video()
    close(mse_per_frame(pred.numpy(), target.numpy()), mse_per_frame(pred, target))
    assert isinstance(mse_per_frame(pred.numpy(), target.numpy()), torch.Tensor)
    mask = np.ones((1, 2, 1, 1, 1), dtype=np.int64)  # 0/1 integers are taken as bool; broadcast
    close(mse_per_pixel(pred, target, mask=mask), mse_per_pixel(pred, target))


def test_errors():
    pred, _ = tiny_video()
    with pytest.raises(ValueError, match=r"pred \(1, 2, 1, 2, 2\) and target \(1, 2, 1, 2, 3\)"):
        mse_per_frame(pred, torch.zeros(1, 2, 1, 2, 3))
    with pytest.raises(ValueError, match="same shape"):
        compute_metrics(pred, torch.zeros(1, 3, 1, 2, 2), "video")
    with pytest.raises(ValueError, match=r"mask of shape \(3,\)"):
        mse_per_pixel(pred, pred, mask=torch.ones(3, dtype=torch.bool))
    with pytest.raises(TypeError, match="boolean"):
        mse_per_pixel(pred, pred, mask=torch.full(pred.shape, 0.5))
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        ssim(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match="H and W > 5"):
        ssim(torch.zeros(1, 2, 1, 5, 8), torch.zeros(1, 2, 1, 5, 8))
    with pytest.raises(ValueError, match="H=2"):
        lat_weighted_rmse(pred, pred, [0.0, 10.0, 20.0])
    with pytest.raises(ValueError, match="climatology of shape"):
        lat_weighted_acc(pred, pred, np.zeros(3), [0.0, 10.0])
    with pytest.raises(ValueError, match="reduce"):
        rmse(pred, pred, reduce="sum")
    acc = MetricAccumulator("video")
    with pytest.raises(ValueError, match="before any update"):
        acc.compute()
    acc.update(torch.rand(1, 2, 1, 8, 8), torch.rand(1, 2, 1, 8, 8))
    with pytest.raises(ValueError, match="lead times"):
        acc.update(torch.rand(1, 3, 1, 8, 8), torch.rand(1, 3, 1, 8, 8))


# --------------------------------------------------------------------------- registry


def test_suites_keep_their_contents_and_every_name_resolves():
    assert METRIC_SUITES == {
        "video": ("mse_per_frame", "mae_per_frame", "mse_per_pixel", "mae_per_pixel", "rmse",
                  "rmse_per_frame", "psnr", "ssim"),
        "sensor": ("masked_mae", "masked_rmse", "masked_mape"),
        "weather": ("lat_weighted_rmse", "lat_weighted_acc"),
        "precip": ("csi", "pod", "far", "fss"),
        "radar": ("csi@1.0", "csi@5.0", "fss@1.0/8px", "mae_per_pixel"),
    }
    grid = {"threshold": [1.0, 5.0], "scale": [8]}
    for suite, names in METRIC_SUITES.items():
        for name in names:
            assert is_metric(name), (suite, name)
            for ref in get_metric(name).expand(grid):
                assert ref.complete and get_metric(ref.name) == ref


def test_list_metrics_names_and_patterns():
    assert list_metrics() == [
        "mse_per_frame", "mae_per_frame", "mse_per_pixel", "mae_per_pixel", "rmse", "rmse_per_frame",
        "psnr", "ssim", "masked_mae", "masked_rmse", "masked_mape", "lat_weighted_rmse", "lat_weighted_acc",
        "csi@{threshold}", "pod@{threshold}", "far@{threshold}", "fss@{threshold}/{scale}px",
    ]


def test_get_metric_parses_parameters():
    ref = get_metric("fss@1.0/8px")
    assert ref.name == "fss@1.0/8px" and dict(ref.params) == {"threshold": 1.0, "scale": 8}
    assert isinstance(ref.params["scale"], int) and ref.complete and ref.higher_is_better
    ref = get_metric("csi@2.50")  # canonical name: the threshold as str(float)
    assert ref.name == "csi@2.5" and dict(ref.params) == {"threshold": 2.5}
    assert get_metric("fss@0.1/16px").params == {"threshold": 0.1, "scale": 16}
    assert get_metric("far@1").name == "far@1.0" and not get_metric("far@1").higher_is_better
    bare = get_metric("csi")
    assert not bare.complete and dict(bare.params) == {}
    assert [r.name for r in bare.expand({"threshold": [1, 2.5]})] == ["csi@1.0", "csi@2.5"]
    assert [r.name for r in get_metric("fss").expand({"threshold": [1, 5], "scale": [2, 8]})] == [
        "fss@1.0/2px", "fss@1.0/8px", "fss@5.0/2px", "fss@5.0/8px"]
    plain = get_metric("rmse")
    assert plain.complete and plain.name == "rmse" and not plain.higher_is_better
    assert get_metric("ssim").higher_is_better and get_metric("lat_weighted_acc").higher_is_better
    assert get_metric("psnr").metric.inputs == ("data_range",)
    assert get_metric("masked_mape").metric.inputs == ("null_value",)
    assert set(get_metric("lat_weighted_acc").metric.inputs) == {"lat", "climatology"}
    assert get_metric("mse_per_frame").metric.inputs == ()
    assert "OpenSTL" in get_metric("rmse_per_frame").metric.doc  # conventions travel with the entry


def test_unknown_and_malformed_names():
    with pytest.raises(ValueError, match="unknown metric 'msee'") as err:
        get_metric("msee")
    message = str(err.value)
    assert all(name in message for name in list_metrics()) and "csi@1.0" in message  # the list and an example
    for bad in ("rmse@1.0", "csi@abc", "fss@1.0/0px", "fss@1.0/8", "fss@1.0/2.5px", "csi@", "msee"):
        assert not is_metric(bad), bad
        with pytest.raises(ValueError):
            get_metric(bad)
    with pytest.raises(ValueError, match="scale"):
        get_metric("fss@1.0/0px")
    with pytest.raises(ValueError, match="fss@1.0/8px"):  # does not fit the pattern: shows the example
        get_metric("fss@1.0/8")
    with pytest.raises(ValueError, match="unknown metric"):
        compute_metrics(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), ["rmse", "msee"])
    with pytest.raises(ValueError, match="threshold"):  # a bare family needs its values
        get_metric("csi").expand({})


@pytest.fixture
def registry_restored():
    """Whatever a test registers is gone afterwards."""
    metrics, suites = list_metrics(), dict(METRIC_SUITES)
    yield
    for name in list_metrics():
        if name not in metrics:
            unregister_metric(name)
    METRIC_SUITES.clear()
    METRIC_SUITES.update(suites)
    assert list_metrics() == metrics


def test_new_metric_is_one_registration(registry_restored):
    # a metric that is not a sum: the batches merge by maximum
    @register_metric("max_abs_error", higher_is_better=False, finalize=lambda s: s["max"],
                     merge=lambda a, b: {"max": torch.maximum(a["max"], b["max"])})
    def _stats_max_abs(p, t, m):
        """Largest |pred - target| of a lead time over the valid entries."""
        err = (p - t).abs() if m is None else torch.where(m, (p - t).abs(), torch.zeros((), dtype=p.dtype))
        return {"max": err.amax(dim=(0, *range(2, p.ndim)))}

    # a parametrised one: the fraction of entries within a tolerance (default finalize: sum / n)
    def _stats_within(p, t, m, tol):
        hit = ((p - t).abs() <= tol).to(p.dtype)
        return {"sum": hit.sum(dim=(0, *range(2, p.ndim))), "n": torch.full((p.shape[1],), p[:, 0].numel() * 1.0,
                                                                            dtype=p.dtype)}

    register_metric("within@{tol}", _stats_within, higher_is_better=True, params={"tol": float}, example="within@0.5")
    assert is_metric("max_abs_error") and get_metric("within@0.25").params == {"tol": 0.25}
    assert "Largest" in get_metric("max_abs_error").metric.doc

    rng = np.random.default_rng(6)
    pred, target = rng.standard_normal((6, 3, 2, 4, 4)), rng.standard_normal((6, 3, 2, 4, 4))
    names = ["max_abs_error", "within@0.5", "rmse"]
    one_pass = compute_metrics(pred, target, names)
    assert list(one_pass) == names
    close(one_pass["max_abs_error"], np.abs(pred - target).max(axis=(0, 2, 3, 4)), rtol=1e-12)
    close(one_pass["within@0.5"], (np.abs(pred - target) <= 0.5).mean(axis=(0, 2, 3, 4)), rtol=1e-12)
    close(one_pass["rmse"], rmse(pred, target), rtol=1e-12)
    acc = MetricAccumulator(names)
    for p, t in split_batches(pred, target):
        acc.update(p, t)
    assert_same_metrics(acc.compute(), one_pass)  # max merges as a max, not a sum

    mask = rng.random(pred.shape) > 0.3
    changed = np.where(mask, pred, 1e6)
    close(compute_metrics(changed, target, ["max_abs_error"], mask=mask)["max_abs_error"],
          np.where(mask, np.abs(pred - target), 0).max(axis=(0, 2, 3, 4)), rtol=1e-12)

    register_suite("robust", ("max_abs_error", "within@0.5"))
    assert list(compute_metrics(pred, target, "robust")) == ["max_abs_error", "within@0.5"]


def test_register_metric_checks(registry_restored):
    def stats(p, t, m, **kw):
        return {"sum": (p - t).sum(dim=(0, 2)), "n": torch.full((p.shape[1],), 1.0, dtype=p.dtype)}

    with pytest.raises(ValueError, match="registered already"):
        register_metric("rmse", stats, higher_is_better=False)
    with pytest.raises(ValueError, match="converter"):
        register_metric("bias@{q}", stats, higher_is_better=False, example="bias@1")
    with pytest.raises(ValueError, match="example"):
        register_metric("bias@{q}", stats, higher_is_better=False, params={"q": float})
    with pytest.raises(ValueError, match="inputs"):
        register_metric("bias", stats, higher_is_better=False, inputs=("latitude",))
    with pytest.raises(ValueError, match="unknown metric"):
        register_suite("broken", ("rmse", "msee"))
    assert "broken" not in METRIC_SUITES and not is_metric("bias")
    register_metric("bias", stats, higher_is_better=False)
    close(compute_metrics(torch.ones(2, 3, 4), torch.zeros(2, 3, 4), ["bias"])["bias"], [8.0] * 3)
