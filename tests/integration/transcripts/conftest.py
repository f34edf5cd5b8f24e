"""Fixtures and helpers of the transcript-cache tests on the real stack."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest_asyncio
import redis.asyncio as aioredis

from runwire.contract.events import Event
from runwire.log import Position, Publisher
from runwire.projections.runtime.consumer import Projector, ProjectorOptions
from runwire.projections.runtime.lag import log_ends
from runwire.projections.transcripts.projection import TranscriptProjection
from runwire.projections.transcripts.redis_store import RedisTranscriptStore
from runwire.projections.transcripts.store import Slot
from runwire.settings import Settings
from tests.helpers import assert_eventually

FAST = ProjectorOptions(session_timeout_ms=6000, heartbeat_interval_ms=500, poll_timeout_ms=100)


@pytest_asyncio.fixture
async def redis_client(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def store_for(client: aioredis.Redis, settings: Settings) -> RedisTranscriptStore:
    return RedisTranscriptStore(
        client, settings.redis_key_prefix, ttl_seconds=settings.transcript_ttl_seconds
    )


async def publish(settings: Settings, events: Sequence[Event]) -> list[Position]:
    async with Publisher(settings) as publisher:
        positions: list[Position] = []
        for start in range(0, len(events), 2000):
            positions += await publisher.publish_many(events[start : start + 2000])
        return positions


@contextlib.asynccontextmanager
async def running(
    projection: TranscriptProjection, settings: Settings, **kwargs: Any
) -> AsyncIterator[Projector]:
    """A projector running in the background for the block."""
    async with Projector(projection, settings, options=FAST, **kwargs) as projector:
        task = asyncio.create_task(projector.run())
        try:
            yield projector
        finally:
            await projector.stop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def wait_caught_up(
    store: RedisTranscriptStore,
    settings: Settings,
    timeout: float = 60.0,  # noqa: ASYNC109 - a deadline for polling, not for one await
) -> dict[Any, int]:
    """Wait until the live generation's positions reach the log end of every partition."""
    ends = await log_ends(settings, (settings.run_events,))

    async def caught_up() -> bool:
        live = await store.generation(Slot.LIVE)
        assert live is not None
        stored = await store.positions(live, list(ends))
        behind = {tp: (stored[tp], end) for tp, end in ends.items() if stored[tp] < end}
        assert not behind, f"behind the log end: {behind}"
        return True

    await assert_eventually(caught_up, timeout=timeout, interval=0.1)
    return ends
