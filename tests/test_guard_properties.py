"""Properties of the data guard and the adapters over random shapes, layouts, masks and dtypes (issue 17)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stpatch.data import DataGuardError, from_numpy
from stpatch.data.adapters import LAYOUTS
from stpatch.data.guard import check_missing, check_times, check_values, conform, keep_no_coverage
from stpatch.data.profile import make_profile, scan_values, valid_ranges

FEW = settings(max_examples=25, deadline=None)
DTYPES = ("float32", "float64", "int16", "uint8", "bool", "complex64")


def reference_canonical(array: np.ndarray, layout: str) -> list[np.ndarray]:
    """The canonical segments ``(T, C, H, W)`` / ``(T, N, C)`` of ``array`` in ``layout``, by axis names."""
    base = layout.removeprefix("B")
    target = "TCHW" if "H" in base else "TNC"
    out = []
    for a in list(array) if layout.startswith("B") else [array]:
        names = base
        for axis in target:  # an axis the layout lacks (C of THW and TN) has size 1
            if axis not in names:
                a, names = a[..., None], names + axis
        out.append(np.transpose(a, [names.index(axis) for axis in target]))
    return out


@st.composite
def arrays_in_layouts(draw):
    layout = draw(st.sampled_from(LAYOUTS))
    shape = tuple(draw(st.integers(1, 4)) for _ in layout)
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**16))
    values = np.random.default_rng(seed).integers(0, 100, shape).astype(dtype)
    return layout, values


@FEW
@given(arrays_in_layouts())
def test_from_numpy_is_the_canonical_view_of_every_numeric_layout(case):
    layout, values = case
    if values.dtype.kind not in "fiu":
        with pytest.raises(DataGuardError, match=rf"holds {values.dtype} values; expected numbers"):
            from_numpy(values, layout=layout)
        return
    data = from_numpy(values, layout=layout)
    expected = reference_canonical(values, layout)
    assert data.num_segments == len(expected)
    for seg, ref in zip(data.segments, expected, strict=True):
        assert seg.dtype == values.dtype and seg.shape == ref.shape
        np.testing.assert_array_equal(seg, ref)
        assert np.shares_memory(seg, values)  # a view: nothing copied


@st.composite
def data_with_gaps(draw):
    """Grid or sensor data with NaN, a mask and a null value, and the reference of what is observed."""
    kind = draw(st.sampled_from(["grid", "sensor"]))
    shape = (draw(st.integers(1, 6)), *(draw(st.integers(1, 3)) for _ in range(3 if kind == "grid" else 2)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    values = rng.normal(10, 5, shape).astype(np.float32)
    values[rng.random(shape) < draw(st.floats(0, 1))] = np.nan
    mask = rng.random(shape) > draw(st.floats(0, 0.5))
    null = draw(st.sampled_from([None, 0.0]))
    if null is not None:
        values[rng.random(shape) < 0.2] = 0.0
    data = from_numpy(values, layout="TCHW" if kind == "grid" else "TNC", mask=mask, null_value=null)
    observed = mask & ~np.isnan(values) & (True if null is None else values != null)
    return data, values, observed


@FEW
@given(data_with_gaps())
def test_profile_counts_missing_values_and_extremes_like_numpy(case):
    data, values, observed = case
    profile = make_profile(data, scan_values(data), valid_ranges(data))
    axis = 1 if data.kind == "grid" else 2
    for c, channel in enumerate(profile["channels"]):
        seen, ok = np.take(values, c, axis=axis), np.take(observed, c, axis=axis)
        assert channel["missing"] == pytest.approx(1 - ok.mean())
        if ok.any():
            assert channel["min"] == pytest.approx(float(seen[ok].min()))
            assert channel["max"] == pytest.approx(float(seen[ok].max()))
            assert channel["min"] <= channel["quantiles"]["0.5"] <= channel["max"]
        else:
            assert channel["min"] is None and channel["max"] is None and channel["quantiles"] == {}


@FEW
@given(data_with_gaps(), st.floats(-20, 10))
def test_a_lower_bound_is_an_error_exactly_when_an_observed_value_is_below_it(case, bound):
    data, values, observed = case
    profile = make_profile(data, scan_values(data), valid_ranges(data))
    for channel in profile["channels"]:
        channel["valid_range"], channel["range_source"] = [bound, None], "a test"
        channel["min"] = channel["max"] = None  # judge the physical range only
    if (values[observed] < bound).any():
        with pytest.raises(DataGuardError, match=rf"below the physically valid minimum {bound:g}"):
            check_values(data, profile)
    else:
        check_values(data, profile)


@FEW
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5), st.floats(0, 1), st.integers(0, 2**16))
def test_a_forecast_input_is_refused_exactly_when_too_much_or_all_is_missing(segments, t_in, n, limit, seed):
    x_mask = np.random.default_rng(seed).random((segments, t_in, n, 1)) < 0.6
    data = from_numpy(np.zeros((segments, t_in, n, 1), np.float32), layout="BTNC")
    share = 1 - x_mask.reshape(segments, -1).mean(axis=1)
    refused = ((share > limit) | ~x_mask.reshape(segments, -1).any(axis=1)).any()
    if refused:
        with pytest.raises(DataGuardError, match=r"the last \d+ steps of segment \d+ \(the forecast's input\) have"):
            check_missing(x_mask, data, t_in, limit)
    else:
        check_missing(x_mask, data, t_in, limit)


@FEW
@given(st.lists(st.integers(-3, 3), min_size=1, max_size=8))
def test_times_pass_exactly_when_they_strictly_increase(steps):
    times = np.datetime64("2024-01-01T00:00", "ns") + np.cumsum(steps).astype("timedelta64[h]")
    if (np.diff(times.astype(np.int64)) > 0).all():
        check_times([times], "t")
    else:
        with pytest.raises(DataGuardError, match=r"(repeats|comes before) the time of step"):
            check_times([times], "t")


@FEW
@given(st.sampled_from(["uint8", "uint16", "int8", "int32"]), st.booleans(), st.integers(0, 2**16))
def test_integers_convert_only_for_unsigned_input_to_unit_range_data(dtype, unit_range, seed):
    info = np.iinfo(dtype)
    values = np.random.default_rng(seed).integers(max(info.min, 0), info.max, (3, 1, 2, 2), endpoint=True).astype(dtype)
    meta = {"kind": "grid", "in_channels": 1, "num_nodes": None}
    profile = {"dtype": "float32", "channels": [{"name": "v", "units": None, "min": 0.0, "max": 1.0,
                                                 "valid_range": [0.0, 1.0] if unit_range else [None, None]}]}
    if unit_range and dtype.startswith("uint"):
        converted = conform(from_numpy(values), meta, profile).segments[0]
        np.testing.assert_allclose(converted, values / info.max, rtol=1e-6)
        assert converted.dtype == np.float32 and 0 <= converted.min() and converted.max() <= 1
    else:
        with pytest.raises(DataGuardError, match=rf"holds {dtype} values.*scale of integers is not known"):
            conform(from_numpy(values), meta, profile)


@FEW
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(0, 2**16))
def test_no_coverage_stays_nan_and_nothing_else_does(batch, t_in, size, seed):
    rng = np.random.default_rng(seed)
    x_mask = rng.random((batch, t_in, 1, size, size)) < 0.5
    forecast = rng.normal(size=(batch, 2, 1, size, size)).astype(np.float32)
    kept = keep_no_coverage(forecast, x_mask, {"kind": "grid", "no_coverage_nan": True})
    uncovered = np.broadcast_to(~x_mask.any(axis=1, keepdims=True), kept.shape)
    assert np.array_equal(np.isnan(kept), uncovered)
    np.testing.assert_array_equal(kept[~uncovered], forecast[~uncovered])
    assert keep_no_coverage(forecast, x_mask, {"kind": "grid", "no_coverage_nan": False}) is forecast
