"""What the session tests on the real stack need: the four projectors the
Session API reads, running in the background, and a started ``LogBackend``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest_asyncio
import redis.asyncio as aioredis

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
