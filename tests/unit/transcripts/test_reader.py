"""The read API on the in-memory twin: hits, misses rebuilt from the log,
sessions cut at turn starts, read-your-writes."""

from __future__ import annotations

import pytest

from runwire.contract.events import Event
from runwire.errors import NotFoundError
from runwire.log import Position
from runwire.log.records import TopicPartition
from runwire.projections.runtime.waiting import NotCaughtUpError
from runwire.projections.transcripts.inmem import InMemoryTranscriptStore
from runwire.projections.transcripts.projection import TranscriptProjection
from runwire.projections.transcripts.reader import TranscriptCache
from runwire.settings import Settings
from runwire.transcript.messages import Message, TextPart, ToolResultPart, ToolUsePart
from runwire.transcript.turns import last_turns, starts_turn
from tests.support.transcript_workload import by_run, reference_transcripts, workload
from tests.unit.transcripts.memory_log import MemoryLocator, MemoryLog, MiniRunner


@pytest.fixture
def settings() -> Settings:
    return Settings(topic_prefix="unit.", redis_key_prefix="unit")


@pytest.fixture
def events() -> list[Event]:
    return workload(11, runs=24, sessions=4, turns=(2, 4))


def cache_for(
    settings: Settings, store: InMemoryTranscriptStore, log: MemoryLog, *, locate: bool = True
) -> TranscriptCache:
    return TranscriptCache(
        settings, store=store, run_log=log, locator=MemoryLocator(log) if locate else None
    )


async def projected(
    settings: Settings, events: list[Event]
) -> tuple[InMemoryTranscriptStore, MemoryLog, MiniRunner]:
    store = InMemoryTranscriptStore()
    log = MemoryLog(settings.run_events)
    log.extend(events)
    runner = MiniRunner(TranscriptProjection(store, settings), log)
    await runner.run()
    return store, log, runner


async def test_get_returns_the_pure_fold(settings: Settings, events: list[Event]) -> None:
    store, log, _ = await projected(settings, events)
    async with cache_for(settings, store, log) as cache:
        for run_id, expected in reference_transcripts(events).items():
            assert await cache.get(run_id) == expected
        assert cache.misses == 0
        with pytest.raises(NotFoundError, match="run 'nope'"):
            await cache.get("nope")


async def test_an_expired_transcript_comes_back_from_the_log_and_is_written_back(
    settings: Settings, events: list[Event]
) -> None:
    store, log, runner = await projected(settings, events[: len(events) // 2])
    expected_after = reference_transcripts(events)
    expired = sorted(by_run(events[: len(events) // 2]))[:8]
    for run_id in expired:
        store.expire(0, run_id)
    log.extend(events[len(events) // 2 :])
    await runner.run()  # new events of expired runs only move their last offset
    for run_id in expired:
        assert not (await store.heads(0, [run_id]))[run_id].has_body
    async with cache_for(settings, store, log, locate=False) as cache:
        for run_id in expired:
            assert await cache.get(run_id) == expected_after[run_id]
        assert cache.misses == len(expired)
        for run_id in expired:
            assert await cache.get(run_id) == expected_after[run_id]
        assert cache.misses == len(expired)  # written back: hits now
    # The projector goes on from the refilled state.
    clean = InMemoryTranscriptStore()
    await MiniRunner(TranscriptProjection(clean, settings), log).run()
    for run_id in expired:
        assert (await store.bodies(0, [run_id])) == (await clean.bodies(0, [run_id]))


async def test_after_a_flush_runs_are_located_in_the_run_status_store(
    settings: Settings, events: list[Event]
) -> None:
    store, log, runner = await projected(settings, events)
    clean_dump = await store.dump(0)
    store.flush()
    async with cache_for(settings, store, log) as cache:
        for run_id, expected in reference_transcripts(events).items():
            assert await cache.get(run_id) == expected
        session = events[0].session_id
        assert session is not None
        assert await cache.session_runs(session) == await MemoryLocator(log).session_runs(session)
    # The projector (restarted) finds its positions gone, replays from 0 over the refilled runs.
    await runner.assign()
    await runner.run()
    assert await store.dump(0) == clean_dump


async def test_a_fill_that_loses_to_the_projector_reads_the_newer_records(
    settings: Settings, events: list[Event]
) -> None:
    store, log, runner = await projected(settings, events[:200])
    run_id = events[0].run_id
    assert run_id is not None
    store.expire(0, run_id)

    class RacingLog(MemoryLog):
        """While the first read runs, the projector applies the run's next events."""

        raced = False

        async def read(self, rid: str, partition: int, first: int, last: int) -> list:  # type: ignore[type-arg]
            if not RacingLog.raced:
                RacingLog.raced = True
                log.extend(events[200:])
                await runner.run()
            return await log.read(rid, partition, first, last)

    racing = RacingLog(log.topic)
    async with TranscriptCache(settings, store=store, run_log=racing, locator=None) as cache:
        assert await cache.get(run_id) == reference_transcripts(events)[run_id]


async def test_get_session_concatenates_runs_in_order_and_cuts_at_turn_starts(
    settings: Settings, events: list[Event]
) -> None:
    store, log, _ = await projected(settings, events)
    reference = reference_transcripts(events)
    session = events[0].session_id
    assert session is not None
    async with cache_for(settings, store, log) as cache:
        runs = await cache.session_runs(session)
        assert runs
        assert set(runs) == {e.run_id for e in events if e.session_id == session}
        whole = await cache.get_session(session)
        assert whole == [m for r in runs for m in reference[r]]
        for n in range(1, 6):
            cut = await cache.get_session(session, last_n_turns=n)
            assert cut == whole[len(whole) - len(cut) :]
            assert starts_turn(cut[0])
            assert sum(starts_turn(m) for m in cut) == min(n, sum(starts_turn(m) for m in whole))
            declared = {p.id for m in cut for p in m.parts if isinstance(p, ToolUsePart)}
            answered = {
                p.tool_use_id for m in cut for p in m.parts if isinstance(p, ToolResultPart)
            }
            assert answered <= declared
        assert await cache.get_session("no-such-session") == []


def test_last_turns_never_cuts_between_a_tool_use_and_its_results() -> None:
    user = Message(role="user", parts=(TextPart(text="q"),))
    use = Message(role="assistant", parts=(ToolUsePart(id="t1", name="f"),))
    result_and_text = Message(
        role="user", parts=(ToolResultPart(tool_use_id="t1"), TextPart(text="and also"))
    )
    answer = Message(role="assistant", parts=(TextPart(text="a"),))
    messages = [user, use, result_and_text, answer]
    assert last_turns(messages, 1) == messages  # the only turn start is the first message
    assert last_turns(messages, None) == messages
    assert last_turns(messages, 0) == []
    assert last_turns([*messages, user, answer], 1) == [user, answer]


async def test_wait_for_returns_once_the_position_is_applied(
    settings: Settings, events: list[Event]
) -> None:
    store, log, _ = await projected(settings, events)
    async with cache_for(settings, store, log) as cache:
        tp = TopicPartition(settings.run_events, 0)
        end = log.end(0)
        await cache.wait_for(Position(tp.topic, 0, end - 1), timeout=1)
        with pytest.raises(NotCaughtUpError, match="not yet past offset"):
            await cache.wait_for(Position(tp.topic, 0, end), timeout=0.05)
        with pytest.raises(ValueError, match="reads"):
            await cache.wait_for(Position("other-topic", 0, 0), timeout=0.05)
