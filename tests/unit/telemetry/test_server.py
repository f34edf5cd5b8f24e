"""``/metrics``, ``/healthz`` and ``/readyz``: what they answer for the probes a process holds."""

from __future__ import annotations

import asyncio
import json

from runwire.telemetry import health
from runwire.telemetry.metrics import LAG
from runwire.telemetry.server import MetricsServer


async def _get(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


async def test_readiness_follows_every_probe_and_metrics_carry_the_lag() -> None:
    catching_up = True

    async def lag() -> dict[tuple[str, str, int], int]:
        return {("group-a", "runs", 0): 5, ("group-a", "runs", 1): 0}

    def ready() -> str | None:
        return "catching up" if catching_up else None

    async with MetricsServer("127.0.0.1", 0) as server:
        status, body = await _get(server.port, "/readyz")
        assert status == 503, body  # nothing registered yet: not ready
        probe = health.register(health.Probe("svc-a", ready, lag=lag))
        try:
            status, body = await _get(server.port, "/readyz")
            assert status == 503
            assert json.loads(body)["failing"] == {"svc-a": "catching up"}
            assert (await _get(server.port, "/healthz"))[0] == 200
            catching_up = False
            status, body = await _get(server.port, "/readyz")
            assert (status, json.loads(body)["status"]) == (200, "ok")

            status, text = await _get(server.port, "/metrics")
            assert status == 200
            assert 'runwire_consumer_lag{group="group-a",partition="0",topic="runs"} 5.0' in text
            assert "runwire_records_consumed_total" in text or "runwire_records_consumed" in text
        finally:
            health.unregister(probe)
        # Gone from this process: its lag is no longer reported.
        await _get(server.port, "/metrics")
        assert ("group-a", "runs", "0") not in {
            tuple(s.labels.values()) for m in LAG.collect() for s in m.samples
        }
        assert (await _get(server.port, "/nope"))[0] == 404
        assert (await _get(server.port, "/metrics", "POST"))[0] == 405


async def test_a_dead_loop_is_not_alive_and_a_failing_probe_says_why() -> None:
    def broken() -> str | None:
        raise RuntimeError("boom")

    probe = health.register(health.Probe("svc-b", lambda: None, alive=lambda: "loop ended"))
    other = health.register(health.Probe("svc-c", broken))
    try:
        async with MetricsServer("127.0.0.1", 0) as server:
            status, body = await _get(server.port, "/healthz")
            assert status == 503
            assert json.loads(body)["failing"]["svc-b"] == "loop ended"
            status, body = await _get(server.port, "/readyz")
            assert status == 503
            assert "boom" in json.loads(body)["failing"]["svc-c"]
    finally:
        health.unregister(probe)
        health.unregister(other)


async def test_a_client_that_never_finishes_its_request_does_not_block_others() -> None:
    probe = health.register(health.Probe("svc-d", lambda: None))
    try:
        async with MetricsServer("127.0.0.1", 0) as server:
            _, stalled = await asyncio.open_connection("127.0.0.1", server.port)
            stalled.write(b"GET /metr")  # and nothing more
            status, _ = await asyncio.wait_for(_get(server.port, "/readyz"), 5)
            assert status == 200
            stalled.close()
    finally:
        health.unregister(probe)
