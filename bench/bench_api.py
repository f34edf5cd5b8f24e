"""What the HTTP API costs per request on a kept-alive connection, next to a bare ASGI app.

Three servers in this process, each under uvicorn on 127.0.0.1, each asked
over ONE kept-alive HTTP/1.1 connection by a minimal client (asyncio streams,
no HTTP library), request after request:

- ``hello``: a bare ASGI app answering ``{"ok": true}`` (uvicorn's own
  socket): the floor of uvicorn + the client on this machine.
- ``api me``: ``GET /v1/me`` of the API served by ``ApiServer``: the
  middlewares (metrics, key check, body limit), routing, auth, no backend.
- ``api sessions``: ``GET /v1/sessions?limit=1``: the same plus one Postgres
  query of the session index (an empty page).

Rounds are interleaved so load on the machine hits all alike. Prints p50 and
p99 (ms) of each and the ratio of each p50 to hello's. A server whose
accepted sockets lack TCP_NODELAY shows ~40 ms per request after the first
(Nagle + delayed ACK), which is what this bench was added to catch.

Runs on fresh topics / schema / Redis keys of the stack Settings() points at
(``runwire stack up``, or ``RUNWIRE_HOME=.runwire/test`` for the test stack).
Run: .venv/bin/python bench/bench_api.py [--rounds R] [--per-round N]
Writes bench/results/api.json (with the load average).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import SecretStr

from runwire.infra.isolation import isolated_deployment
from runwire.services.api.app import create_app
from runwire.services.api.server import ApiServer
from runwire.settings import Settings

RESULTS = Path(__file__).parent / "results"
KEY = "bench-key-5d0c9a7e3f1b2468"


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b'{"ok":true}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"11")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def hello_server() -> AsyncIterator[int]:
    config = uvicorn.Config(hello, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("the hello server did not start")
        await asyncio.sleep(0.01)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task


class KeptAlive:
    """One HTTP/1.1 connection; ``get`` sends a request and reads the whole response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> KeptAlive:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def get(self, path: str, headers: str = "") -> float:
        """Seconds from sending to the last byte of a 200 response."""
        request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n{headers}\r\n".encode()
        started = time.perf_counter()
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.lower().split(b"\r\n")
            if line.startswith(b"content-length:")
        )
        await self.reader.readexactly(length)
        took = time.perf_counter() - started
        assert status == b"200", head
        return took

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def machine_uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=200)
    args = parser.parse_args()
    uptime_before = machine_uptime()
    load_before = os.getloadavg()[0]
    auth = f"Authorization: Bearer {KEY}\r\n"
    async with contextlib.AsyncExitStack() as stack:
        settings = await stack.enter_async_context(isolated_deployment(Settings(), "benchapi"))
        settings = settings.model_copy(update={"api_keys": SecretStr(f"{KEY}:bench")})
        api = await stack.enter_async_context(ApiServer(create_app(settings), port=0))
        hello_port = await stack.enter_async_context(hello_server())
        targets = {
            "hello": (await KeptAlive.open(hello_port), "/", ""),
            "api me": (await KeptAlive.open(api.port), "/v1/me", auth),
            "api sessions": (await KeptAlive.open(api.port), "/v1/sessions?limit=1", auth),
        }
        times: dict[str, list[float]] = {name: [] for name in targets}
        for conn, path, headers in targets.values():  # warm-up, not counted
            for _ in range(50):
                await conn.get(path, headers)
        for _ in range(args.rounds):
            for name, (conn, path, headers) in targets.items():
                for _ in range(args.per_round):
                    times[name].append(await conn.get(path, headers))
        for conn, _, _ in targets.values():
            await conn.close()
    p50 = {name: statistics.median(values) * 1000 for name, values in times.items()}
    results: dict[str, Any] = {
        "requests_per_target": args.rounds * args.per_round,
        "one_connection_kept_alive": True,
        "cpus": os.cpu_count(),
        "load_average_1m_at_start": round(load_before, 2),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "uptime": {"at_start": uptime_before, "at_end": machine_uptime()},
    }
    for name, values in times.items():
        key = name.replace(" ", "_")
        results[f"{key}_p50_ms"] = round(p50[name], 3)
        results[f"{key}_p99_ms"] = round(percentile(values, 0.99) * 1000, 3)
        if name != "hello":
            results[f"{key}_p50_ratio_to_hello"] = round(p50[name] / p50["hello"], 2)
    for name, value in results.items():
        print(f"{name}: {value}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "api.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
