"""The usage read model on its in-memory twin: the Projection contract, the usage
contract, and the fold's refusals."""

from __future__ import annotations

from typing import Any

import pytest

from runwire.contract.events import Event, SessionCreated
from runwire.contract.routing import record_key
from runwire.log.records import SourceRecord, TopicPartition
from runwire.projections.runtime.protocol import Batch
from runwire.projections.usage.inmem import InMemoryUsage
from tests.contract.projections import Harness, ProjectionContract, RecordingSink
from tests.contract.usage import Rig, UsageContract, usage, usage_scenario

RUN_TOPIC, SESSION_TOPIC = "run-events", "session-events"


class TestInMemoryUsageProjectionContract(ProjectionContract):
    @pytest.fixture
    def harness(self) -> Harness:
        projection = InMemoryUsage(RUN_TOPIC, SESSION_TOPIC)
        good, bad = usage_scenario()

        async def state() -> Any:
            return dict(projection.state.rows), dict(projection.state.deleted)

        return Harness(
            projection=projection,
            tp=TopicPartition(RUN_TOPIC, 3),
            good=good,
            bad=bad,
            key=record_key,
            state=state,
        )


class TestInMemoryUsage(UsageContract):
    @pytest.fixture
    def rig(self) -> Rig:
        twin = InMemoryUsage(RUN_TOPIC, SESSION_TOPIC)
        return Rig(twin, twin, RUN_TOPIC, SESSION_TOPIC)


async def _apply(twin: InMemoryUsage, events: list[Event], keys: list[bytes]) -> RecordingSink:
    tp = TopicPartition(RUN_TOPIC, 0)
    records = [
        SourceRecord(RUN_TOPIC, 0, i, 0, key, b"", (), e)
        for i, (e, key) in enumerate(zip(events, keys, strict=True))
    ]
    sink = RecordingSink()
    await twin.apply(
        Batch(records=records, next_positions={tp: len(records)}, expected={tp: 0}), sink
    )
    return sink


async def test_a_usage_event_under_another_key_is_refused() -> None:
    twin = InMemoryUsage(RUN_TOPIC, SESSION_TOPIC)
    sink = await _apply(twin, [usage("r1"), usage("r2")], [b"r1", b"r1"])
    assert [(r.offset, r.reason) for r in sink.sent] == [(1, "key_mismatch")]
    assert list(twin.state.rows) == [("r1", "m-big", "openai", usage("r1").occurred_at.date())]


async def test_a_session_event_on_the_run_topic_is_refused() -> None:
    twin = InMemoryUsage(RUN_TOPIC, SESSION_TOPIC)
    event = Event.create(SessionCreated(user_id="u1"), session_id="s1")
    sink = await _apply(twin, [event], [b"s1"])
    assert [r.reason for r in sink.sent] == ["wrong_topic"]
