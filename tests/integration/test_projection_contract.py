"""The Projection contract against every read model on its real store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
import redis.asyncio as aioredis
from psycopg.rows import dict_row

from runwire.contract.events import (
    Event,
)
from runwire.contract.routing import record_key
from runwire.log.records import TopicPartition
from runwire.projections.checkpoints.projection import CheckpointsProjection
from runwire.projections.memory.projection import MemoryProjection
from runwire.projections.runs.projection import RunsProjection
from runwire.projections.runtime.pg import Pool
from runwire.projections.sessions.projection import SessionsProjection
from runwire.projections.transcripts.projection import TranscriptProjection
from runwire.projections.transcripts.redis_store import RedisTranscriptStore
from runwire.settings import Settings
from tests.contract.projections import (
    Harness,
    ProjectionContract,
    checkpoint_scenario,
    memory_scenario,
    run_scenario,
    session_scenario,
)


async def rows(pool: Pool, query: str) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(query.encode())
        return await cur.fetchall()


def run_event(payload: Any, **kw: Any) -> Event:
    return Event.create(payload, run_id="r1", session_id="s1", user_id="u1", **kw)


class TestRunStatusContract(ProjectionContract):
    @pytest_asyncio.fixture(loop_scope="session")
    async def harness(self, pool: Pool, settings: Settings) -> Harness:
        projection = RunsProjection(pool, settings)
        await projection.prepare()
        good, bad = run_scenario()

        async def state() -> Any:
            return await rows(pool, "SELECT * FROM run_status ORDER BY run_id")

        return Harness(
            projection=projection,
            tp=TopicPartition(settings.run_events, 3),
            good=good,
            bad=bad,
            key=lambda e: (e.run_id or "").encode(),
            state=state,
        )


def session_event(payload: Any, **kw: Any) -> Event:
    return Event.create(payload, session_id="s1", **kw)


class TestSessionIndexContract(ProjectionContract):
    @pytest_asyncio.fixture(loop_scope="session")
    async def harness(self, pool: Pool, settings: Settings) -> Harness:
        projection = SessionsProjection(pool, settings)
        await projection.prepare()
        good, bad = session_scenario()

        async def state() -> Any:
            return (
                await rows(pool, "SELECT * FROM session_index ORDER BY session_id"),
                await rows(pool, "SELECT * FROM session_tombstones ORDER BY session_id"),
            )

        return Harness(
            projection=projection,
            tp=TopicPartition(settings.session_events, 1),
            good=good,
            bad=bad,
            key=lambda e: (e.session_id or "").encode(),
            state=state,
        )


class TestTranscriptCacheContract(ProjectionContract):
    @pytest_asyncio.fixture(loop_scope="session")
    async def redis_client(self, settings: Settings) -> AsyncIterator[aioredis.Redis]:
        client = aioredis.Redis.from_url(settings.redis_url)
        yield client
        await client.aclose()

    @pytest_asyncio.fixture(loop_scope="session")
    async def harness(self, redis_client: aioredis.Redis, settings: Settings) -> Harness:
        store = RedisTranscriptStore(redis_client, settings.redis_key_prefix)
        projection = TranscriptProjection(store, settings)
        good, bad = run_scenario()

        async def state() -> Any:
            dump = await store.dump(0)
            dump.pop("pos", None)
            return dump

        return Harness(
            projection=projection,
            tp=TopicPartition(settings.run_events, 3),
            good=good,
            bad=bad,
            key=record_key,
            state=state,
        )


class TestMemoryContract(ProjectionContract):
    @pytest_asyncio.fixture(loop_scope="session")
    async def harness(self, pool: Pool, settings: Settings) -> Harness:
        projection = MemoryProjection(pool, settings)
        await projection.prepare()
        good, bad = memory_scenario()

        async def state() -> Any:
            return (
                await rows(pool, "SELECT * FROM memory_entries ORDER BY scope, owner, key"),
                await rows(pool, "SELECT * FROM memory_session_tombstones ORDER BY 1"),
            )

        return Harness(
            projection=projection,
            tp=TopicPartition(settings.memory, 0),
            good=good,
            bad=bad,
            key=record_key,
            state=state,
        )


class TestCheckpointsContract(ProjectionContract):
    @pytest_asyncio.fixture(loop_scope="session")
    async def harness(self, pool: Pool, settings: Settings) -> Harness:
        projection = CheckpointsProjection(pool, settings)
        await projection.prepare()
        good, bad = checkpoint_scenario()

        async def state() -> Any:
            return [
                await rows(pool, "SELECT * FROM checkpoint_index ORDER BY checkpoint_id"),
                await rows(pool, "SELECT * FROM checkpoint_values ORDER BY version"),
                await rows(pool, "SELECT * FROM checkpoint_pending_writes ORDER BY checkpoint_id"),
            ]

        return Harness(
            projection=projection,
            tp=TopicPartition(settings.checkpoints, 2),
            good=good,
            bad=bad,
            key=record_key,
            state=state,
        )
