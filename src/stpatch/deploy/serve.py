"""The forecasting service behind ``stpatch serve RUN``: FastAPI on uvicorn.

Endpoints: ``GET /health``, ``GET /v1/model`` (what the model expects), ``POST /v1/forecast`` (a JSON
object ``{"x": nested list, "times": [ISO strings]?}`` or a raw ``.npy`` body; physical units in and
out). A request is checked in this order, each failure a 4xx whose message says what was expected and
what came: declared length (413), content type (415), body size while reading (413), empty or
malformed body (400), dtype, rank and sizes (422), then the data guard of ``stpatch predict``
(:func:`stpatch.engine.prediction.prepare_input`: Inf, impossible values, too much missing: 422).
NaN (JSON ``null`` or ``NaN``) means a missing value, masked as in training. Concurrent requests
share model calls (:mod:`stpatch.deploy.batcher`); a full queue answers 503; on shutdown uvicorn
stops accepting, finishes the requests in flight, then the batcher finishes what is queued.

Why FastAPI + uvicorn and not LitServe: the service's work is at the edge (reading the raw body with a
size cap before parsing, ``.npy`` bodies, precise 4xx messages, a bounded queue answering 503), which
plain FastAPI lets us write directly, and it runs the model in-process; LitServe (itself built on
FastAPI) adds worker processes, each with a copy of the model, and its own batching loop and request
decoding, which on a small CPU host costs memory and hides the queue bound we need to control.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stpatch.deploy.batcher import Closed, MicroBatcher, QueueFull

try:  # the deploy extra; without it the module still imports (docs, doctests) and create_app says what to install
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response
except ImportError:  # pragma: no cover - depends on the environment
    FastAPI = Request = JSONResponse = Response = None

__all__ = ["ServeOptions", "create_app", "run_server"]

log = logging.getLogger("stpatch.serve")
NPY_TYPES = ("application/x-npy", "application/octet-stream")
_KINDS = {"b": "booleans", "U": "text", "S": "bytes", "c": "complex numbers", "M": "dates", "m": "durations"}


@dataclass
class ServeOptions:
    """Limits of the service (``stpatch serve --max-batch ...``)."""

    max_batch: int = 32  # windows in one model call
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for others
    max_queue: int = 256  # requests waiting; beyond: 503
    max_body_bytes: int = 16 * 2**20  # request body; beyond: 413
    max_windows: int = 64  # series in one request; beyond: 422
    max_missing: float | None = None  # as `stpatch predict --max-missing`


class RequestError(Exception):
    """A 4xx answer: ``status`` and a message saying what was expected and what came."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def describe(engine: Any, options: ServeOptions) -> dict:
    """What ``GET /v1/model`` answers: what a request must hold."""
    meta = engine.meta
    grid = meta["kind"] == "grid"
    sizes = [int(s) for s in meta["spatial_shape"]] if grid else [int(meta["num_nodes"])]
    tail = [meta["in_channels"], *sizes] if grid else [*sizes, meta["in_channels"]]
    channels = (engine.profile or {}).get("channels") or []
    return {
        "engine": engine.name, "kind": meta["kind"], "layout": "(B, T, C, H, W)" if grid else "(B, T, N, C)",
        "t_in": meta["t_in"], "t_out": meta["t_out"], "input_shape": ["B (optional)", f"T >= {meta['t_in']}", *tail],
        "output_shape": ["B", meta["t_out"], *tail],
        "units": [c.get("units") for c in channels], "valid_range": [c.get("valid_range") for c in channels],
        "times_required": bool(getattr(engine, "time_inputs", [])),
        "nan_policy": "NaN (JSON null or NaN) is a missing value, masked as in training; Inf is refused; an input "
                      "with no observed value, or with more missing than the training data allows, is refused",
        "content_types": ["application/json: {\"x\": nested list, \"times\": [ISO 8601, one per step]}",
                          "application/x-npy: a .npy file (no pickles)"],
        "max_body_bytes": options.max_body_bytes, "max_windows": options.max_windows, "max_batch": options.max_batch,
    }


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it passes ``limit`` bytes (a lying Content-Length does not help)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RequestError(400, f"Content-Length should be a byte count, got {declared!r}")
        if int(declared) > limit:
            raise RequestError(413, f"the body may hold at most {limit} bytes; Content-Length declares {declared}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"the body may hold at most {limit} bytes; more came")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        raise RequestError(400, "the body is empty; expected a JSON object {\"x\": [...]} or a .npy array")
    return body


def _as_float_array(value: Any, what: str) -> np.ndarray:
    """A numeric array, NaN where missing; bool, text, complex, objects and ragged lists are refused."""
    try:
        array = np.asarray(value)
    except ValueError as err:  # ragged nested lists
        raise RequestError(422, f"{what} should be a rectangular array of numbers; got ragged lists ({err})") from None
    if array.dtype.kind == "O":  # JSON null among numbers: missing values
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            raise RequestError(422, f"{what} should hold numbers (null for missing); got other values") from None
    if array.dtype.kind not in "iuf":
        kind = _KINDS.get(array.dtype.kind, array.dtype.kind)
        raise RequestError(422, f"{what} should hold real numbers (float or int); got dtype {array.dtype} ({kind})")
    return array


def parse_request(body: bytes, content_type: str) -> tuple[np.ndarray, list | None]:
    """``(x, times)`` from a JSON or ``.npy`` body."""
    kind = content_type.split(";")[0].strip().lower()
    if kind in NPY_TYPES:
        try:
            array = np.load(io.BytesIO(body), allow_pickle=False)
        except Exception as err:  # numpy raises several types for a broken file
            raise RequestError(400, f"the body is not a readable .npy array ({type(err).__name__}: {err})") from None
        if not isinstance(array, np.ndarray):
            raise RequestError(400, "the body should be one .npy array, not an .npz archive")
        return _as_float_array(array, "the .npy array"), None
    if kind != "application/json":
        raise RequestError(415, f"Content-Type should be application/json or application/x-npy; got {content_type or 'none'!r}")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RequestError(400, f"the body is not valid JSON ({err}); expected {{\"x\": [...]}}") from None
    if not isinstance(payload, dict) or "x" not in payload:
        got = f"an object with keys {sorted(payload)}" if isinstance(payload, dict) else f"a JSON {type(payload).__name__}"
        raise RequestError(422, f"expected a JSON object {{\"x\": nested list, \"times\": optional}}; got {got}")
    times = payload.get("times")
    if times is not None and (not isinstance(times, list) or not all(isinstance(t, str) for t in times)):
        raise RequestError(422, "times should be a list of ISO 8601 strings, one per input step")
    return _as_float_array(payload["x"], "x"), times


def check_shape(array: np.ndarray, meta: dict, options: ServeOptions) -> None:
    """Rank, sizes and window count against the model's input."""
    grid = meta["kind"] == "grid"
    sizes = [int(s) for s in meta["spatial_shape"]] if grid else [int(meta["num_nodes"])]
    tail = (meta["in_channels"], *sizes) if grid else (*sizes, meta["in_channels"])
    names, sized = ("(B, T, C, H, W)", "(C, H, W)") if grid else ("(B, T, N, C)", "(N, C)")
    want = f"{names} or without B, with T >= {meta['t_in']} and {sized} = {tuple(tail)}"
    if array.ndim not in (len(tail) + 1, len(tail) + 2):
        raise RequestError(422, f"expected {want}; got rank {array.ndim}, shape {array.shape}")
    if tuple(array.shape[-len(tail):]) != tuple(tail):
        raise RequestError(422, f"expected {want}; got shape {array.shape}")
    if array.shape[-len(tail) - 1] < meta["t_in"]:
        raise RequestError(422, f"expected {want}; got {array.shape[-len(tail) - 1]} steps, shape {array.shape}")
    windows = array.shape[0] if array.ndim == len(tail) + 2 else 1
    if windows > options.max_windows or array.size == 0:
        raise RequestError(422, f"expected 1 to {options.max_windows} series per request; got {windows}")


def _to_json(forecast: np.ndarray) -> list:
    """Nested lists with NaN (no coverage) as null: strict JSON has no NaN."""
    as_object = forecast.astype(object)
    as_object[np.isnan(forecast)] = None
    return as_object.tolist()


def create_app(engine: Any, options: ServeOptions | None = None) -> FastAPI:
    """The FastAPI app serving ``engine`` (:func:`stpatch.deploy.engines.open_engine`)."""
    from stpatch.data import from_numpy, guard
    from stpatch.data.adapters import default_layout
    from stpatch.engine.prediction import prepare_input

    if FastAPI is None:
        raise ImportError("the service needs FastAPI and uvicorn: pip install 'stpatch[deploy]'")
    options = options or ServeOptions()
    batcher = MicroBatcher(engine.forecast, options.max_batch, options.max_wait_ms / 1e3, options.max_queue)
    about = describe(engine, options)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        yield
        await batcher.close()  # after uvicorn has finished the requests in flight

    app = FastAPI(title="stpatch forecasting service", lifespan=lifespan)
    app.state.batcher = batcher
    app.state.engine = engine

    @app.exception_handler(RequestError)
    async def request_error(request: Request, err: RequestError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=err.status)

    @app.get("/health")
    async def health() -> dict:
        queued = batcher.queue.qsize() if batcher.queue is not None else 0
        return {"status": "shutting down" if batcher.closing else "ok", "engine": engine.name, "queued": queued,
                "max_queue": options.max_queue, "model_calls": batcher.calls}

    @app.get("/v1/model")
    async def model() -> dict:
        return about

    @app.post("/v1/forecast")
    async def forecast(request: Request) -> Response:
        body = await _read_body(request, options.max_body_bytes)
        array, times = parse_request(body, request.headers.get("content-type", ""))
        check_shape(array, engine.meta, options)
        if about["times_required"] and times is None:
            raise RequestError(422, "this model was trained with time features: give \"times\", one ISO 8601 string "
                                    "per input step (JSON body)")
        strict = request.query_params.get("strict", "false").lower() in ("1", "true", "yes")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", guard.DataGuardWarning)
            try:
                layout = default_layout(array.ndim, engine.meta["kind"])
                data = from_numpy(array, layout=layout, times=None if times is None else np.array(times, "datetime64[ns]"))
                batch, data = prepare_input(engine.meta, engine.profile, data, strict=strict,
                                            max_missing=options.max_missing, who="the request")
            except ValueError as err:  # the data guard's errors, bad times
                raise RequestError(422, str(err)) from None
        notes = [str(w.message) for w in caught if issubclass(w.category, guard.DataGuardWarning)]
        try:
            out = await batcher.submit(batch["x"], batch["x_mask"], batch.get("tod"), batch.get("dow"))
        except (QueueFull, Closed) as err:
            return JSONResponse({"detail": f"busy: {err}; retry shortly"}, status_code=503, headers={"Retry-After": "1"})
        except ValueError as err:  # the engine's own checks (shape, times)
            raise RequestError(422, str(err)) from None
        out = guard.keep_no_coverage(out, batch["x_mask"], engine.profile)
        if request.headers.get("accept", "").split(";")[0].strip() in NPY_TYPES:
            buffer = io.BytesIO()
            np.save(buffer, out)
            return Response(buffer.getvalue(), media_type="application/x-npy")
        return JSONResponse({"forecast": _to_json(out), "shape": list(out.shape), "units": about["units"],
                             "warnings": notes})

    return app


def run_server(run: str | Path, host: str = "127.0.0.1", port: int = 8000, engine: str = "onnx",
               options: ServeOptions | None = None) -> None:
    """Serve ``run`` until SIGINT/SIGTERM; in-flight requests are finished first (30 s at most)."""
    import uvicorn

    from stpatch.deploy.engines import open_engine

    options = options or ServeOptions()
    app = create_app(open_engine(run, engine), options)
    log.info("serving %s (%s engine) on http://%s:%d with %s", run, engine, host, port, asdict(options))
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=30)
