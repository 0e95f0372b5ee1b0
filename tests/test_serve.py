"""The forecasting service: hostile and broken requests (each followed by a good one that must still be
answered correctly), the served forecast against `stpatch predict`, batching, the bounded queue, the
batcher's shutdown, and one real uvicorn process on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("onnxruntime")
import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

import stpatch  # noqa: E402
from stpatch.deploy.batcher import Closed, MicroBatcher  # noqa: E402
from stpatch.deploy.engines import open_engine  # noqa: E402
from stpatch.deploy.serve import ServeOptions, create_app  # noqa: E402

try:
    from deploy_helpers import digit_windows, grid_run
except ImportError:  # tests/ imported as a package
    from tests.deploy_helpers import digit_windows, grid_run

LIMIT = 256 * 1024  # body limit in these tests; a good JSON request (4 x 32 x 32 values) is about 80 kB


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A tiny exported run, its app (ONNX engine) and one good input with its expected forecast."""
    run = grid_run(tmp_path_factory.mktemp("serve") / "run")
    stpatch.export(run)
    x = digit_windows("test")[0][0]  # (4, 1, 32, 32) in [0, 1]
    expected = stpatch.predict(run, x)  # the torch engine, as `stpatch predict` does by default
    app = create_app(open_engine(run, "onnx"), ServeOptions(max_body_bytes=LIMIT, max_windows=8, max_wait_ms=1))
    with TestClient(app) as client:
        yield run, client, x, expected


def good_request_works(client, x, expected):
    response = client.post("/v1/forecast", json={"x": x.tolist()})
    assert response.status_code == 200, response.text
    out = np.asarray(response.json()["forecast"], dtype=np.float32)
    assert out.shape == (1, 3, 1, 32, 32)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-4)


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


GOOD = digit_windows("test")[0][0]
JSON = {"Content-Type": "application/json"}
NPY = {"Content-Type": "application/x-npy"}
nan_all = np.full(GOOD.shape, None, dtype=object).tolist()
HOSTILE = [  # (name, request kwargs, expected status, words the message must hold)
    ("wrong rank", dict(json={"x": GOOD[:, 0, 0].tolist()}), 422, "expected (B, T, C, H, W)"),
    ("wrong grid size", dict(json={"x": GOOD[:, :, :16, :16].tolist()}), 422, "(C, H, W) = (1, 32, 32)"),
    ("too few steps", dict(json={"x": GOOD[:2].tolist()}), 422, "got 2 steps"),
    ("two channels", dict(json={"x": np.concatenate([GOOD, GOOD], 1).tolist()}), 422, "got shape (4, 2, 32, 32)"),
    ("all missing", dict(json={"x": nan_all}), 422, "no observed value"),
    ("infinity", dict(content=json.dumps({"x": np.where(GOOD > 0.5, np.inf, GOOD).tolist()}), headers=JSON), 422, "Inf"),
    ("impossible value", dict(json={"x": (GOOD + 5.0).tolist()}), 422, "above the physically valid maximum 1"),
    ("booleans", dict(json={"x": (GOOD > 0.5).tolist()}), 422, "booleans"),
    ("text", dict(json={"x": [["a", "b"], ["c", "d"]]}), 422, "text"),
    ("ragged lists", dict(json={"x": [[1.0, 2.0], [3.0]]}), 422, "ragged"),
    ("complex .npy", dict(content=npy_bytes(GOOD.astype(np.complex64)), headers=NPY), 422, "complex"),
    ("pickled .npy", dict(content=npy_bytes(np.array([{"a": 1}], dtype=object)), headers=NPY), 400, "not a readable .npy"),
    ("garbage .npy", dict(content=b"\x93NUMPY garbage", headers=NPY), 400, "not a readable .npy"),
    ("malformed JSON", dict(content=b'{"x": [1, 2,', headers=JSON), 400, "not valid JSON"),
    ("empty body", dict(content=b"", headers=JSON), 400, "empty"),
    ("JSON list, not object", dict(json=[1, 2, 3]), 422, "got a JSON list"),
    ("no x", dict(json={"y": [1, 2]}), 422, "keys ['y']"),
    ("body over the limit", dict(content=b" " * (LIMIT + 1), headers=JSON), 413, "at most"),
    ("wrong content type", dict(content=b"x=1", headers={"Content-Type": "text/plain"}), 415, "text/plain"),
    ("no content type", dict(content=b'{"x": 1}', headers={"Content-Type": ""}), 415, "Content-Type"),
    ("too many series", dict(content=npy_bytes(np.stack([GOOD] * 9)), headers=NPY), 422, "1 to 8 series"),
    ("times not strings", dict(json={"x": GOOD.tolist(), "times": [1, 2, 3, 4]}), 422, "ISO 8601"),
    ("times not dates", dict(json={"x": GOOD.tolist(), "times": ["soon"] * 4}), 422, "soon"),
]


@pytest.mark.parametrize(("name", "kwargs", "status", "words"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_request_gets_a_clear_4xx_and_the_service_keeps_working(served, name, kwargs, status, words):
    _, client, x, expected = served
    response = client.post("/v1/forecast", **kwargs)
    assert response.status_code == status, f"{name}: {response.status_code} {response.text[:300]}"
    assert words in response.json()["detail"], response.json()["detail"]
    good_request_works(client, x, expected)


def test_wrong_method_and_path(served):
    _, client, x, expected = served
    assert client.get("/v1/forecast").status_code == 405
    assert client.post("/v2/forecast", json={"x": []}).status_code == 404
    good_request_works(client, x, expected)


def test_served_forecast_equals_predict_in_json_and_npy(served):
    run, client, x, expected = served
    assert client.get("/health").json()["status"] == "ok"
    about = client.get("/v1/model").json()
    assert about["t_in"] == 4 and about["t_out"] == 3 and about["input_shape"][2:] == [1, 32, 32]
    assert about["units"] == ["intensity in [0, 1]"] and "NaN" in about["nan_policy"]
    # two series in one request, as .npy in and out; the same as `stpatch predict` on both engines
    two = digit_windows("test")[0][:2]
    response = client.post("/v1/forecast", content=npy_bytes(two), headers={**NPY, "Accept": "application/x-npy"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/x-npy"
    out = np.load(io.BytesIO(response.content))
    np.testing.assert_allclose(out, stpatch.predict(run, two), rtol=0, atol=1e-4)
    np.testing.assert_allclose(out, stpatch.predict(run, two, engine="onnx"), rtol=0, atol=1e-6)
    # missing values (null) within the limit are masked as in predict, not refused
    holes = x.copy()
    holes[0, 0, :8] = np.nan
    sent = np.where(np.isnan(holes), None, holes.astype(object)).tolist()
    response = client.post("/v1/forecast", json={"x": sent})
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(np.asarray(response.json()["forecast"], np.float32), stpatch.predict(run, holes),
                               rtol=0, atol=1e-4)


class SlowEngine:
    """The engine, slowed down, counting the windows of each call."""

    def __init__(self, engine, delay):
        import threading

        self.engine, self.delay, self.sizes = engine, delay, []
        self.name, self.meta, self.profile = engine.name, engine.meta, engine.profile
        self.started = threading.Event()  # set when the first model call begins

    def forecast(self, x, mask=None, tod=None, dow=None, **kw):
        self.started.set()
        time.sleep(self.delay)
        self.sizes.append(len(x))
        return self.engine.forecast(x, mask, tod, dow)


async def _concurrent(app, bodies):
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.gather(*(client.post("/v1/forecast", json=b) for b in bodies))


def test_concurrent_requests_are_batched(served):
    run, _, _, _ = served
    windows = digit_windows("test")[0]  # 8 different inputs
    engine = SlowEngine(open_engine(run, "onnx"), delay=0.05)
    app = create_app(engine, ServeOptions(max_batch=8, max_wait_ms=30, max_body_bytes=LIMIT))
    responses = asyncio.run(_concurrent(app, [{"x": w.tolist()} for w in windows]))
    assert [r.status_code for r in responses] == [200] * 8
    got = np.concatenate([np.asarray(r.json()["forecast"], np.float32) for r in responses])
    np.testing.assert_allclose(got, stpatch.predict(run, windows), rtol=0, atol=1e-4)  # each its own answer
    assert sum(engine.sizes) == 8 and len(engine.sizes) < 8 and max(engine.sizes) > 1


def test_full_queue_answers_503_and_never_500(served):
    run, _, x, _ = served
    engine = SlowEngine(open_engine(run, "onnx"), delay=0.2)
    app = create_app(engine, ServeOptions(max_batch=1, max_wait_ms=0, max_queue=2, max_body_bytes=LIMIT))
    responses = asyncio.run(_concurrent(app, [{"x": x.tolist()}] * 8))
    codes = sorted(r.status_code for r in responses)
    assert set(codes) == {200, 503} and codes.count(200) >= 2, codes
    busy = next(r for r in responses if r.status_code == 503)
    assert "busy" in busy.json()["detail"] and busy.headers["retry-after"] == "1"


def test_batcher_close_finishes_queued_requests_then_refuses():
    calls = []

    def slow_double(x, mask, tod, dow):
        time.sleep(0.05)
        calls.append(len(x))
        return 2 * x

    async def scenario():
        batcher = MicroBatcher(slow_double, max_batch=1, max_wait=0.0, max_queue=10)
        await batcher.start()
        pending = [asyncio.ensure_future(batcher.submit(np.full((1, 2), i, np.float32), None)) for i in range(4)]
        await asyncio.sleep(0)  # all four queued
        await batcher.close()
        assert all(p.done() for p in pending)
        results = [float(p.result()[0, 0]) for p in pending]
        with pytest.raises(Closed):
            await batcher.submit(np.zeros((1, 2), np.float32), None)
        return results

    assert asyncio.run(scenario()) == [0.0, 2.0, 4.0, 6.0]
    assert calls == [1, 1, 1, 1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_server_on_localhost(served):
    run, _, x, expected = served
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "stpatch.cli", "serve", str(run), "--host", "127.0.0.1",
                             "--port", str(port), "--max-body-mb", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            raise AssertionError("the server did not come up")
        good_request_works(httpx.Client(base_url=base, timeout=30), x, expected)
        # a huge declared Content-Length is refused at once, before any body is read
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"POST /v1/forecast HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 1000000000000\r\n\r\n{}")
            answer = s.recv(4096).decode()
        assert answer.startswith("HTTP/1.1 413"), answer[:200]
        good_request_works(httpx.Client(base_url=base, timeout=30), x, expected)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    log = proc.stdout.read().decode()
    # uvicorn shuts down gracefully, then re-raises the signal: exit by SIGTERM, after "Finished"
    assert code in (0, -signal.SIGTERM), log[-2000:]
    assert "Application shutdown complete" in log and "Finished server process" in log, log[-2000:]


def test_shutdown_finishes_the_request_in_flight(served):
    """uvicorn in this process, a slow model: a request in flight when shutdown begins is still answered."""
    import threading

    import uvicorn

    run, _, x, expected = served
    engine = SlowEngine(open_engine(run, "onnx"), delay=1.0)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(engine, ServeOptions(max_body_bytes=LIMIT)), host="127.0.0.1",
                                           port=port, log_level="warning", timeout_graceful_shutdown=20))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.1)
        assert server.started
        answers = []
        client = threading.Thread(target=lambda: answers.append(
            httpx.post(f"http://127.0.0.1:{port}/v1/forecast", json={"x": x.tolist()}, timeout=30)))
        client.start()
        assert engine.started.wait(timeout=30)  # the model call has begun...
        assert not engine.sizes  # ...and not ended
        server.should_exit = True  # shutdown begins while the request is in flight
        client.join(timeout=30)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert len(answers) == 1 and answers[0].status_code == 200, answers
    np.testing.assert_allclose(np.asarray(answers[0].json()["forecast"], np.float32), expected, rtol=0, atol=1e-4)
    assert engine.sizes == [1]


def test_torch_engine_serves_the_same_forecast(served):
    run, _, x, expected = served
    app = create_app(open_engine(run, "torch"), ServeOptions(max_body_bytes=LIMIT))
    with TestClient(app) as client:
        assert client.get("/v1/model").json()["engine"] == "torch"
        response = client.post("/v1/forecast", json={"x": x.tolist()})
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(np.asarray(response.json()["forecast"], np.float32), expected, rtol=0, atol=1e-6)
        assert client.post("/v1/forecast", json={"x": x[:1].tolist()}).status_code == 422
