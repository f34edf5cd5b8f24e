"""ApiServer: uvicorn in this event loop on a loopback port, on the in-memory twins."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from runwire.contract.events import Event, RunStarted
from runwire.errors import RunwireError
from runwire.projections.runs.fold import Run
from runwire.services.api.server import ApiServer
from tests.unit.api_twins import ALICE, Twins, auth, make_run, twin_app


class EndlessTwins(Twins):
    """A run that never ends: one event, then nothing."""

    async def events_of(self, run: Run) -> AsyncIterator[Event]:
        yield Event.create(RunStarted(), run_id=run.run_id)
        await asyncio.Event().wait()


async def test_stopping_ends_open_streams_at_once_and_closes_the_backends() -> None:
    twins = EndlessTwins()
    twins.add(make_run("r-1", "alice"))
    lines: list[str] = []
    server = ApiServer(twin_app(twins), port=0, grace=30.0)
    async with server:
        assert server.url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=server.url) as http:
            health = await http.get("/healthz")

            streaming = asyncio.Event()

            async def follow() -> None:
                async with http.stream("GET", "/v1/runs/r-1/events", headers=auth(ALICE)) as r:
                    async for line in r.aiter_lines():
                        lines.append(line)
                        if line == "event: run_started":
                            streaming.set()

            reader = asyncio.create_task(follow())
            await asyncio.wait_for(streaming.wait(), 5)
            # Waiting on the server and giving up the wait does not stop it.
            waiting = asyncio.create_task(server.wait())
            await asyncio.sleep(0.01)
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiting
            assert (await http.get("/healthz")).status_code == 200
            started = time.monotonic()
            await server.stop()
            took = time.monotonic() - started
            await asyncio.wait_for(reader, 5)
    await server.stop()  # idempotent
    assert health.status_code == 200
    assert took < 5.0  # not the 30 s grace: the stream ended itself
    assert ": server closing; reconnect with Last-Event-ID" in lines
    assert "event: end" not in lines  # the run did not end; the client should reconnect
    assert not any(line.startswith("event: error") for line in lines)
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{server.url}/healthz")


async def test_a_taken_port_is_a_clear_error() -> None:
    async with ApiServer(twin_app(Twins()), port=0) as first:
        with pytest.raises(RunwireError, match=f"cannot listen on 127.0.0.1:{first.port}"):
            ApiServer(twin_app(Twins()), port=first.port)


async def test_accepted_connections_have_tcp_nodelay() -> None:
    # Without TCP_NODELAY a kept-alive connection waits for the delayed ACK (~40 ms)
    # on each response after the first.
    async with (
        ApiServer(twin_app(Twins()), port=0) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        for _ in range(3):
            assert (await http.get("/healthz")).status_code == 200
        connections = server._server.server_state.connections
        sockets = [c.transport.get_extra_info("socket") for c in connections]
        assert len(sockets) == 1  # the three requests shared one kept-alive connection
        assert sockets[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
