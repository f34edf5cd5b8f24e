"""Writes plan on the transcript cache's one read, yet an end the cache does not
know (a cache built before it recorded ends) is still refused: the session
index's check comes first in a backend that has not seen the session open."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from runwire.projections.transcripts.keys import Keyspace
from runwire.sessions import AsyncSession
from runwire.sessions.errors import SessionEndedError
from runwire.sessions.log_backend import LogBackend
from runwire.settings import Settings


async def test_an_end_only_the_session_index_knows_is_refused(
    settings: Settings, log_backend: LogBackend
) -> None:
    async with AsyncSession(user_id="alice", backend=log_backend) as first:
        await first.add_message("user", "hi")
        await first.end("done")
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        ended = Keyspace(settings.redis_key_prefix).generation(await log_backend.view.live()).ended
        assert await client.srem(ended, first.session_id) == 1  # as a cache built before
    finally:
        await client.aclose()
    async with (
        LogBackend(settings) as fresh,
        AsyncSession(first.session_id, user_id="alice", backend=fresh) as again,
    ):
        with pytest.raises(SessionEndedError):
            await again.add_message("user", "more")
