"""ONNX export and the ONNX Runtime engine: parity with PyTorch for every exportable registry model, the
sidecar, `predict --engine onnx` against the torch engine, NumPy scaling, and no PyTorch on that path."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
import onnxruntime as ort  # noqa: E402

import stpatch  # noqa: E402
from stpatch.deploy.export import NOT_EXPORTABLE, ExportError, check_exportable, export_model  # noqa: E402
from stpatch.deploy.onnx_engine import OnnxForecaster, scale, unscale  # noqa: E402
from stpatch.models import create_model, get_model_entry, list_models  # noqa: E402

try:
    from deploy_helpers import digit_windows, grid_run, sensor_data, sensor_run
except ImportError:  # tests/ imported as a package
    from tests.deploy_helpers import digit_windows, grid_run, sensor_data, sensor_run

T_IN, T_OUT = 4, 3


def _cases():
    cases = []
    for name in list_models():
        if name in NOT_EXPORTABLE:
            continue
        for kind in get_model_entry(name).kinds:
            cases.append((name, kind, {}))
    # the base-forecast wrapper: a learned correction on persistence / a fitted linear model
    cases += [("stpnet_tiny", "grid", {"base": "persistence"}), ("stpnet_tiny", "grid", {"base": "linear"}),
              ("stpnet_sensor", "sensor", {"base": "linear", "feed_base": True}),
              ("stid", "sensor", {"base": "persistence"})]
    return cases


def _tiny(name: str, kind: str, options: dict) -> tuple[torch.nn.Module, tuple]:
    """A small instance with every weight perturbed, so that zero-initialised heads compute something."""
    kw = dict(in_channels=2, t_in=T_IN, t_out=T_OUT, **options)
    if kind == "sensor":
        kw["num_nodes"] = 5
        shape = (T_IN, 5, 2)
    else:
        kw["grid_size"] = (16, 16)
        shape = (T_IN, 2, 16, 16)
        if name.startswith("stp"):
            kw["patch"] = (2, 4, 4)
    torch.manual_seed(0)
    model = create_model(name, **kw).eval()
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point():
                tensor.add_(0.05 * torch.randn_like(tensor))
    return model, shape


@pytest.mark.parametrize(("name", "kind", "options"), _cases(),
                         ids=[f"{n}-{k}{'-' + o['base'] if o else ''}" for n, k, o in _cases()])
def test_onnx_runtime_reproduces_pytorch(tmp_path, name, kind, options):
    model, shape = _tiny(name, kind, options)
    times = [k for k in ("tod", "dow") if k in inspect.signature(model.forward).parameters]
    report = export_model(model, (2, *shape), tmp_path / "m.onnx", times)
    assert report["max_abs_diff"] <= 1e-4
    assert not model.training  # exporting leaves the model in eval mode (dropout off)

    # independently of the export's own check: a fresh session, other windows, other batch sizes
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    assert inputs[0] == "x" and set(inputs) <= {"x", *times}
    assert report["inputs"] == inputs
    assert session.get_inputs()[0].shape[0] == "batch"  # the batch axis is dynamic
    rng = np.random.default_rng(7)
    for b in (1, 5):
        x = rng.normal(size=(b, *shape)).astype(np.float32)
        feeds = {"x": x, "tod": rng.uniform(size=(b, T_IN)).astype(np.float32),
                 "dow": rng.integers(0, 7, size=(b, T_IN))}
        with torch.no_grad():  # PyTorch gets every time input, the graph the ones it reads
            expected = model(torch.from_numpy(x), **{k: torch.from_numpy(feeds[k]) for k in times}).numpy()
        got = session.run(None, {k: feeds[k] for k in inputs})[0]
        assert got.shape == expected.shape == (b, T_OUT, *shape[1:])
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4, err_msg=f"{name} batch {b}")


def test_parity_check_catches_a_graph_that_differs(tmp_path):
    """The export's own check fails (and writes nothing) when the graph does not reproduce PyTorch."""

    class TraceDiffers(torch.nn.Module):
        kind = "grid"

        def forward(self, x):
            # a Python-side random number is frozen into the graph at trace time; PyTorch draws anew
            return x[:, -1:] + float(np.random.default_rng().normal())

    with pytest.raises(ExportError, match="differs from PyTorch by .* nothing was written"):
        export_model(TraceDiffers(), (2, T_IN, 1, 8, 8), tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


def test_models_that_cannot_be_exported_say_why():
    assert "extrapolation" in NOT_EXPORTABLE
    with pytest.raises(ExportError, match="'extrapolation' cannot be exported to ONNX: pysteps"):
        check_exportable("extrapolation")
    with pytest.raises(ExportError, match="base forecast 'extrapolation' cannot be exported"):
        check_exportable("stpnet", base="extrapolation")
    check_exportable("stpnet", base="persistence")  # no error


@pytest.fixture(scope="module")
def grid_export(tmp_path_factory):
    run = grid_run(tmp_path_factory.mktemp("grid") / "run")
    return run, stpatch.export(run)


def test_export_writes_graph_and_sidecar_and_engines_agree(grid_export, tmp_path):
    run, path = grid_export
    assert path == run / "export" / "model.onnx" and path.is_file()
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["t_in"] == 4 and sidecar["t_out"] == 3 and sidecar["channels"] == 1
    assert sidecar["kind"] == "grid" and sidecar["layout"] == "(B, T, C, H, W)" and sidecar["grid"] == [32, 32]
    assert sidecar["input_shape"] == [None, 4, 1, 32, 32] and sidecar["inputs"] == ["x"]
    assert sidecar["scaler"]["type"] == "IdentityScaler" and sidecar["units"] == ["intensity in [0, 1]"]
    assert sidecar["parity"]["max_abs_diff"] <= 1e-4
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary files left

    x, _ = digit_windows("test")
    torch_forecast = stpatch.predict(run, x)
    onnx_forecast = stpatch.predict(run, x, engine="onnx")
    assert onnx_forecast.shape == (8, 3, 1, 32, 32)
    np.testing.assert_allclose(onnx_forecast, torch_forecast, rtol=0, atol=1e-4)
    assert np.abs(torch_forecast - np.repeat(x[:, -1:], 3, axis=1)).max() > 1e-3  # not just persistence

    # an export elsewhere, opened by folder; the wrong grid is refused with the training size named
    other = stpatch.export(run, tmp_path / "out")
    assert other == tmp_path / "out" / "model.onnx"
    model = OnnxForecaster.open(tmp_path / "out")
    with pytest.raises(ValueError, match=r"takes \(B, T, C, H, W\) = \(B, 4, 1, 32, 32\), got \(1, 4, 1, 16, 16\).*trained on a 32 x 32 grid"):
        model.forecast(np.zeros((1, 4, 1, 16, 16), np.float32))
    with pytest.raises(FileNotFoundError, match="stpatch export"):
        OnnxForecaster.open(tmp_path / "nothing")


def test_sensor_run_with_time_features_and_scaling(tmp_path):
    from stpatch.datasets import from_numpy

    run = sensor_run(tmp_path / "run")
    path = stpatch.export(run)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["inputs"] == ["x", "tod", "dow"] and sidecar["base"] == "linear"
    assert sidecar["scaler"]["type"] == "StandardScaler" and sidecar["num_nodes"] == 6
    data = sensor_data()
    recent = from_numpy(np.asarray(data.segments[0])[-30:], layout="TNC", times=data.times[0][-30:], null_value=0.0)
    torch_forecast = stpatch.predict(run, recent)
    onnx_forecast = stpatch.predict(run, recent, engine="onnx")
    assert 20 < float(onnx_forecast.mean()) < 80  # physical units, not standardised ones
    np.testing.assert_allclose(onnx_forecast, torch_forecast, rtol=1e-6, atol=1e-4)
    # without timestamps the graph cannot run: it says what it needs
    with pytest.raises(ValueError, match="trained with time features"):
        stpatch.predict(run, np.asarray(data.segments[0])[-30:], engine="onnx")


@pytest.mark.parametrize("scaler", ["identity", "standard", "minmax", "log", "db"])
def test_numpy_scaling_equals_the_scalers(scaler):
    from stpatch.data.scalers import get_scaler

    rng = np.random.default_rng(0)
    train = rng.gamma(0.8, 3.0, size=(50, 2, 6, 6)).astype(np.float32)
    train[train < 0.5] = 0.0  # zeros and rates below the dB threshold, as in rain
    fitted = get_scaler(scaler).fit(train)
    state = json.loads(json.dumps(fitted.state_dict()))  # as it travels in the sidecar
    x = rng.gamma(0.8, 3.0, size=(3, 4, 2, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(scale(state, x), fitted.transform(x), rtol=1e-6, atol=1e-6)
    y = rng.normal(size=(3, 4, 2, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(unscale(state, y), fitted.inverse_transform(y), rtol=1e-5, atol=1e-6)


def test_onnx_engine_path_imports_no_pytorch(grid_export):
    _, path = grid_export
    code = f"""
import sys
import numpy as np
from stpatch.deploy.onnx_engine import OnnxForecaster
model = OnnxForecaster.open({str(path.parent)!r})
out = model.forecast(np.full((2, 4, 1, 32, 32), 0.5, np.float32))
print(out.shape, "torch" in sys.modules)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\n")[-2] == "(2, 3, 1, 32, 32) False"


def test_export_refuses_unknown_format(grid_export):
    run, _ = grid_export
    with pytest.raises(ExportError, match="unknown export format 'tflite'"):
        stpatch.export(run, format="tflite")


def test_dynamo_exporter_gives_the_same_graph(tmp_path):
    """The dynamo exporter (onnxscript) on a small model with time inputs: the same forecasts."""
    pytest.importorskip("onnxscript")
    model, shape = _tiny("linear", "sensor", {})
    report = export_model(model, (2, *shape), tmp_path / "d.onnx", ("tod", "dow"), dynamo=True)
    assert report["exporter"] == "dynamo" and report["max_abs_diff"] <= 1e-4
    session = ort.InferenceSession(str(tmp_path / "d.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(3).normal(size=(4, *shape)).astype(np.float32)
    feeds = {"x": x, "tod": np.zeros((4, T_IN), np.float32), "dow": np.zeros((4, T_IN), np.int64)}
    got = session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})[0]
    with torch.no_grad():
        expected = model(torch.from_numpy(x), tod=torch.from_numpy(feeds["tod"]), dow=torch.from_numpy(feeds["dow"]))
    np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=1e-4)


def test_fitted_baselines_export(tmp_path):
    """Climatology fitted per hour of day (its time-slot arithmetic in the graph) and a fitted linear model."""
    rng = np.random.default_rng(5)
    series = torch.from_numpy(rng.normal(size=(1, 96, 5, 2)).astype(np.float32))  # 4 days, hourly, 5 sensors
    hours = torch.arange(96, dtype=torch.float32)[None] / 24 % 1.0
    climatology = create_model("climatology", in_channels=2, t_in=T_IN, t_out=T_OUT, num_nodes=5, slots=24)
    climatology.fit(series, tod=hours)
    linear = create_model("linear", in_channels=2, t_in=T_IN, t_out=T_OUT, num_nodes=5)
    linear.fit(torch.stack([series[0, i:i + T_IN + T_OUT] for i in range(80)]))
    for name, model, times in (("climatology", climatology, ("tod",)), ("linear", linear, ())):
        model.eval()
        report = export_model(model, (2, T_IN, 5, 2), tmp_path / f"{name}.onnx", times)
        # a fitted climatology reads only the time of day: the exporter drops x from its graph
        assert report["inputs"] == (["tod"] if name == "climatology" else ["x"])
        session = ort.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        x = rng.normal(size=(6, T_IN, 5, 2)).astype(np.float32)
        tod = ((np.arange(T_IN)[None] + rng.integers(0, 24, size=(6, 1))) / 24 % 1.0).astype(np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(x), **({"tod": torch.from_numpy(tod)} if times else {})).numpy()
        feeds = {"x": x, "tod": tod}
        got = session.run(None, {k: feeds[k] for k in report["inputs"]})[0]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4, err_msg=name)
        assert np.abs(expected - x[:, -1:]).max() > 0.1  # neither is persistence


def test_a_run_without_a_data_profile_warns_that_its_time_inputs_are_left_out():
    """Runs saved before the data profile existed cannot say whether they had timestamps: the export
    leaves the time inputs out and says so, instead of silently ignoring the calendar."""
    from types import SimpleNamespace

    from stpatch.deploy.export import _time_inputs

    module = SimpleNamespace(_time_features=["tod"])
    old = SimpleNamespace(module=module, profile=None, checkpoint="runs/old/checkpoints/best.ckpt")
    with pytest.warns(UserWarning, match=r"no data profile.*\['tod'\].*ignore the calendar"):
        assert _time_inputs(old) == []
    timed = SimpleNamespace(module=module, profile={"step_seconds": 300.0}, checkpoint="x")
    assert _time_inputs(timed) == ["tod"]
