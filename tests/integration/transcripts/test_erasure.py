"""Erasure in the transcript cache: a ``session_deleted`` removes the session's
cached runs, whatever the order of the deletion and the run events, and neither
a replay, a rebuild nor the miss path brings them back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
import redis.asyncio as aioredis

from runwire.contract.events import Event, SessionDeleted, UserMessage
from runwire.errors import NotFoundError
from runwire.log import Position, Publisher
from runwire.projections.runs.projection import RunsProjection
from runwire.projections.runs.reader import RunStore
from runwire.projections.runtime.consumer import Projector
from runwire.projections.runtime.pg import open_pool
from runwire.projections.runtime.rebuild import rebuild
from runwire.projections.transcripts.projection import TranscriptProjection
from runwire.projections.transcripts.reader import TranscriptCache
from runwire.projections.transcripts.redis_store import RedisTranscriptStore
from runwire.projections.transcripts.store import Slot
from runwire.settings import Settings
from tests.integration.transcripts.conftest import (
    FAST,
    publish,
    running,
    store_for,
    wait_caught_up,
)
from tests.support.transcript_workload import by_run, reference_transcripts, workload


def _sessions(events: Sequence[Event]) -> dict[str, list[str]]:
    """Each session's run ids."""
    out: dict[str, list[str]] = {}
    for run_id, evs in by_run(events).items():
        assert evs[0].session_id is not None
        out.setdefault(evs[0].session_id, []).append(run_id)
    return out


async def _delete(publisher: Publisher, session_id: str) -> Position:
    return await publisher.publish(Event.create(SessionDeleted(), session_id=session_id))


async def _keys_of(
    client: aioredis.Redis, store: RedisTranscriptStore, generation: int, run_ids: Sequence[str]
) -> list[bytes]:
    keys = store.keys.generation(generation)
    names = [n for r in run_ids for n in (keys.meta(r), keys.body(r))]
    return [n.encode() for n in names if await client.exists(n)]


def _without_positions(dump: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in dump.items() if k != "pos"}


async def test_deletion_before_or_after_the_run_events_leaves_nothing_and_a_rebuild_agrees(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    events = workload(71, runs=60, sessions=6)
    reference = reference_transcripts(events)
    sessions = _sessions(events)
    early, late, kept = sorted(sessions)[:3]  # deleted after its runs / before its runs / kept
    late_events = [e for e in events if e.session_id == late]
    store = store_for(redis_client, settings)
    await publish(settings, [e for e in events if e.session_id != late])
    async with (
        running(TranscriptProjection(store, settings), settings),
        TranscriptCache(settings, client=redis_client) as cache,
        Publisher(settings) as publisher,
    ):
        await wait_caught_up(store, settings)
        assert await cache.session_runs(early) == sessions[early]
        # After: the runs are cached, then the session is deleted.
        await cache.wait_for(await _delete(publisher, early), timeout=60)
        assert await store.session_runs(0, early) == []
        assert await _keys_of(redis_client, store, 0, sessions[early]) == []
        # Before: the deletion is applied first, the run events come after.
        await cache.wait_for(await _delete(publisher, late), timeout=60)
        await publish(settings, late_events)
        # Late events of runs of the session erased first (another writer), one
        # of them naming no session (only the run's erasure says whose it is).
        for straggler in (
            Event.create(
                UserMessage(parts=["still there?"]), run_id=sessions[early][0], session_id=early
            ),
            Event.create(UserMessage(parts=["whose?"]), run_id=sessions[early][1]),
        ):
            await cache.wait_for(await publisher.publish(straggler), timeout=60)
        await wait_caught_up(store, settings)
        for session in (early, late):
            assert await store.session_runs(0, session) == []
            assert await _keys_of(redis_client, store, 0, sessions[session]) == []
            assert await store.deleted(0, [session, kept]) == {session}
            assert await cache.get_session(session) == []
        for run_id in sessions[kept]:
            assert await cache.get(run_id) == reference[run_id]
        assert cache.misses == 0
        settled = await store.dump(0)
        assert settled["deleted"] == sorted((early, late))
        assert settled["erased"] == sorted(sessions[early] + sessions[late])
        # A duplicate deletion changes nothing.
        await cache.wait_for(await _delete(publisher, early), timeout=60)
        assert _without_positions(await store.dump(0)) == _without_positions(settled)

    # A replay of both topics over the live data (positions lost) changes nothing.
    await redis_client.delete(store.keys.generation(0).positions)
    async with running(TranscriptProjection(store, settings), settings) as projector:
        await wait_caught_up(store, settings)
        async with Publisher(settings) as publisher:
            # Past the deletions again: a session event published after them.
            marker = await _delete(publisher, "marker-session")
        async with TranscriptCache(settings, client=redis_client) as cache:
            await cache.wait_for(marker, timeout=60)
        assert projector.stats.skipped > 0
    replayed = _without_positions(await store.dump(0))
    assert replayed == {
        **_without_positions(settled),
        "deleted": sorted((early, late, "marker-session")),
    }

    # A rebuild into a new generation honours the deletions too.
    report = await rebuild(TranscriptProjection(store, settings), settings)
    assert report.generation == 1
    assert await store.generation(Slot.LIVE) == 1
    assert _without_positions(await store.dump(1)) == replayed
    async with TranscriptCache(settings, client=redis_client) as cache:
        assert await cache.get_session(kept) == [m for r in sessions[kept] for m in reference[r]]
        for session in (early, late):
            assert await store.session_runs(1, session) == []


async def test_the_miss_path_does_not_refill_a_run_of_a_deleted_session(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    """The run-status store still locates the run (its projector is behind the
    deletion); the miss path reads it from the log, finds it erased, writes nothing."""
    events = workload(72, runs=12, sessions=3)
    reference = reference_transcripts(events)
    sessions = _sessions(events)
    doomed, kept = sorted(sessions)[:2]
    store = store_for(redis_client, settings)
    positions = await publish(settings, events)
    pool = await open_pool(settings)
    try:
        runs = RunsProjection(pool, settings)
        await runs.prepare()
        async with Projector(runs, settings, options=FAST) as runs_projector:
            task = asyncio.create_task(runs_projector.run())
            reader = RunStore(pool, settings)
            for p in positions[-20:]:
                await reader.wait_for(p, timeout=60)
            await runs_projector.stop()
            await task
        for run_id in sessions[doomed]:
            assert (await reader.get(run_id)).session_id == doomed  # still located
        async with (
            running(TranscriptProjection(store, settings), settings),
            TranscriptCache(settings, client=redis_client) as cache,
            Publisher(settings) as publisher,
        ):
            await wait_caught_up(store, settings)
            await cache.wait_for(await _delete(publisher, doomed), timeout=60)
            # Everything of the kept session expires (a TTL, a flush of bodies).
            keys = store.keys.generation(0)
            await redis_client.delete(*[keys.body(r) for r in sessions[kept]])
            for run_id in sessions[doomed]:
                with pytest.raises(NotFoundError):
                    await cache.get(run_id)
            assert await _keys_of(redis_client, store, 0, sessions[doomed]) == []
            assert cache.misses == 0
            for run_id in sessions[kept]:
                assert await cache.get(run_id) == reference[run_id]
            assert cache.misses == len(sessions[kept])  # the kept ones are refilled
            assert await store.session_runs(0, doomed) == []
            # Nor does a session read ask the run-status store, which still lists the runs.
            assert await cache.session_runs(doomed) == []
            assert await cache.get_session(doomed) == []
    finally:
        await pool.close()
