"""Clears and ends in the transcript projection on the in-memory twin: whatever
the interleaving of the two topics, and after a replay or a rebuild, each
session's clear point is its last obeyed ``session_cleared``, and the sessions
ended are those with an obeyed ``session_ended`` that were not deleted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runwire.contract.events import (
    Event,
    SessionCleared,
    SessionCreated,
    SessionDeleted,
    SessionEnded,
)
from runwire.log.records import SourceRecord
from runwire.projections.transcripts.inmem import InMemoryTranscriptStore
from runwire.projections.transcripts.projection import TranscriptProjection
from runwire.projections.transcripts.store import Slot
from runwire.settings import Settings
from tests.support.transcript_workload import workload
from tests.unit.transcripts.memory_log import MemoryLog
from tests.unit.transcripts.test_erasure import TwoTopics, session_record

T0 = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


@pytest.fixture
def settings() -> Settings:
    return Settings(topic_prefix="unit.", redis_key_prefix="unit")


def clear_log(settings: Settings, sessions: list[str]) -> list[SourceRecord]:
    """Session 0 cleared twice; session 1 cleared once, then by a record keyed
    wrongly (not obeyed), and ended by one keyed wrongly; session 2 cleared,
    ended, then deleted; session 3 ended twice; the rest never."""
    s0, s1, s2, s3 = sessions[:4]
    events = [Event.create(SessionCreated(), session_id=s) for s in sessions]
    records = [session_record(settings, i, e) for i, e in enumerate(events)]

    def add(event: Event, key: str | None = None) -> None:
        records.append(session_record(settings, len(records), event, key))

    add(Event.create(SessionCleared(), session_id=s0, occurred_at=T0))
    add(Event.create(SessionCleared(), session_id=s1, occurred_at=T0 + timedelta(seconds=1)))
    add(Event.create(SessionCleared(), session_id=s0, occurred_at=T0 + timedelta(seconds=2)))
    add(Event.create(SessionCleared(), session_id=s1, occurred_at=T0 + timedelta(seconds=3)), s0)
    add(Event.create(SessionCleared(), session_id=s2, occurred_at=T0))
    add(Event.create(SessionEnded(), session_id=s1), s0)
    add(Event.create(SessionEnded(), session_id=s3))
    add(Event.create(SessionEnded(), session_id=s2))
    add(Event.create(SessionEnded(reason="again"), session_id=s3))
    add(Event.create(SessionDeleted(), session_id=s2))
    return records


EXPECTED_OFFSETS = {0: timedelta(seconds=2), 1: timedelta(seconds=1)}


async def check(store: InMemoryTranscriptStore, generation: int, sessions: list[str]) -> None:
    for i, session_id in enumerate(sessions):
        state = await store.session_state(generation, session_id)
        at = EXPECTED_OFFSETS.get(i)
        assert state.cleared_ms == (ms(T0 + at) if at is not None else None), (i, state)
        assert state.deleted == (i == 2)
        assert state.ended == (i == 3), (i, state)
        # Every session that had runs, or a clear or deletion, has a version.
        assert state.version > 0, (i, state)


async def test_any_interleaving_keeps_the_last_obeyed_clear(settings: Settings) -> None:
    events = workload(51, runs=24, sessions=4)
    sessions = sorted({e.session_id for e in events if e.session_id is not None})
    log = MemoryLog(settings.run_events)
    log.extend(events)
    for seed in range(4):
        store = InMemoryTranscriptStore()
        feed = TwoTopics(settings, log, clear_log(settings, sessions))
        await feed.run(TranscriptProjection(store, settings), seed)
        await check(store, 0, sessions)
        dump = await store.dump(0)
        versions = [(await store.session_state(0, s)).version for s in sessions]
        # A replay (positions lost) applies the clears again: same data; the
        # cleared sessions get a newer version, none goes back.
        store.lose_positions(0)
        await feed.run(TranscriptProjection(store, settings), seed + 10)
        await check(store, 0, sessions)
        assert await store.dump(0) == dump
        again = [(await store.session_state(0, s)).version for s in sessions]
        assert again[0] > versions[0], (versions, again)
        assert again[1] > versions[1], (versions, again)
        assert all(b >= a for a, b in zip(versions, again, strict=True)), (versions, again)
        # A rebuild reads both topics from 0 into a new generation: same clear points.
        rebuild = await TranscriptProjection(store, settings).begin_rebuild()
        await feed.run(rebuild.projection, seed + 20)
        assert await rebuild.try_switch()
        live = await store.generation(Slot.LIVE)
        assert live == 1
        await check(store, live, sessions)
        assert (await store.dump(live))["cleared"] == {
            sessions[0]: str(ms(T0 + timedelta(seconds=2))),
            sessions[1]: str(ms(T0 + timedelta(seconds=1))),
        }
        assert (await store.dump(live))["ended"] == [sessions[3]]
