"""The store contract on Redis (apply.lua, begin.lua, switch.lua)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
import redis.asyncio as aioredis

from runwire.projections.transcripts.redis_store import RedisTranscriptStore
from runwire.projections.transcripts.store import TranscriptStore
from runwire.settings import Settings
from tests.contract.transcript_store import TranscriptStoreContract, commit, create


class TestRedisTranscriptStore(TranscriptStoreContract):
    @pytest_asyncio.fixture
    async def store(self, settings: Settings) -> AsyncIterator[RedisTranscriptStore]:
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            yield RedisTranscriptStore(client, settings.redis_key_prefix, ttl_seconds=3600)
        finally:
            await client.aclose()

    async def expire(self, store: TranscriptStore, generation: int, run_id: str) -> None:
        assert isinstance(store, RedisTranscriptStore)
        await store.client.delete(store.keys.generation(generation).body(run_id))

    async def test_a_body_write_sets_the_ttl_and_meta_never_expires(
        self, store: RedisTranscriptStore
    ) -> None:
        assert (await store.commit(commit([create("r1", 5)]))).ok
        keys = store.keys.generation(0)
        assert 3500 < await store.client.ttl(keys.body("r1")) <= 3600
        assert await store.client.ttl(keys.meta("r1")) == -1
        assert await store.client.ttl(keys.session("s1")) == -1
