"""Missing transcripts (TTL expired, Redis flushed) come back from the log on demand."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from runwire.projections.runs.projection import RunsProjection
from runwire.projections.runs.reader import RunStore
from runwire.projections.runtime.consumer import Projector
from runwire.projections.runtime.pg import open_pool
from runwire.projections.transcripts.projection import TranscriptProjection
from runwire.projections.transcripts.reader import TranscriptCache
from runwire.settings import Settings
from tests.integration.transcripts.conftest import (
    FAST,
    publish,
    running,
    store_for,
    wait_caught_up,
)
from tests.support.transcript_workload import reference_transcripts, workload


async def test_expired_transcripts_are_rebuilt_from_the_log_and_written_back(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    settings = settings.model_copy(update={"transcript_ttl_seconds": 1})
    events = workload(31, runs=60, sessions=8)
    reference = reference_transcripts(events)
    store = store_for(redis_client, settings)
    await publish(settings, events)
    async with running(TranscriptProjection(store, settings), settings):
        await wait_caught_up(store, settings)
    keys = store.keys.generation(0)
    run_ids = sorted(reference)
    assert 0 < await redis_client.ttl(keys.body(run_ids[0])) <= 1
    await asyncio.sleep(1.3)
    assert await store.messages(0, run_ids) == {}  # every body expired, meta kept
    assert all(h.meta is not None for h in (await store.heads(0, run_ids)).values())
    async with TranscriptCache(settings, client=redis_client) as cache:
        for run_id in run_ids:
            assert await cache.get(run_id) == reference[run_id]
        assert cache.misses == len(run_ids)
        assert 0 < await redis_client.ttl(keys.body(run_ids[-1])) <= 1  # written back, TTL set
        assert await cache.get(run_ids[-1]) == reference[run_ids[-1]]
        assert cache.misses == len(run_ids)  # a hit this time


async def test_after_a_flush_transcripts_are_located_through_the_run_status_store(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    events = workload(32, runs=80, sessions=10)
    reference = reference_transcripts(events)
    store = store_for(redis_client, settings)
    positions = await publish(settings, events)
    pool = await open_pool(settings)
    try:
        runs = RunsProjection(pool, settings)
        await runs.prepare()
        async with (
            Projector(runs, settings, options=FAST) as runs_projector,
            running(TranscriptProjection(store, settings), settings),
        ):
            runs_task = asyncio.create_task(runs_projector.run())
            await wait_caught_up(store, settings)
            reader = RunStore(pool, settings)
            for p in positions[-50:]:
                await reader.wait_for(p, timeout=60)
            await runs_projector.stop()
            await runs_task
        before = await store.dump(0)
        # FLUSHDB of this test's keyspace (the test Redis is shared with other sessions).
        doomed = [k async for k in redis_client.scan_iter(match=f"{settings.redis_key_prefix}:*")]
        await redis_client.delete(*doomed)
        async with TranscriptCache(settings, client=redis_client) as cache:
            for run_id, expected in reference.items():
                assert await cache.get(run_id) == expected
            assert cache.misses == len(reference)
            session = events[0].session_id
            assert session is not None
            in_session = [r for r in reference if r in await cache.session_runs(session)]
            assert in_session
        # The projector finds its positions gone, replays the log over the refilled
        # runs, and ends exactly where it was before the flush.
        async with running(TranscriptProjection(store, settings), settings):
            await wait_caught_up(store, settings)
        assert await store.dump(0) == before
    finally:
        await pool.close()
