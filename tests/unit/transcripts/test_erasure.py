"""Erasure in the transcript projection on the in-memory twin: whatever the
interleaving of the session-events and run-events partitions, a deleted
session ends with nothing cached, and the rest equals the pure fold."""

from __future__ import annotations

import random
from typing import Any

import pytest

from runwire.contract.events import Event, SessionCreated, SessionDeleted, UserMessage
from runwire.log.records import SourceRecord, TopicPartition
from runwire.projections.runtime.protocol import Batch
from runwire.projections.transcripts.inmem import InMemoryTranscriptStore
from runwire.projections.transcripts.miss import MissPath
from runwire.projections.transcripts.projection import TranscriptProjection
from runwire.projections.transcripts.store import Commit, CommitOutcome, Conflict, Slot, checksum
from runwire.settings import Settings
from tests.contract.transcript_store import dumped_transcripts
from tests.support.transcript_workload import by_run, reference_transcripts, workload
from tests.unit.transcripts.memory_log import ListSink, MemoryLocator, MemoryLog


@pytest.fixture
def settings() -> Settings:
    return Settings(topic_prefix="unit.", redis_key_prefix="unit")


def session_record(
    settings: Settings, offset: int, event: Event, key: str | None = None
) -> SourceRecord:
    assert event.session_id is not None
    return SourceRecord(
        topic=settings.session_events,
        partition=0,
        offset=offset,
        timestamp_ms=0,
        key=(key or event.session_id).encode(),
        value=b"",
        headers=(),
        event=event,
    )


class TwoTopics:
    """The run-events partitions of a :class:`MemoryLog` and one session-events
    partition, fed to a projection in random batches across all of them."""

    def __init__(self, settings: Settings, log: MemoryLog, sessions: list[SourceRecord]) -> None:
        self.log = log
        self.by_tp: dict[TopicPartition, list[SourceRecord]] = {
            TopicPartition(log.topic, p): log.records.get(p, []) for p in range(log.partitions)
        }
        self.by_tp[TopicPartition(settings.session_events, 0)] = sessions
        self.sink = ListSink()

    async def run(self, projection: TranscriptProjection, seed: int) -> None:
        rng = random.Random(seed)
        expected = await projection.load_positions(list(self.by_tp))
        while behind := [tp for tp, rs in self.by_tp.items() if expected[tp] < len(rs)]:
            records: list[SourceRecord] = []
            nxt: dict[TopicPartition, int] = {}
            for tp in rng.sample(behind, rng.randint(1, len(behind))):
                chunk = self.by_tp[tp][expected[tp] : expected[tp] + rng.randint(1, 30)]
                records += chunk
                nxt[tp] = chunk[-1].offset + 1
            rng.shuffle(records)  # partitions interleave in any order
            records.sort(key=lambda r: (r.tp, r.offset))  # ... each in its own order
            batch = Batch(records, nxt, {tp: expected[tp] for tp in nxt})
            result = await projection.apply(batch, self.sink)
            expected.update({tp: result.positions[tp] for tp in nxt})


def erasure_log(
    settings: Settings, events: list[Event], doomed: list[str], seed: int
) -> list[SourceRecord]:
    """A session-events partition: every session created, the doomed ones deleted
    at random places (so before, amid or after their runs, as the runner goes)."""
    rng = random.Random(seed)
    sessions = sorted({e.session_id for e in events if e.session_id is not None})
    out = [Event.create(SessionCreated(), session_id=s) for s in sessions]
    for s in doomed:
        out.insert(rng.randint(0, len(out)), Event.create(SessionDeleted(), session_id=s))
    return [session_record(settings, i, e) for i, e in enumerate(out)]


async def test_any_interleaving_leaves_nothing_of_deleted_sessions(settings: Settings) -> None:
    events = workload(41, runs=48, sessions=6)
    sessions = sorted({e.session_id for e in events if e.session_id is not None})
    doomed = sessions[:2]
    kept = [e for e in events if e.session_id not in doomed]
    log = MemoryLog(settings.run_events)
    log.extend(events)
    dumps = set()
    for seed in range(6):
        store = InMemoryTranscriptStore()
        feed = TwoTopics(settings, log, erasure_log(settings, events, doomed, seed))
        await feed.run(TranscriptProjection(store, settings, builder_cache_size=seed), seed)
        dump = await store.dump(0)
        assert dumped_transcripts(dump) == reference_transcripts(kept)
        assert dump["deleted"] == doomed
        assert dump["erased"] == sorted(set(by_run(events)) - set(by_run(kept)))
        for s in doomed:
            assert await store.session_runs(0, s) == []
        assert not [k for k in dump if k.startswith("meta:") and k[5:] not in by_run(kept)]
        assert feed.sink.sent == []
        dumps.add(checksum({k: v for k, v in dump.items() if k != "pos"}))
        # A replay of everything (positions lost) changes nothing but the positions.
        store.lose_positions(0)
        await feed.run(TranscriptProjection(store, settings), seed + 100)
        assert await store.dump(0) == dump
    assert len(dumps) == 1


async def test_a_rebuild_honours_the_deletions(settings: Settings) -> None:
    events = workload(42, runs=20, sessions=4)
    doomed = sorted({e.session_id for e in events if e.session_id is not None})[:1]
    log = MemoryLog(settings.run_events)
    log.extend(events)
    feed = TwoTopics(settings, log, erasure_log(settings, events, doomed, 1))
    store = InMemoryTranscriptStore()
    live = TranscriptProjection(store, settings)
    await feed.run(live, 1)
    rebuild = await live.begin_rebuild()
    await feed.run(rebuild.projection, 2)
    assert await rebuild.try_switch()
    assert await store.generation(Slot.LIVE) == 1
    dump = await store.dump(1)
    assert dump["deleted"] == doomed
    kept = [e for e in events if e.session_id not in doomed]
    assert dumped_transcripts(dump) == reference_transcripts(kept)


async def test_a_deletion_committed_by_another_writer_first_wins(settings: Settings) -> None:
    """Another instance commits the deletion between this batch's snapshot and
    its commit: the commit is refused (DELETED), re-read, and drops the runs."""
    events = workload(43, runs=4, sessions=1)
    maybe = events[0].session_id
    assert maybe is not None
    session: str = maybe  # narrowed for the class body below

    class Racing(InMemoryTranscriptStore):
        raced = False

        async def commit(self, commit: Commit) -> CommitOutcome:
            if commit.runs and not self.raced:
                self.raced = True
                assert (await super().commit(Commit(Slot.LIVE, 0, (), (), [(None, session)]))).ok
                outcome = await super().commit(commit)
                assert outcome.kind is Conflict.DELETED
                return outcome
            return await super().commit(commit)

    store = Racing()
    projection = TranscriptProjection(store, settings)
    log = MemoryLog(settings.run_events)
    log.extend(events)
    await TwoTopics(settings, log, []).run(projection, 3)
    assert store.raced
    assert projection.conflicts >= 1
    dump = await store.dump(0)
    assert set(dump) == {"deleted", "erased", "pos"}
    assert dump["deleted"] == [session]
    assert dump["erased"] == sorted(by_run(events))


async def test_a_deletion_whose_key_is_not_its_session_deletes_nothing(
    settings: Settings,
) -> None:
    """The session index rejects it (one dead letter, there), so the runs stay."""
    events = workload(44, runs=3, sessions=1)
    (session,) = {e.session_id for e in events}
    assert session is not None
    log = MemoryLog(settings.run_events)
    log.extend(events)
    bad = session_record(settings, 0, Event.create(SessionDeleted(), session_id=session), "x")
    feed = TwoTopics(settings, log, [bad])
    store = InMemoryTranscriptStore()
    await feed.run(TranscriptProjection(store, settings), 4)
    assert feed.sink.sent == []
    assert "deleted" not in await store.dump(0)
    assert dumped_transcripts(await store.dump(0)) == reference_transcripts(events)


async def test_the_miss_path_does_not_refill_a_deleted_sessions_run(settings: Settings) -> None:
    events = workload(45, runs=6, sessions=2)
    sessions = sorted({e.session_id for e in events if e.session_id is not None})
    log = MemoryLog(settings.run_events)
    log.extend(events)
    store = InMemoryTranscriptStore()
    miss = MissPath(store, log, MemoryLocator(log))  # the locator still knows every run
    assert (await store.commit(Commit(Slot.LIVE, 0, (), (), [(None, sessions[0])]))).ok
    runs = by_run(events)
    for run_id, evs in runs.items():
        got: Any = await miss.fill(run_id)
        if evs[0].session_id == sessions[0]:
            assert got is None
        else:
            assert got == reference_transcripts(evs)[run_id]
    assert miss.fills == sum(evs[0].session_id != sessions[0] for evs in runs.values())
    assert await store.session_runs(0, sessions[0]) == []


async def test_late_events_of_an_erased_run_are_dropped_even_without_a_session(
    settings: Settings,
) -> None:
    events = workload(46, runs=2, sessions=1)
    (session,) = {e.session_id for e in events}
    run_id = events[0].run_id
    log = MemoryLog(settings.run_events)
    log.extend(events)
    store = InMemoryTranscriptStore()
    deletion = session_record(settings, 0, Event.create(SessionDeleted(), session_id=session))
    feed = TwoTopics(settings, log, [deletion])
    await feed.run(TranscriptProjection(store, settings), 5)
    log.append(Event.create(UserMessage(parts=["late"]), run_id=run_id, session_id=session))
    log.append(Event.create(UserMessage(parts=["whose?"]), run_id=run_id))
    await feed.run(TranscriptProjection(store, settings), 6)
    assert set(await store.dump(0)) == {"deleted", "erased", "pos"}


async def test_a_session_less_run_that_joins_a_deleted_session_is_erased(
    settings: Settings,
) -> None:
    """Cached without a session, then an event names a deleted session: the run goes."""
    store = InMemoryTranscriptStore()
    log = MemoryLog(settings.run_events)
    log.append(Event.create(UserMessage(parts=["hi"]), run_id="r"))
    feed = TwoTopics(settings, log, [])
    await feed.run(TranscriptProjection(store, settings), 7)
    assert (await store.heads(0, ["r"]))["r"].has_body
    assert (await store.commit(Commit(Slot.LIVE, 0, (), (), [(None, "s")]))).ok
    log.append(Event.create(UserMessage(parts=["mine now"]), run_id="r", session_id="s"))
    await feed.run(TranscriptProjection(store, settings), 8)
    assert set(await store.dump(0)) == {"deleted", "erased", "pos"}
