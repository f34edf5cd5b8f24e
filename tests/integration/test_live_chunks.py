"""Live chunks on the stack: tokens reach readers as they stream, the log keeps only answers.

Every reader here ends with exactly the canonical transcript, whether it read
every chunk, joined late, lost chunks, or met a provider whose stream broke.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from runwire.client import Client, RunHandle, RunOutcome
from runwire.contract.codec import codec_for
from runwire.contract.events import (
    AssistantText,
    Event,
    EventType,
    LiveChunk,
    LiveToolFinished,
    LiveToolStarted,
    RunFailed,
    RunStatus,
    Stream,
)
from runwire.log import EventWriter, Position
from runwire.log.live import live_watcher
from runwire.providers.local import LocalModel
from runwire.providers.retry import RetryPolicy
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.services.tools.wiring import tool_runner_service
from runwire.settings import Settings
from runwire.transcript.ledger import build_messages_from_events
from runwire.transcript.live import LiveView
from runwire.transcript.messages import TextPart
from tests.fakes.openai_chat import FakeOpenAIServer
from tests.fakes.server import Reply, StreamDrop, Turn
from tests.integration.api_support import ALICE, api, auth, projectors, read_sse
from tests.integration.orchestration_support import read_run_log
from tests.integration.test_orchestrator_lifecycle import openai_settings

FAST_RETRIES = RetryPolicy(max_attempts=3, timeout=10.0, base_delay=0.05, max_delay=0.2)
ARITHMETIC = "what is 12 * (3 + 4)?"


def canonical(events: Sequence[Event]) -> list[Event]:
    return [e for e in events if e.stream is Stream.RUN]


def live(events: Sequence[Event]) -> list[Event]:
    return [e for e in events if e.stream is Stream.LIVE]


async def collect(handle: RunHandle, seconds: float = 60) -> list[Event]:
    async with asyncio.timeout(seconds):
        return [event async for event in handle.stream()]


async def live_topic(settings: Settings, run_id: str) -> list[Event]:
    """Every live event of the run on the live topic, as it is now."""
    async with live_watcher(settings, codec_for(settings), purpose="test") as watcher:
        partition = watcher.partition_of(run_id)
        end = await watcher.end_offset(partition)
        return [
            event
            async for _, event in watcher.events(run_id, partition, 0, end, until_terminal=False)
        ]


def assert_exactly_the_log(read: Sequence[Event], log: Sequence[Event], run_id: str) -> None:
    """The reader's canonical events are the run's events, and so its transcript."""
    assert [e.event_id for e in canonical(read)] == [e.event_id for e in log]
    assert build_messages_from_events(canonical(read), run_id) == build_messages_from_events(
        log, run_id
    )


async def test_tokens_reach_a_streaming_reader_before_the_answer_lands(
    settings: Settings,
) -> None:
    model = LocalModel(chunk_chars=3, chunk_interval=0.01)
    async with (
        orchestrator_service(settings, provider=model, history=False),
        # A tool that takes a moment: its start is seen while it runs.
        tool_runner_service(settings, tool_latency=1.0),
        Client(settings) as rw,
    ):
        handle = await rw.run("helper", ARITHMETIC)
        read = await collect(handle)
        outcome = await handle.wait(timeout=30)
    assert outcome.status is RunStatus.COMPLETED, outcome.events
    assert_exactly_the_log(read, outcome.events, handle.run_id)

    # The final answer streamed before it landed, and what streamed is its text.
    answer = next(
        e for e in read if isinstance(e.payload, AssistantText) and "84" in e.payload.text
    )
    assert answer.causation_id is not None
    before = read[: read.index(answer)]
    chunks = [e for e in before if e.type is EventType.LIVE_CHUNK]
    mine = [e for e in chunks if e.causation_id == answer.causation_id]
    assert mine, "no chunk of the final answer reached the reader before the answer"
    streamed = "".join(
        d["text"]
        for e in mine
        for d in e.payload.deltas  # type: ignore[union-attr]
        if d["kind"] == "text"
    )
    assert streamed
    assert isinstance(answer.payload, AssistantText)
    assert answer.payload.text.startswith(streamed)
    # Thinking streamed too, and the live events never reached the run's log.
    kinds = {d["kind"] for e in chunks for d in e.payload.deltas}  # type: ignore[union-attr]
    assert {"thinking", "text"} <= kinds
    assert all(e.stream is Stream.RUN for e in outcome.events)

    # The tool's execution was live too: started before its result landed...
    use = next(e for e in read if e.type is EventType.TOOL_USE)
    result = next(e for e in read if e.type is EventType.TOOL_RESULT)
    started = [e for e in read if e.type is EventType.LIVE_TOOL_STARTED]
    assert [e.causation_id for e in started] == [use.event_id]
    assert read.index(started[0]) < read.index(result)
    # ...and the live topic holds its start and end, in that order.
    on_topic = await live_topic(settings, handle.run_id)
    tool_events = [e.payload for e in on_topic if e.causation_id == use.event_id]
    assert [type(p) for p in tool_events] == [LiveToolStarted, LiveToolFinished]
    finished = tool_events[1]
    assert isinstance(finished, LiveToolFinished)
    assert finished.name == "calculator"
    assert not finished.is_error
    assert finished.duration_ms >= 0


async def test_a_late_reader_joins_the_answer_from_its_start(settings: Settings) -> None:
    # A slow, steady model (seconds per answer): the second reader arrives mid-answer.
    model = LocalModel(chunk_chars=2, chunk_interval=0.05)
    async with (
        orchestrator_service(settings, provider=model, history=False),
        Client(settings) as rw,
        Client(settings) as other,
    ):
        handle = await rw.run("helper", "my favourite colour is a very deep ultramarine blue")
        first_reader = asyncio.create_task(collect(handle))
        # Wait until the answer is streaming, then join from another client.
        async with asyncio.timeout(30):
            async for event in handle.stream():
                if event.type is EventType.LIVE_CHUNK:
                    break
        late = other.handle(handle.run_id, first_offset=handle.first_offset)
        late_read = await collect(late)
        early_read = await first_reader
        outcome = await handle.wait(timeout=30)
        after_the_end = await collect(other.handle(handle.run_id, first_offset=handle.first_offset))
    assert outcome.status is RunStatus.COMPLETED, outcome.events
    for read in (early_read, late_read, after_the_end):
        assert_exactly_the_log(read, outcome.events, handle.run_id)
    # The late reader got the answer's chunks from the first one on.
    late_chunks = [e.payload for e in late_read if isinstance(e.payload, LiveChunk)]
    assert late_chunks
    assert late_chunks[0].seq == 0
    assert not live(after_the_end)  # an ended run reads as its log, nothing else


class DroppingWriter:
    """The orchestrator's writer, losing every other live chunk (a lossy live path)."""

    def __init__(self, inner: EventWriter) -> None:
        self._inner = inner
        self.dropped = 0
        self._chunks = 0

    async def publish(self, event: Event) -> Position:
        if event.type is EventType.LIVE_CHUNK:
            self._chunks += 1
            if self._chunks % 2 == 0:
                self.dropped += 1
                return Position(event.type.value, 0, -1)
        return await self._inner.publish(event)

    async def publish_many(self, events: Sequence[Event]) -> list[Position]:
        return await self._inner.publish_many(events)

    async def publish_message(self, events: Sequence[Event]) -> list[Position]:
        return await self._inner.publish_message(events)


async def test_a_reader_that_loses_chunks_ends_with_the_canonical_transcript(
    settings: Settings,
) -> None:
    from runwire.log import Publisher

    model = LocalModel(chunk_chars=2, chunk_interval=0.01)
    async with Publisher(settings) as publisher:
        lossy = DroppingWriter(publisher)
        async with (
            orchestrator_service(settings, provider=model, publisher=lossy, history=False),
            tool_runner_service(settings),
            Client(settings) as rw,
        ):
            handle = await rw.run("helper", ARITHMETIC)
            read = await collect(handle)
            outcome = await handle.wait(timeout=30)
    assert outcome.status is RunStatus.COMPLETED, outcome.events
    assert lossy.dropped > 0
    # The reader saw the gaps while the answers streamed...
    view = LiveView()
    gapped = False
    for event in read:
        if event.stream is Stream.LIVE:
            view.live(event)
            gapped = gapped or any(a.gapped for a in view.pending.values())
        else:
            view.canonical(event)
    assert gapped
    # ...and still ends with exactly the log.
    assert not view.pending
    assert view.ended
    assert_exactly_the_log(read, outcome.events, handle.run_id)


ANSWER = "The whole answer, every word of it, as the model meant it."


async def run_on_fake(
    settings: Settings, *replies: Reply
) -> tuple[RunHandle, list[Event], RunOutcome, FakeOpenAIServer]:
    """A run answered by the fake OpenAI server's ``replies``, read by a streaming reader."""
    async with FakeOpenAIServer() as fake:
        fake.enqueue(*replies)
        mine = openai_settings(settings, fake)
        async with (
            orchestrator_service(mine, retry_policy=FAST_RETRIES, history=False),
            Client(mine) as rw,
        ):
            handle = await rw.run("helper", "hi")
            read = await collect(handle)
            outcome = await handle.wait(timeout=30)
    return handle, read, outcome, fake


async def test_a_stream_dropped_mid_answer_is_retried_and_only_the_full_answer_is_logged(
    settings: Settings,
) -> None:
    turn = Turn(parts=(TextPart(text=ANSWER),), chunk_chars=5, chunk_delay=0.05)
    handle, read, outcome, fake = await run_on_fake(
        settings, StreamDrop(after_events=6, turn=turn), turn
    )
    assert outcome.status is RunStatus.COMPLETED, outcome.events
    texts = [e.payload.text for e in outcome.events if isinstance(e.payload, AssistantText)]
    assert texts == [ANSWER]
    assert len(fake.requests) == 2
    assert_exactly_the_log(read, outcome.events, handle.run_id)
    # Both attempts streamed, each under its own id: readers start over on the retry.
    streams = {e.payload.stream_id for e in read if isinstance(e.payload, LiveChunk)}
    assert len(streams) == 2


async def test_a_stream_that_keeps_dropping_fails_the_run_with_the_reason(
    settings: Settings,
) -> None:
    turn = Turn(parts=(TextPart(text=ANSWER),), chunk_chars=5)
    drops = [StreamDrop(after_events=4, turn=turn)] * FAST_RETRIES.max_attempts
    handle, read, outcome, _ = await run_on_fake(settings, *drops)
    assert outcome.status is RunStatus.FAILED, outcome.events
    assert isinstance(outcome.error, RunFailed)
    assert outcome.error.error_kind == "incomplete_stream"
    assert "finish_reason" in outcome.error.message
    assert outcome.error.retryable
    # No half answer in the log, and none left on the reader's screen.
    assert not [e for e in outcome.events if e.type is EventType.ASSISTANT_TEXT]
    assert_exactly_the_log(read, outcome.events, handle.run_id)


async def test_an_sse_reader_sees_the_answer_stream_then_exactly_the_log(
    settings: Settings,
) -> None:
    # A second of thought, then seconds of writing: the reader is there before the end.
    model = LocalModel(chunk_chars=2, chunk_interval=0.03, latency=1.0)
    async with (
        projectors(settings),
        orchestrator_service(settings, provider=model, history=False),
        api(settings) as rw,
    ):
        started = await rw.http.post(
            "/v1/runs", json={"prompt": "my name is Ada", "agent_id": "helper"}, headers=auth(ALICE)
        )
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        stream = await read_sse(rw.http, run_id, ALICE, live=True)
        plain = await read_sse(rw.http, run_id, ALICE)
        log = [r.event for r in await read_run_log(settings) if r.event.run_id == run_id]
    assert stream[-1].event == "end"
    assert stream[-1].data == {"run_id": run_id, "status": "completed"}
    kinds = [m.event for m in stream]
    assert "live_chunk" in kinds
    assert kinds.index("live_chunk") < kinds.index("assistant_text")
    assert all(m.id is None for m in stream if m.event.startswith("live_"))
    # The canonical messages are the log, exactly; without ?live=true, only them.
    assert [m.id for m in stream if m.id is not None] == [e.event_id for e in log]
    assert [m.id for m in plain[:-1]] == [e.event_id for e in log]
