"""Wiring of the transcript-cache projection: one place builds it from settings.

``open_projection`` is the catalog's opener (:mod:`runwire.projections.catalog`):
``runwire serve projector-transcripts`` and ``runwire projections status |
rebuild transcripts`` open the projection through it, on a Redis client of
its own, with the transcript TTL from ``Settings.transcript_ttl_seconds``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import redis.asyncio as aioredis

from runwire.projections.transcripts.projection import TranscriptProjection
from runwire.projections.transcripts.redis_store import RedisTranscriptStore
from runwire.settings import Settings


@contextlib.asynccontextmanager
async def open_projection(settings: Settings) -> AsyncIterator[TranscriptProjection]:
    """The projection on a Redis client of its own, closed on exit."""
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        store = RedisTranscriptStore(
            client, settings.redis_key_prefix, ttl_seconds=settings.transcript_ttl_seconds
        )
        yield TranscriptProjection(store, settings)
    finally:
        await client.aclose()
