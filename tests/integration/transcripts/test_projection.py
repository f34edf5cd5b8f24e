"""The transcript projection on Kafka + Redis equals the pure fold, and
replays / re-published events change nothing."""

from __future__ import annotations

import redis.asyncio as aioredis

from runwire.log import Position
from runwire.projections.transcripts.projection import TranscriptProjection
from runwire.projections.transcripts.reader import TranscriptCache
from runwire.projections.transcripts.store import Slot, checksum
from runwire.settings import Settings
from runwire.transcript.messages import ThinkingPart
from tests.integration.transcripts.conftest import publish, running, store_for, wait_caught_up
from tests.support.transcript_workload import by_run, reference_transcripts, workload


async def test_every_transcript_equals_the_pure_fold_and_duplicates_change_nothing(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    events = workload(21, runs=240, sessions=30)
    reference = reference_transcripts(events)
    store = store_for(redis_client, settings)
    positions = await publish(settings, events)
    async with (
        running(TranscriptProjection(store, settings), settings),
        TranscriptCache(settings, client=redis_client) as cache,
    ):
        # read-your-writes: the last event of each partition
        last: dict[int, Position] = {}
        for p in positions:
            last[p.partition] = max(last.get(p.partition, p), p, key=lambda q: q.offset)
        for position in last.values():
            await cache.wait_for(position, timeout=60)
        for run_id, expected in reference.items():
            assert await cache.get(run_id) == expected
        assert cache.misses == 0
        # thinking signatures and redacted bytes, byte for byte
        got = [
            (p.text, p.signature, p.redacted)
            for run_id in sorted(reference)
            for m in await cache.get(run_id)
            for p in m.parts
            if isinstance(p, ThinkingPart)
        ]
        want = [
            (p.text, p.signature, p.redacted)
            for run_id in sorted(reference)
            for m in reference[run_id]
            for p in m.parts
            if isinstance(p, ThinkingPart)
        ]
        assert got == want
        assert (None, None, bytes(range(256))) in got
        # sessions: runs in order of their first event
        session = events[0].session_id
        assert session is not None
        runs = [r for r, evs in by_run(events).items() if evs[0].session_id == session]
        assert await cache.session_runs(session) == runs
        assert await cache.get_session(session) == [m for r in runs for m in reference[r]]

        before = await store.dump(0)
        # Re-published identical events (same event_id, later offsets) change nothing.
        await publish(settings, events[::4])
        await wait_caught_up(store, settings)
        after = await store.dump(0)
        assert {k: v for k, v in after.items() if k != "pos"} == {
            k: v for k, v in before.items() if k != "pos"
        }
        assert after["pos"] != before["pos"]

    # A replay of the whole log over the live data (positions lost) changes nothing.
    await redis_client.delete(store.keys.generation(0).positions)
    async with running(TranscriptProjection(store, settings), settings) as projector:
        await wait_caught_up(store, settings)
        assert projector.stats.skipped + projector.stats.duplicates > 0
    assert checksum(await store.dump(0)) == checksum(after)
    assert await store.generation(Slot.LIVE) == 0
