"""Tenants in the transcript projection, on the in-memory twin: the same run and
session ids in several tenants are separate runs and sessions, in one batch or
many, and a deletion or a miss stays in its tenant."""

from __future__ import annotations

import pytest

from runwire.contract.events import AssistantText, Event, SessionDeleted, UserMessage
from runwire.log.records import SourceRecord, TopicPartition
from runwire.projections.runtime.protocol import Batch
from runwire.projections.transcripts.inmem import InMemoryTranscriptStore
from runwire.projections.transcripts.keys import tenant_segment
from runwire.projections.transcripts.miss import MissPath
from runwire.projections.transcripts.projection import TranscriptProjection
from runwire.projections.transcripts.reader import TranscriptCache
from runwire.settings import Settings
from runwire.transcript.messages import TextPart
from tests.unit.transcripts.memory_log import ListSink, MemoryLocator, MemoryLog

TENANTS: tuple[str | None, ...] = (None, "acme", "b:c")


@pytest.fixture
def settings() -> Settings:
    return Settings(topic_prefix="unit.", redis_key_prefix="unit")


def turn(tenant: str | None) -> list[Event]:
    return [
        Event.create(
            UserMessage(parts=[f"q {tenant}"]), run_id="r1", session_id="s1", tenant=tenant
        ),
        Event.create(
            AssistantText(text=f"a {tenant}"), run_id="r1", session_id="s1", tenant=tenant
        ),
    ]


def deletion(settings: Settings, offset: int, tenant: str | None) -> SourceRecord:
    event = Event.create(SessionDeleted(), session_id="s1", tenant=tenant)
    return SourceRecord(settings.session_events, 0, offset, 0, b"s1", b"", (), event)


async def test_one_batch_of_three_tenants_and_two_deletions(settings: Settings) -> None:
    log = MemoryLog(settings.run_events)
    for tenant in TENANTS:  # interleaved: the runs share one partition
        log.extend(turn(tenant)[:1])
    for tenant in TENANTS:
        log.extend(turn(tenant)[1:])
    store = InMemoryTranscriptStore()
    projection = TranscriptProjection(store, settings)
    (partition,) = log.records
    runs = TopicPartition(settings.run_events, partition)
    batch = Batch(log.records[partition], {runs: 6}, {runs: 0})
    await projection.apply(batch, ListSink())
    for tenant in TENANTS:
        async with TranscriptCache(
            settings, store=store, run_log=log, locator=None, tenant=tenant
        ) as cache:
            messages = await cache.get("r1")
            texts = [p.text for m in messages for p in m.parts if isinstance(p, TextPart)]
            assert texts == [f"q {tenant}", f"a {tenant}"]
            assert await cache.session_runs("s1") == ["r1"]
    dump = await store.dump(0)
    for tenant in TENANTS:
        assert f"{tenant_segment(tenant)}meta:r1" in dump

    # Two tenants delete their s1 in one batch (tenants and None side by side).
    sessions = TopicPartition(settings.session_events, 0)
    deletions = [deletion(settings, 0, None), deletion(settings, 1, "acme")]
    await projection.apply(Batch(deletions, {sessions: 2}, {sessions: 0}), ListSink())
    assert await store.deleted(0, ["s1"]) == {"s1"}
    assert await store.deleted(0, ["s1"], tenant="acme") == {"s1"}
    assert await store.deleted(0, ["s1"], tenant="b:c") == set()
    assert await store.session_runs(0, "s1", tenant="b:c") == ["r1"]
    assert (await store.heads(0, ["r1"], tenant="acme"))["r1"].meta is None
    # A later event of a deleted tenant's run is dropped; b:c's run goes on.
    log.extend(
        [
            Event.create(UserMessage(parts=["late"]), run_id="r1", session_id="s1", tenant="acme"),
            Event.create(UserMessage(parts=["more"]), run_id="r1", session_id="s1", tenant="b:c"),
        ]
    )
    await projection.apply(Batch(log.records[partition][6:], {runs: 8}, {runs: 6}), ListSink())
    assert (await store.heads(0, ["r1"], tenant="acme"))["r1"].meta is None
    assert len((await store.messages(0, ["r1"], tenant="b:c"))["r1"]) > 0
    assert "q acme" not in str(await store.dump(0))


async def test_a_miss_folds_only_its_tenants_records(settings: Settings) -> None:
    log = MemoryLog(settings.run_events)
    for tenant in TENANTS:
        log.extend(turn(tenant))
    store = InMemoryTranscriptStore()
    projection = TranscriptProjection(store, settings)
    (partition,) = log.records
    runs = TopicPartition(settings.run_events, partition)
    await projection.apply(Batch(log.records[partition], {runs: 6}, {runs: 0}), ListSink())
    store.expire(0, "r1", tenant="acme")
    miss = MissPath(store, log, MemoryLocator(log))
    messages = await miss.fill("r1", "acme")
    assert messages is not None
    assert [p.text for m in messages for p in m.parts if isinstance(p, TextPart)] == [
        "q acme",
        "a acme",
    ]
    # Another tenant's run of the same id is not this tenant's: unknown.
    assert await miss.fill("r1", "initech") is None
