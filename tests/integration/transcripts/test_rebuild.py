"""A rebuild while writes continue ends identical to a clean build, and
readers move to it atomically."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from runwire.log import Publisher
from runwire.projections.runtime.rebuild import rebuild
from runwire.projections.transcripts.projection import TranscriptProjection
from runwire.projections.transcripts.reader import TranscriptCache
from runwire.projections.transcripts.store import Slot, checksum
from runwire.settings import Settings
from tests.contract.transcript_store import dumped_transcripts
from tests.integration.transcripts.conftest import publish, running, store_for, wait_caught_up
from tests.support.transcript_workload import reference_transcripts, workload


async def test_a_rebuild_during_writes_switches_readers_and_equals_a_clean_build(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    events = workload(51, runs=160, sessions=20)
    half = len(events) // 2
    store = store_for(redis_client, settings)
    await publish(settings, events[:half])
    live = TranscriptProjection(store, settings)
    async with (
        running(live, settings),
        TranscriptCache(settings, client=redis_client) as cache,
    ):
        await wait_caught_up(store, settings)
        async with Publisher(settings) as publisher:

            async def more() -> None:
                for start in range(half, len(events), 50):
                    await publisher.publish_many(events[start : start + 50])
                    await asyncio.sleep(0.05)

            writing = asyncio.create_task(more())
            seen: list[int] = []
            report = await rebuild(live, settings, on_progress=lambda p: seen.append(p.done))
            await writing
        assert report.generation == 1
        assert seen
        assert report.records > half  # it also read events written while it ran
        assert await store.generation(Slot.LIVE) == 1
        assert await store.generation(Slot.BUILDING) is None
        assert await store.dump(0) == {}  # the old generation is dropped
        # The live projector went on in the new generation.
        await wait_caught_up(store, settings)
        reference = reference_transcripts(events)
        for run_id in list(reference)[:40]:
            assert await cache.get(run_id) == reference[run_id]
        assert cache.misses == 0
    rebuilt = await store.dump(1)
    clean_settings = settings.model_copy(
        update={"redis_key_prefix": settings.redis_key_prefix + "c"}
    )
    clean = store_for(redis_client, clean_settings)
    async with running(
        TranscriptProjection(clean, clean_settings), clean_settings, assignment="all"
    ):
        await wait_caught_up(clean, clean_settings)
    assert checksum(rebuilt) == checksum(await clean.dump(0))
    assert dumped_transcripts(rebuilt) == reference
