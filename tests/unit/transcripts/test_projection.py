"""The transcript projection on the in-memory twin: it equals the pure fold,
whatever the batching, replays, duplicates, second instances and rebuilds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from runwire.contract.events import Event, EventType, ToolResult, UserMessage
from runwire.projections.transcripts.inmem import InMemoryTranscriptStore
from runwire.projections.transcripts.projection import TranscriptProjection
from runwire.projections.transcripts.store import Commit, CommitOutcome, Slot, checksum
from runwire.settings import Settings
from runwire.transcript.messages import ThinkingPart
from tests.contract.transcript_store import dumped_transcripts
from tests.support.transcript_workload import reference_transcripts, workload
from tests.unit.transcripts.memory_log import MemoryLog, MiniRunner


@pytest.fixture
def settings() -> Settings:
    return Settings(topic_prefix="unit.", redis_key_prefix="unit")


@pytest.fixture
def events() -> list[Event]:
    return workload(7, runs=40, sessions=6)


def memory_log(settings: Settings, events: list[Event]) -> MemoryLog:
    log = MemoryLog(settings.run_events)
    log.extend(events)
    return log


async def transcripts(store: InMemoryTranscriptStore, generation: int = 0) -> dict[str, Any]:
    return dumped_transcripts(await store.dump(generation))


def without_positions(dump: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dump.items() if k != "pos"}


async def test_every_transcript_equals_the_pure_fold(
    settings: Settings, events: list[Event]
) -> None:
    store = InMemoryTranscriptStore()
    runner = MiniRunner(TranscriptProjection(store, settings), memory_log(settings, events))
    await runner.run()
    assert await transcripts(store) == reference_transcripts(events)
    assert runner.sink.sent == []


async def test_batch_boundaries_do_not_matter(settings: Settings, events: list[Event]) -> None:
    dumps = []
    for seed, size in [(1, 1), (2, 7), (3, 500)]:
        store = InMemoryTranscriptStore()
        runner = MiniRunner(
            TranscriptProjection(store, settings, builder_cache_size=seed * 3),
            memory_log(settings, events),
            seed=seed,
        )
        await runner.run(max_records=size)
        dumps.append(checksum(await store.dump(0)))
    assert len(set(dumps)) == 1


async def test_thinking_signatures_and_redacted_bytes_survive_byte_for_byte(
    settings: Settings, events: list[Event]
) -> None:
    store = InMemoryTranscriptStore()
    await MiniRunner(TranscriptProjection(store, settings), memory_log(settings, events)).run()
    got, want = await transcripts(store), reference_transcripts(events)
    stored = [
        p for run in sorted(got) for m in got[run] for p in m.parts if isinstance(p, ThinkingPart)
    ]
    expected = [
        p for run in sorted(want) for m in want[run] for p in m.parts if isinstance(p, ThinkingPart)
    ]
    assert any(p.redacted == bytes(range(256)) for p in stored)
    assert any(p.signature and ("+" in p.signature or "/" in p.signature) for p in stored)
    assert [(p.text, p.signature, p.redacted) for p in stored] == [
        (p.text, p.signature, p.redacted) for p in expected
    ]


async def test_a_replay_from_offset_zero_changes_nothing(
    settings: Settings, events: list[Event]
) -> None:
    store = InMemoryTranscriptStore()
    log = memory_log(settings, events)
    await MiniRunner(TranscriptProjection(store, settings), log).run()
    before = await store.dump(0)
    # The positions are lost (the run data is not): everything is read again.
    store._g(0).positions.clear()
    replay = MiniRunner(TranscriptProjection(store, settings), log, seed=5)
    await replay.run()
    assert await store.dump(0) == before
    assert sum(r.skipped for r in replay.results) > 0


async def test_republished_identical_events_change_nothing_but_positions(
    settings: Settings, events: list[Event]
) -> None:
    store = InMemoryTranscriptStore()
    log = memory_log(settings, events)
    runner = MiniRunner(TranscriptProjection(store, settings), log)
    await runner.run()
    before = await store.dump(0)
    log.extend(events[::3])  # the same event ids, at later offsets
    await runner.run()
    after = await store.dump(0)
    assert without_positions(after) == without_positions(before)
    assert after["pos"] != before["pos"]
    assert sum(r.duplicates for r in runner.results) > 0


async def test_two_instances_writing_the_same_partitions_apply_each_event_once(
    settings: Settings, events: list[Event]
) -> None:
    store = InMemoryTranscriptStore()
    log = memory_log(settings, events)
    a = MiniRunner(TranscriptProjection(store, settings), log, seed=1)
    b = MiniRunner(TranscriptProjection(store, settings), log, seed=2)
    await a.assign()
    await b.assign()
    # Both believe they own every partition (a rebalance in flight) and race.
    while a.behind() or b.behind():
        await a.step(9)
        await b.step(13)
    assert await transcripts(store) == reference_transcripts(events)
    clean = InMemoryTranscriptStore()
    await MiniRunner(TranscriptProjection(clean, settings), log).run()
    assert await store.dump(0) == await clean.dump(0)


async def test_an_event_the_ledger_refuses_is_dead_lettered_and_changes_nothing(
    settings: Settings, events: list[Event]
) -> None:
    store = InMemoryTranscriptStore()
    log = memory_log(settings, events)
    victim = events[0].run_id
    bad = Event.create(
        ToolResult(tool_use_id="no-such-tool-use", content="x"),
        run_id=victim,
        session_id=events[0].session_id,
    )
    log.append(bad)
    runner = MiniRunner(TranscriptProjection(store, settings), log)
    await runner.run()
    assert [(r.reason, r.error_class) for r in runner.sink.sent] == [
        ("unknown_tool_use", "LedgerError")
    ]
    assert f"run {victim}" in runner.sink.sent[0].message
    assert await transcripts(store) == reference_transcripts(events)


async def test_a_switched_or_flushed_store_makes_the_runner_seek_back(
    settings: Settings, events: list[Event]
) -> None:
    store = InMemoryTranscriptStore()
    log = memory_log(settings, events)
    runner = MiniRunner(TranscriptProjection(store, settings), log)
    await runner.run()
    store.flush()
    log.extend(events[:5])
    await runner.step()
    # Stored positions (0) are below what the runner expected: nothing applied, runner goes back.
    assert all(p == 0 for p in runner.results[-1].positions.values())
    assert await store.dump(0) == {}
    await runner.run()
    assert await transcripts(store) == reference_transcripts(events + events[:5])


async def test_a_rebuild_fills_a_new_generation_and_switches_when_caught_up(
    settings: Settings, events: list[Event]
) -> None:
    store = InMemoryTranscriptStore()
    log = MemoryLog(settings.run_events)
    half = len(events) // 2
    log.extend(events[:half])
    live = TranscriptProjection(store, settings)
    live_runner = MiniRunner(live, log)
    await live_runner.run()
    rebuild = await live.begin_rebuild()
    assert rebuild.generation == 1
    build_runner = MiniRunner(rebuild.projection, log, seed=3)
    await build_runner.run()
    log.extend(events[half:])
    await live_runner.run()  # the live copy moves on while the copy is built
    assert not await rebuild.try_switch()
    await build_runner.run()
    assert await rebuild.try_switch()
    assert await store.generation(Slot.LIVE) == 1
    assert await store.dump(0) == {}  # the old copy is dropped
    log.extend(events[:3])  # the live projector goes on, now in the new generation
    await live_runner.run()
    clean = InMemoryTranscriptStore()
    await MiniRunner(TranscriptProjection(clean, settings), log).run()
    assert await store.dump(1) == await clean.dump(0)


async def test_a_pinned_projection_of_a_discarded_rebuild_stops(
    settings: Settings, events: list[Event]
) -> None:
    from runwire.projections.runtime.generations import ProjectionError

    store = InMemoryTranscriptStore()
    live = TranscriptProjection(store, settings)
    rebuild = await live.begin_rebuild()
    await rebuild.discard()
    await rebuild.discard()  # idempotent
    with pytest.raises(ProjectionError, match="gone"):
        await rebuild.projection.load_positions([])


async def test_concurrent_batches_on_one_instance_apply_each_event_once(
    settings: Settings, events: list[Event]
) -> None:
    class YieldingStore(InMemoryTranscriptStore):
        """Gives the event loop a turn on every call, as a store over a network does."""

        async def snapshot(self, *args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)
            return await super().snapshot(*args, **kwargs)

        async def commit(self, commit: Commit) -> CommitOutcome:
            await asyncio.sleep(0)
            return await super().commit(commit)

    store = YieldingStore()
    log = memory_log(settings, events)
    projection = TranscriptProjection(store, settings)
    a = MiniRunner(projection, log, seed=1)
    b = MiniRunner(projection, log, seed=2)
    await a.assign()
    await b.assign()
    while a.behind() or b.behind():
        await asyncio.gather(a.step(11), b.step(7))
    assert await transcripts(store) == reference_transcripts(events)


async def test_an_ended_run_is_not_held_and_its_later_events_still_fold(
    settings: Settings,
) -> None:
    run = workload(3, runs=1, sessions=1)  # ends with its run_completed
    assert run[-1].type is EventType.RUN_COMPLETED
    later = Event.create(
        UserMessage(parts=["after the end"]),
        run_id=run[0].run_id,
        session_id=run[0].session_id,
        producer="test",
    )
    store = InMemoryTranscriptStore()
    projection = TranscriptProjection(store, settings)
    log = memory_log(settings, run)
    runner = MiniRunner(projection, log)
    await runner.run(max_records=len(run))
    # The builder went with the run's end: a later event folds from the stored body.
    assert projection._cache == {}
    log.append(later)
    await runner.run()
    assert await transcripts(store) == reference_transcripts([*run, later])
    assert runner.sink.sent == []
