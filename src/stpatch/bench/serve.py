"""``stpatch bench serve``: the forecasting service under load, on 127.0.0.1 only.

Starts ``stpatch serve RUN`` in a subprocess on a free local port, then for each number of concurrent
clients (1, 8, 32) sends good forecast requests back to back for a fixed time and reports requests/s,
p50/p99 latency, the server process's peak RSS (sampled every 50 ms) and the count of 5xx answers
(503 "busy" counted apart from errors). Nothing leaves the machine; the server is always stopped.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["bench_serve", "format_serve_table", "good_request"]


def good_request(about: dict, profile: dict | None = None) -> dict:
    """A valid JSON request for the model described by ``GET /v1/model``: one series of ``t_in`` steps at
    the middle of each channel's training range (0 without a profile), with times when required."""
    shape = [about["t_in"], *about["input_shape"][2:]]
    channels = (profile or {}).get("channels") or []
    level = float(np.mean([(c["min"] + c["max"]) / 2 for c in channels])) if channels else 0.0
    body: dict = {"x": np.full(shape, level, np.float32).tolist()}
    if about.get("times_required"):
        step = int((profile or {}).get("step_seconds") or 3600)
        start = np.datetime64("2024-01-01T00:00:00")
        body["times"] = [str(start + np.timedelta64(i * step, "s")) for i in range(about["t_in"])]
    return body


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _load(base: str, body: dict, clients: int, seconds: float, pid: int) -> dict:
    import httpx
    import psutil

    latencies: list[float] = []
    codes: dict[int, int] = {}
    peak = 0
    deadline = time.perf_counter() + seconds
    process = psutil.Process(pid)

    async def client(http: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            response = await http.post("/v1/forecast", json=body)
            latencies.append(time.perf_counter() - start)
            codes[response.status_code] = codes.get(response.status_code, 0) + 1

    async def watch_memory() -> None:
        nonlocal peak
        while time.perf_counter() < deadline:
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.05)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        begin = time.perf_counter()
        await asyncio.gather(watch_memory(), *(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - begin
    ms = np.array(latencies) * 1e3
    return {
        "clients": clients, "seconds": round(elapsed, 2), "requests": len(latencies),
        "requests_per_s": len(latencies) / elapsed, "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
        "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None, "peak_rss_mb": peak / 2**20,
        "ok": codes.get(200, 0), "busy_503": codes.get(503, 0),
        "errors_5xx": sum(n for c, n in codes.items() if c >= 500 and c != 503),
        "other": {c: n for c, n in codes.items() if c not in (200, 503) and c < 500},
    }


def bench_serve(run: str | Path, seconds: float = 20.0, clients: tuple[int, ...] = (1, 8, 32), engine: str = "onnx",
                startup_timeout: float = 120.0, extra_args: tuple[str, ...] = ()) -> list[dict]:
    """Load-test ``stpatch serve RUN`` on 127.0.0.1: one row per number of concurrent clients."""
    import httpx

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "stpatch.cli", "serve", str(run), "--host", "127.0.0.1", "--port", str(port),
               "--engine", engine, *extra_args]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ))
    try:
        up = time.monotonic() + startup_timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited: {server.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > up:
                raise RuntimeError(f"the server did not answer /health within {startup_timeout:.0f} s")
            time.sleep(0.3)
        about = httpx.get(f"{base}/v1/model", timeout=10).json()
        from stpatch.deploy.engines import open_engine

        body = good_request(about, open_engine(run, engine).profile)
        check = httpx.post(f"{base}/v1/forecast", json=body, timeout=60)
        if check.status_code != 200:
            raise RuntimeError(f"the benchmark's request was refused: {check.status_code} {check.text[:500]}")
        return [asyncio.run(_load(base, body, n, seconds, server.pid)) for n in clients]
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def format_serve_table(rows: list[dict], run: str | Path, engine: str = "onnx") -> str:
    """The rows as a Markdown table, with the command that made them."""
    seconds = rows[0]["seconds"] if rows else 0
    lines = [f"`stpatch bench serve --run {run} --seconds {seconds:.0f}` ({engine} engine, 127.0.0.1)", "",
             "| clients | requests/s | p50 ms | p99 ms | peak RSS MB | 200 | 503 busy | 5xx errors |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['clients']} | {r['requests_per_s']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                     f"{r['peak_rss_mb']:.0f} | {r['ok']} | {r['busy_503']} | {r['errors_5xx']} |")
    return "\n".join(lines)
