"""The Projection contract against the in-memory twins, and the twins against the reference.

The twins run the same batch folds as the Postgres projections; folding a
workload through them in random batch sizes, with the two topics
interleaved at random, must give what the pure reference fold gives.
"""

from __future__ import annotations

import random
from dataclasses import asdict
from typing import Any

import pytest

from runwire.contract.events import (
    Event,
    ToolResult,
    Usage,
)
from runwire.contract.routing import record_key
from runwire.log.records import SourceRecord, TopicPartition
from runwire.projections.runs.inmem import InMemoryRuns
from runwire.projections.runtime.protocol import Batch
from runwire.projections.sessions.fold import BOOKKEEPING
from runwire.projections.sessions.inmem import InMemorySessions
from runwire.projections.transcripts.inmem import InMemoryTranscriptStore
from runwire.projections.transcripts.projection import TranscriptProjection
from runwire.settings import Settings
from tests.contract.projections import (
    Harness,
    ProjectionContract,
    RecordingSink,
    run_scenario,
    session_scenario,
)
from tests.support.reference import fold_runs, fold_sessions
from tests.support.workload import synthetic_events

RUN_TOPIC, SESSION_TOPIC = "run-events", "session-events"


class TestInMemoryRunsContract(ProjectionContract):
    @pytest.fixture
    def harness(self) -> Harness:
        projection = InMemoryRuns(RUN_TOPIC, SESSION_TOPIC)
        good, bad = run_scenario()

        async def state() -> Any:
            s = projection.state
            return {k: asdict(v) for k, v in s.rows.items()}, asdict(s.erasure)

        return Harness(
            projection=projection,
            tp=TopicPartition(RUN_TOPIC, 3),
            good=good,
            bad=bad,
            key=lambda e: (e.run_id or "").encode(),
            state=state,
        )


class TestInMemorySessionsContract(ProjectionContract):
    @pytest.fixture
    def harness(self) -> Harness:
        projection = InMemorySessions(SESSION_TOPIC, RUN_TOPIC)

        async def state() -> Any:
            s = projection.state
            return {k: asdict(v) for k, v in s.rows.items()}, set(s.tombstones)

        good, bad = session_scenario()
        return Harness(
            projection=projection,
            tp=TopicPartition(SESSION_TOPIC, 1),
            good=good,
            bad=bad,
            key=lambda e: (e.session_id or "").encode(),
            state=state,
        )


class TestInMemoryTranscriptsContract(ProjectionContract):
    @pytest.fixture
    def harness(self) -> Harness:
        store = InMemoryTranscriptStore()
        projection = TranscriptProjection(store, Settings(topic_prefix=""))
        good, bad = run_scenario()

        async def state() -> Any:
            dump = await store.dump(0)
            dump.pop("pos", None)
            return dump

        return Harness(
            projection=projection,
            tp=TopicPartition(Settings(topic_prefix="").run_events, 3),
            good=good,
            bad=bad,
            key=record_key,
            state=state,
        )


def log_of(events: list[Event], partitions: dict[str, int]) -> list[SourceRecord]:
    """Records as a log would hold them: partition by key hash, offsets in order."""
    offsets: dict[tuple[str, int], int] = {}
    out: list[SourceRecord] = []
    for e in events:
        topic = RUN_TOPIC if e.type.stream.value == "run" else SESSION_TOPIC
        key = record_key(e)
        partition = sum(key) % partitions[topic]
        offset = offsets.get((topic, partition), 0)
        offsets[(topic, partition)] = offset + 1
        out.append(SourceRecord(topic, partition, offset, 0, key, b"", (), e))
    return out


async def feed(projection: Any, records: list[SourceRecord], rng: random.Random) -> RecordingSink:
    """Apply records in random batches, partitions interleaved at random (each kept in order)."""
    by_tp: dict[TopicPartition, list[SourceRecord]] = {}
    for r in records:
        by_tp.setdefault(r.tp, []).append(r)
    sink = RecordingSink()
    while by_tp:
        chosen = rng.sample(sorted(by_tp), k=rng.randint(1, len(by_tp)))
        batch: list[SourceRecord] = []
        nxt: dict[TopicPartition, int] = {}
        expected: dict[TopicPartition, int] = {}
        for tp in chosen:
            take = rng.randint(1, 60)
            part, by_tp[tp] = by_tp[tp][:take], by_tp[tp][take:]
            if not by_tp[tp]:
                del by_tp[tp]
            batch += part
            expected[tp] = part[0].offset
            nxt[tp] = part[-1].offset + 1
        # Sometimes the same batch twice (a redelivery): it must change nothing.
        for _ in range(2 if rng.random() < 0.2 else 1):
            await projection.apply(Batch(batch, nxt, expected), sink)
    return sink


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_the_twins_fold_a_workload_like_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    workload = synthetic_events(runs=60, sessions=12, events=1_500, seed=seed, concurrency=8)
    events = list(workload.events)
    # Records the projections must reject: orphan tool results, misrouted keys.
    for victim in rng.sample([e for e in events if e.run_id], 10):
        orphan = Event.create(
            ToolResult(tool_use_id="nope"), run_id=victim.run_id, session_id=victim.session_id
        )
        events.insert(rng.randrange(len(events)), orphan)
    # Run events without a session id (the run's row names its session): before or
    # after one of the run's events, or at the end of the log (after any deletion),
    # half of them of runs of deleted sessions.
    deleted = {e.session_id or "" for e in events if e.type.value == "session_deleted"}
    of_runs = [e for e in events if e.run_id]
    for victim in rng.sample(of_runs, 10) + rng.sample(
        [e for e in of_runs if e.session_id in deleted], 10
    ):
        usage = Usage(model="m", provider="p", input_tokens=1, output_tokens=1)
        at = rng.choice([events.index(victim), events.index(victim) + 1, len(events)])
        events.insert(at, Event.create(usage, run_id=victim.run_id))
    # And some naming a deleted session that is not their run's (first or later).
    for victim in rng.sample([e for e in of_runs if e.session_id not in deleted], 10):
        usage = Usage(model="m", provider="p", input_tokens=1, output_tokens=1)
        at = rng.choice([events.index(victim), events.index(victim) + 1, len(events)])
        events.insert(at, Event.create(usage, run_id=victim.run_id, session_id=min(deleted)))
    records = log_of(events, {RUN_TOPIC: 4, SESSION_TOPIC: 3})
    for i in rng.sample(range(len(records)), 5):
        r = records[i]
        records[i] = SourceRecord(r.topic, r.partition, r.offset, 0, b"elsewhere", b"", (), r.event)
    runs = InMemoryRuns(RUN_TOPIC, SESSION_TOPIC)
    sessions = InMemorySessions(SESSION_TOPIC, RUN_TOPIC)
    run_sink = await feed(runs, records, rng)
    session_sink = await feed(sessions, records, rng)
    expected_runs = fold_runs(records, RUN_TOPIC, SESSION_TOPIC)
    assert {k: asdict(v) for k, v in runs.state.rows.items()} == expected_runs.rows
    assert expected_runs.tombstones, "the workload deletes sessions"
    assert len(fold_runs(records, RUN_TOPIC).rows) > len(expected_runs.rows), "runs erased"
    sent = {(r.topic, r.partition, r.offset): r.reason for r in run_sink.sent}
    # The rejections of erased runs' events depend on whether the deletion came first.
    assert expected_runs.rejected.items() <= sent.items()
    assert sent.items() <= (expected_runs.rejected | expected_runs.erased_rejected).items()
    assert set(expected_runs.rejected.values()) == {"unknown_tool_use", "key_mismatch"}
    expected_sessions = fold_sessions(records, SESSION_TOPIC)
    actual = {
        k: {c: v for c, v in asdict(row).items() if c not in BOOKKEEPING}
        for k, row in sessions.state.rows.items()
    }
    assert actual == expected_sessions.rows
    assert sessions.state.tombstones == expected_sessions.tombstones
    assert {(r.topic, r.partition, r.offset): r.reason for r in session_sink.sent} == (
        expected_sessions.rejected
    )
    assert expected_sessions.tombstones
    assert workload.duplicates > 0
