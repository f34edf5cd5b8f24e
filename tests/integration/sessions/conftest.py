"""What the session tests on the real stack need: the four projectors the
Session API reads, running in the background, and a started ``LogBackend``."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote

import psycopg
import pytest_asyncio
import redis.asyncio as aioredis

from runwire.infra.topics import provision_topics
from runwire.projections.memory.projection import MemoryProjection, memory_projector
from runwire.projections.runs.projection import RunsProjection
from runwire.projections.runtime.consumer import Projector, ProjectorOptions
from runwire.projections.runtime.pg import open_pool
from runwire.projections.runtime.protocol import Projection
from runwire.projections.sessions.projection import SessionsProjection
from runwire.projections.transcripts.projection import TranscriptProjection
from runwire.projections.transcripts.redis_store import RedisTranscriptStore
from runwire.sessions.log_backend import LogBackend
from runwire.settings import Settings
from tests.conftest import _drop_topics

QUICK = ProjectorOptions(session_timeout_ms=6000, heartbeat_interval_ms=500, poll_timeout_ms=100)


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[dict[str, Projection]]:
    """The runs, sessions, transcripts and memory projectors, applying until the block ends."""
    pool = await open_pool(settings, max_size=6, name="test-projectors")
    client = aioredis.Redis.from_url(settings.redis_url)
    projections: dict[str, Projection] = {
        "runs": RunsProjection(pool, settings),
        "sessions": SessionsProjection(pool, settings),
        "memory": MemoryProjection(pool, settings),
        "transcripts": TranscriptProjection(
            RedisTranscriptStore(
                client, settings.redis_key_prefix, ttl_seconds=settings.transcript_ttl_seconds
            ),
            settings,
        ),
    }
    for p in projections.values():
        if hasattr(p, "prepare"):
            await p.prepare()
    projectors = [
        memory_projector(p, settings, options=QUICK)
        if name == "memory"
        else Projector(p, settings, options=QUICK)
        for name, p in projections.items()
    ]
    tasks: list[asyncio.Task[None]] = []
    try:
        for projector in projectors:
            await projector.start()
            tasks.append(asyncio.create_task(projector.run()))
        yield projections
    finally:
        for projector in projectors:
            await projector.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()
        await pool.close()


@contextlib.asynccontextmanager
async def another_stack(stack_settings: Settings) -> AsyncIterator[Settings]:
    """Settings for a second, empty deployment on the test stack (own topics, schema, keys),
    removed afterwards: what the ``settings`` fixture gives, once more in the same test."""
    tag = uuid.uuid4().hex[:10]
    schema = f"t_{tag}"
    separator = "&" if "?" in stack_settings.postgres_dsn else "?"
    other = stack_settings.model_copy(
        update={
            "topic_prefix": f"t{tag}.",
            "redis_key_prefix": f"t{tag}",
            "postgres_dsn": f"{stack_settings.postgres_dsn}{separator}"
            f"options={quote(f'-csearch_path={schema}')}",
        }
    )
    await provision_topics(other)
    try:
        yield other
    finally:
        await _drop_topics(other)
        async with await psycopg.AsyncConnection.connect(
            stack_settings.postgres_dsn, autocommit=True
        ) as conn:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        client = aioredis.Redis.from_url(other.redis_url)
        try:
            keys = [k async for k in client.scan_iter(match=f"{other.redis_key_prefix}:*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def projectors(settings: Settings) -> AsyncIterator[dict[str, Projection]]:
    async with serving(settings) as projections:
        yield projections


@pytest_asyncio.fixture(loop_scope="session")
async def log_backend(
    settings: Settings, projectors: dict[str, Projection]
) -> AsyncIterator[LogBackend]:
    async with LogBackend(settings) as backend:
        yield backend
