"""Slow clients on a real server: a connection that never delivers a whole request
head is let go within the API's bound for slow clients (``Options.body_timeout``),
while requests, kept-alive connections and event streams that outlast it go on."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest

from runwire.services.api.app import create_app
from runwire.services.api.backends import Options
from runwire.services.api.server import ApiServer
from runwire.settings import Settings
from tests.integration.api_support import ALICE, Api, auth, projectors, with_keys

pytestmark = pytest.mark.integration

BOUND = 1.5  # Options.body_timeout of the API under test, in seconds
SLACK = 2.0  # what a loaded machine may add to it


@contextlib.asynccontextmanager
async def slow_client_api(settings: Settings) -> AsyncIterator[Api]:
    options = Options(visibility_timeout=10.0, keepalive_seconds=0.3, body_timeout=BOUND)
    async with (
        ApiServer(create_app(with_keys(settings), options=options), port=0, grace=1.0) as server,
        httpx.AsyncClient(base_url=server.url, timeout=30.0) as http,
    ):
        yield Api(server.url, http)


async def _held_for(reader: asyncio.StreamReader, began: float) -> float | str:
    """Seconds from ``began`` until the server closed the connection (what it sent
    first is read and dropped), or a string saying it still held it."""
    try:
        while await asyncio.wait_for(reader.read(1000), BOUND + SLACK + 3.0):
            pass
    except TimeoutError:
        return f"still open {time.monotonic() - began:.1f} s after it began to wait"
    except ConnectionResetError:
        pass
    return time.monotonic() - began


@pytest.mark.timeout(90)
async def test_a_connection_without_a_whole_head_is_let_go_and_nothing_else_is(
    settings: Settings,
) -> None:
    async with projectors(settings, ("runs", "sessions")), slow_client_api(settings) as rw:
        started = await rw.http.post("/v1/runs", json={"prompt": "hi"}, headers=auth(ALICE))
        assert started.status_code == 202, started.text
        assert started.json()["visible"] is True, started.text
        run_id = started.json()["run_id"]
        where = urlsplit(rw.url)
        assert where.hostname is not None
        assert where.port is not None

        async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await asyncio.open_connection(where.hostname, where.port)

        # The run has no orchestrator: its event stream stays open, keepalives only.
        stream_lines: list[str] = []

        async def follow() -> None:
            async with rw.http.stream("GET", f"/v1/runs/{run_id}/events", headers=auth(ALICE)) as r:
                async for line in r.aiter_lines():
                    stream_lines.append(line)

        streaming = asyncio.create_task(follow())
        stream_began = time.monotonic()

        idle_r, idle_w = await connect()  # sends nothing at all
        part_r, part_w = await connect()  # sends part of a head, then stops
        part_w.write(b"GET /v1/me HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        # Kept alive after an answer, then part of the next head.
        kept_r, kept_w = await connect()
        kept_w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first_answer = await asyncio.wait_for(kept_r.readuntil(b"\r\n\r\n"), 10)
        kept_w.write(b"GET /healthz HTTP/1.1\r\nHo")
        began = time.monotonic()

        # A client that sends its head in pieces, whole within the bound, is answered.
        slow_r, slow_w = await connect()
        for piece in (b"GET /v1/me HTTP/1.1\r\n", b"Host: x\r\n", b"Authorization: Bearer "):
            slow_w.write(piece)
            await asyncio.sleep(BOUND / 6)
        slow_w.write(ALICE.encode() + b"\r\n\r\n")
        slow_answer = await asyncio.wait_for(slow_r.readuntil(b"\r\n\r\n"), 10)

        held = dict(
            zip(
                ("idle", "partial", "kept alive, then partial"),
                await asyncio.gather(
                    _held_for(idle_r, began), _held_for(part_r, began), _held_for(kept_r, began)
                ),
                strict=True,
            )
        )
        # Meanwhile the server answers others, and the stream, open for twice the
        # bound, is still open, its keepalives coming.
        me = await rw.http.get("/v1/me", headers=auth(ALICE))
        await asyncio.sleep(max(0.0, 2 * BOUND - (time.monotonic() - stream_began)))
        stream_open = not streaming.done()
        streaming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await streaming
        for writer in (idle_w, part_w, kept_w, slow_w):
            writer.close()

    assert first_answer.startswith(b"HTTP/1.1 200"), first_answer
    assert slow_answer.startswith(b"HTTP/1.1 200"), slow_answer
    for name, seconds in held.items():
        assert not isinstance(seconds, str), (name, seconds)
        assert seconds < BOUND + SLACK, (name, seconds)
    assert me.status_code == 200, me.text
    assert stream_open, stream_lines
    assert stream_lines.count(": keepalive") >= 3, stream_lines


@pytest.mark.timeout(60)
async def test_the_head_bound_is_the_apps_body_timeout_unless_given(settings: Settings) -> None:
    """``ApiServer`` takes the bound from the app it serves; a given one wins."""
    outcomes: dict[str, float | str] = {}
    for name, head_timeout in (("the app's", None), ("given", 1.5)):
        app = create_app(with_keys(settings), options=Options(body_timeout=0.5))
        async with ApiServer(app, port=0, grace=1.0, head_timeout=head_timeout) as server:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            outcomes[name] = await _held_for(reader, time.monotonic())
            writer.close()
    assert isinstance(outcomes["the app's"], float), outcomes
    assert isinstance(outcomes["given"], float), outcomes
    assert 0.4 < outcomes["the app's"] < 0.5 + SLACK, outcomes
    assert 1.4 < outcomes["given"] < 1.5 + SLACK, outcomes
