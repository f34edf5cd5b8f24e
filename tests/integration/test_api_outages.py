"""The HTTP API when a backend is down: 503 with Retry-After within its backend timeout.

Each outage is of this test's own connection only: the API reaches Postgres or
Redis through a :class:`~tests.faultproxy.FaultProxy` the test cuts, and the
Kafka outage is a write to this test's run-events topic, deleted under the
API. The shared stack never goes down. Each request is bounded by the
client's timeout: before the fix these hung 30 s (Postgres pool), answered
500 (Redis) or hung over 40 s (Kafka).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from aiokafka.admin import AIOKafkaAdminClient

from runwire.infra.topics import provision_topics
from runwire.services.api.app import create_app
from runwire.services.api.backends import Options
from runwire.services.api.server import ApiServer
from runwire.settings import Settings
from tests.faultproxy import FaultProxy
from tests.helpers import assert_eventually
from tests.integration.api_support import ALICE, auth, projectors, with_keys

BACKEND_TIMEOUT = 2.0
CLIENT_TIMEOUT = 15.0  # well under the hangs this guards against, well over the 2 s bound


@contextlib.asynccontextmanager
async def api_on(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    options = Options(visibility_timeout=10.0, backend_timeout=BACKEND_TIMEOUT)
    app = create_app(with_keys(settings), options=options)
    async with (
        ApiServer(app, port=0, grace=1.0) as server,
        httpx.AsyncClient(base_url=server.url, timeout=CLIENT_TIMEOUT) as http,
    ):
        yield http


def assert_unavailable(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["error"] == "unavailable"


async def test_postgres_down_is_503_at_once_and_the_api_recovers(settings: Settings) -> None:
    async with FaultProxy.to(settings.postgres_dsn) as proxy:
        via = settings.model_copy(update={"postgres_dsn": proxy.url(settings.postgres_dsn)})
        async with api_on(via) as http:
            assert (await http.get("/v1/sessions", headers=auth(ALICE))).status_code == 200
            proxy.cut()
            answers = [
                await http.get("/v1/sessions", headers=auth(ALICE)),
                await http.get("/v1/runs/r-1", headers=auth(ALICE)),
                await http.post("/v1/runs/r-1/cancel", headers=auth(ALICE)),
                await http.get("/v1/sessions", headers=auth(ALICE)),  # no connection left
            ]
            health = await http.get("/healthz")
            proxy.restore()

            async def recovered() -> bool:
                answer = await http.get("/v1/sessions", headers=auth(ALICE))
                assert answer.status_code == 200, answer.text
                return True

            await assert_eventually(recovered, timeout=30.0)
    for answer in answers:
        assert_unavailable(answer)
    assert "25432" not in "".join(a.text for a in answers)  # no host or port told to callers
    assert health.status_code == 503
    assert health.headers["retry-after"] == "1"
    assert proxy.refused > 0  # the API did try to reconnect, and met the outage


async def test_redis_down_is_503(settings: Settings) -> None:
    async with FaultProxy.to(settings.redis_url) as proxy:
        via = settings.model_copy(update={"redis_url": proxy.url(settings.redis_url)})
        async with projectors(settings, ("runs", "sessions")), api_on(via) as http:
            started = await http.post("/v1/runs", json={"prompt": "hi"}, headers=auth(ALICE))
            assert started.status_code == 202, started.text
            assert started.json()["visible"] is True
            run_id = started.json()["run_id"]
            proxy.cut()
            transcript = await http.get(f"/v1/runs/{run_id}/transcript", headers=auth(ALICE))
            run = await http.get(f"/v1/runs/{run_id}", headers=auth(ALICE))
    assert_unavailable(transcript)
    assert run.status_code == 200, run.text  # only what needs Redis is unavailable


async def test_a_kafka_write_that_cannot_complete_is_503_within_the_backend_timeout(
    settings: Settings,
) -> None:
    async with projectors(settings, ("runs", "sessions")), api_on(settings) as http:
        started = await http.post("/v1/runs", json={"prompt": "hi"}, headers=auth(ALICE))
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
        await admin.start()
        try:
            await admin.delete_topics([settings.run_events])

            # The controller answers once the deletion is committed; the broker
            # applies it a moment later and until then still takes writes.
            async def gone() -> bool:
                return settings.run_events not in await admin.list_topics()

            await assert_eventually(gone, timeout=30.0)
        finally:
            await admin.close()
        canceled = await http.post(f"/v1/runs/{run_id}/cancel", headers=auth(ALICE))
        # Back, so the API's publisher delivers what it holds when it stops, at once.
        await provision_topics(settings)
    assert_unavailable(canceled)
    assert canceled.json()["message"].endswith(
        f"the log (Kafka) did not answer (cancel) within {BACKEND_TIMEOUT:g} s"
    )
