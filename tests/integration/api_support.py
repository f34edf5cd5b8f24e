"""What the HTTP API tests share: keys, the services behind the API, the API on a port."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from runwire.projections.runtime.consumer import ProjectorOptions
from runwire.projections.serve import serve_projection
from runwire.services.api.app import create_app
from runwire.services.api.backends import Options
from runwire.services.api.server import ApiServer
from runwire.settings import Settings
from tests.helpers import assert_eventually

ALICE = "alice-key-7f3a9c1e5b2d4680"
ALICE_READ_ONLY = "alice-view-0c8e2a4f6b1d3957"
BOB = "bob-key-93d1f0a7c5e2b864"
ANN_ACME = "ann-acme-key-5e1f0c9a7d3b"
"""(tenant acme, ann)"""
ANN = "ann-key-8b2d4f6a1c9e0f17"
"""(no tenant, ann): another principal than ``ANN_ACME``, the same user id"""
KEYS = (
    f"{ALICE}:alice, {ALICE_READ_ONLY}:alice:read, {BOB}:bob, {ANN_ACME}:ann:write:acme, {ANN}:ann"
)

FAST = ProjectorOptions(session_timeout_ms=6000, heartbeat_interval_ms=500, poll_timeout_ms=100)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def with_keys(settings: Settings) -> Settings:
    return settings.model_copy(update={"api_keys": SecretStr(KEYS)})


@contextlib.asynccontextmanager
async def projectors(
    settings: Settings, names: tuple[str, ...] = ("runs", "sessions", "transcripts")
) -> AsyncIterator[None]:
    """The projectors the API reads, running in this process for the block."""
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(serve_projection(name, settings, stop, options=FAST)) for name in names
    ]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


@dataclass
class Api:
    url: str
    http: httpx.AsyncClient


@contextlib.asynccontextmanager
async def api(settings: Settings, *, visibility_timeout: float = 30.0) -> AsyncIterator[Api]:
    """The API (``create_app`` with its own backends) on a free port, and a client of it."""
    app = create_app(
        with_keys(settings),
        options=Options(visibility_timeout=visibility_timeout, keepalive_seconds=1.0),
    )
    async with (
        ApiServer(app, port=0, grace=1.0) as server,
        httpx.AsyncClient(base_url=server.url, timeout=30.0) as http,
    ):
        yield Api(server.url, http)


@dataclass(frozen=True)
class Sse:
    event: str
    id: str | None
    data: Any


def parse_sse(lines: Iterator[str]) -> Iterator[Sse]:
    """SSE messages from the lines of a stream (comments and ``retry:`` skipped)."""
    event, event_id, data = "message", None, list[str]()
    for line in lines:
        if line == "":
            if data:
                yield Sse(event, event_id, json.loads("\n".join(data)))
            event, event_id, data = "message", None, []
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "id":
            event_id = value
        elif field == "data":
            data.append(value)


async def read_sse(
    http: httpx.AsyncClient,
    run_id: str,
    key: str,
    last_event_id: str | None = None,
    *,
    live: bool = False,
) -> list[Sse]:
    """Every message of the run's event stream, until the server closes it."""
    headers = auth(key)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    lines: list[str] = []
    url = f"/v1/runs/{run_id}/events" + ("?live=true" if live else "")
    async with http.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            lines.append(line)
    return list(parse_sse(iter([*lines, ""])))


async def run_status(http: httpx.AsyncClient, run_id: str, key: str = ALICE) -> dict[str, Any]:
    response = await http.get(f"/v1/runs/{run_id}", headers=auth(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_status(
    http: httpx.AsyncClient,
    run_id: str,
    status: str,
    timeout: float = 60.0,  # noqa: ASYNC109 - a deadline for polling
) -> dict[str, Any]:
    """The run's row once the run-status store shows ``status``."""
    seen: dict[str, Any] = {}

    async def reached() -> bool:
        seen.update(await run_status(http, run_id))
        assert seen["status"] == status, f"run {run_id} is {seen['status']}, not {status}"
        return True

    await assert_eventually(reached, timeout=timeout, interval=0.1)
    return seen
