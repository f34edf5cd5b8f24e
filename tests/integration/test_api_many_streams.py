"""Many event streams held open by one key, never read: the API keeps serving others,
and every stream is let go (no log subscription, no gauge left) once its client leaves."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest

from runwire.settings import Settings
from tests.helpers import assert_eventually
from tests.integration.api_support import ALICE, BOB, api, auth, projectors

pytestmark = pytest.mark.integration

STREAMS = 60


def open_streams(metrics: str) -> float:
    found = re.search(r"^runwire_api_open_streams (\S+)$", metrics, re.M)
    assert found, metrics[:2000]
    return float(found.group(1))


@pytest.mark.timeout(180)
async def test_many_idle_streams_neither_starve_others_nor_leak(settings: Settings) -> None:
    async with projectors(settings, ("runs", "sessions")), api(settings) as rw:
        started = await rw.http.post("/v1/runs", json={"prompt": "hi"}, headers=auth(ALICE))
        run_id = started.json()["run_id"]  # no orchestrator: the run never ends
        limits = httpx.Limits(max_connections=STREAMS + 5)
        async with httpx.AsyncClient(base_url=rw.url, timeout=30.0, limits=limits) as hog:
            streams = [
                await hog.send(
                    hog.build_request("GET", f"/v1/runs/{run_id}/events", headers=auth(ALICE)),
                    stream=True,
                )
                for _ in range(STREAMS)
            ]
            assert all(s.status_code == 200 for s in streams)
            began = time.monotonic()
            other = await rw.http.post("/v1/runs", json={"prompt": "bob"}, headers=auth(BOB))
            took = time.monotonic() - began
            metrics = (await rw.http.get("/metrics")).text
            assert open_streams(metrics) == STREAMS, metrics
            await asyncio.gather(*(s.aclose() for s in streams))

        async def all_let_go() -> bool:
            assert open_streams((await rw.http.get("/metrics")).text) == 0
            return True

        await assert_eventually(all_let_go, timeout=20)
    assert other.status_code == 202, other.text
    assert took < 10, took
