"""Live chunks without the stack: how deltas become records, how readers fold them."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Sequence
from typing import Any

from runwire.contract.events import (
    AssistantText,
    Event,
    LiveChunk,
    LiveToolStarted,
    RunCompleted,
    RunStatus,
    RunStatusChanged,
    ToolResult,
)
from runwire.log import Position
from runwire.log.inmem import InMemoryLog
from runwire.log.live import LiveEmitter
from runwire.providers.base import StreamDelta
from runwire.services.orchestrator.streaming import ChunkStream
from runwire.services.run_context import RunContext
from runwire.settings import Settings
from runwire.transcript.live import LiveView

CONTEXT = RunContext(run_id="run-1", session_id="s-1")


class GatedWriter:
    """A writer whose sends wait for the test to let them through."""

    def __init__(self) -> None:
        self.sent: list[Event] = []
        self.gate = asyncio.Event()
        self.fail = False

    async def publish(self, event: Event) -> Position:
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("broker gone")
        self.sent.append(event)
        return Position("live", 0, len(self.sent) - 1)

    async def publish_many(self, events: Sequence[Event]) -> list[Position]:
        return [await self.publish(e) for e in events]

    async def publish_message(self, events: Sequence[Event]) -> list[Position]:
        return await self.publish_many(events)


def text(piece: str, index: int = 1, kind: Any = "text") -> StreamDelta:
    return StreamDelta(kind=kind, index=index, text=piece)


async def test_the_first_delta_goes_alone_and_the_rest_batch_while_it_is_in_flight() -> None:
    writer = GatedWriter()
    stream = ChunkStream(writer, CONTEXT, "cause-1", producer="test")
    await stream.on_chunk(text("Hel", kind="thinking", index=0))
    for piece in ("lo", ", ", "world"):
        await stream.on_chunk(text(piece))
    await stream.on_chunk(text("!", index=2))
    writer.gate.set()
    await stream.flush()
    assert [e.payload.seq for e in writer.sent] == [0, 1]  # type: ignore[union-attr]
    first, second = (e.payload for e in writer.sent)
    assert isinstance(first, LiveChunk)
    assert isinstance(second, LiveChunk)
    assert first.deltas == [{"kind": "thinking", "index": 0, "text": "Hel"}]
    # Consecutive pieces of one block merged; another block is its own item.
    assert second.deltas == [
        {"kind": "text", "index": 1, "text": "lo, world"},
        {"kind": "text", "index": 2, "text": "!"},
    ]
    assert {e.causation_id for e in writer.sent} == {"cause-1"}
    assert {e.run_id for e in writer.sent} == {"run-1"}
    assert first.stream_id == second.stream_id == stream.stream_id
    assert stream.records == 2
    assert stream.deltas == 5


async def test_a_record_holds_at_most_max_chars_and_a_long_piece_is_cut() -> None:
    writer = GatedWriter()
    stream = ChunkStream(writer, CONTEXT, "cause-1", producer="test", max_chars=4)
    await stream.on_chunk(text("ab"))
    await stream.on_chunk(text("cdefghij"))
    writer.gate.set()
    await stream.flush()
    pieces = [[d["text"] for d in e.payload.deltas] for e in writer.sent]  # type: ignore[union-attr]
    assert pieces == [["ab"], ["cdef"], ["ghij"]]


async def test_a_finished_stream_is_freed_without_the_garbage_collector() -> None:
    # A reference cycle (stream -> emitter -> stream) would keep every model
    # call's stream, send task and its context (the call's span) until a
    # collection; the orchestrator makes one per turn.
    writer = GatedWriter()
    writer.gate.set()
    gc.disable()
    try:
        stream = ChunkStream(writer, CONTEXT, "cause-1", producer="test")
        await stream.on_chunk(text("Hello"))
        await stream.on_chunk(text(", world"))
        await stream.flush()
        freed = weakref.ref(stream)
        del stream
        assert freed() is None
    finally:
        gc.enable()
    assert [d["text"] for e in writer.sent for d in e.payload.deltas] == [  # type: ignore[union-attr]
        "Hello",
        ", world",
    ]


async def test_deltas_pending_when_the_caller_lets_go_are_still_sent() -> None:
    writer = GatedWriter()
    stream = ChunkStream(writer, CONTEXT, "cause-1", producer="test")
    await stream.on_chunk(text("first"))
    await stream.on_chunk(text(" and the tail"))  # waits for the first send
    del stream  # the model call returned; the send in flight goes on
    writer.gate.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert [d["text"] for e in writer.sent for d in e.payload.deltas] == [  # type: ignore[union-attr]
        "first",
        " and the tail",
    ]


async def test_a_failed_live_send_is_dropped_not_raised() -> None:
    writer = GatedWriter()
    writer.fail = True
    emitter = LiveEmitter(writer)
    stream = ChunkStream(writer, CONTEXT, "cause-1", producer="test")
    await stream.on_chunk(text("lost"))
    writer.gate.set()
    await stream.flush()
    emitter.emit(live_chunk("c", "s", 0))
    await emitter.flush()
    assert emitter.dropped == 1
    assert emitter.sent == 0
    assert stream.records == 0


async def test_live_events_go_to_the_live_topic_keyed_by_run() -> None:
    settings = Settings(topic_prefix="t.")
    log = InMemoryLog(settings)
    stream = ChunkStream(log, CONTEXT, "cause-1", producer="test")
    await stream.on_chunk(text("hi"))
    await stream.flush()
    assert next(iter(log.records("t.runwire.live").values()))[0].key == b"run-1"
    assert not log.records("t.runwire.run-events")


def live_chunk(cause: str, stream_id: str, seq: int, piece: str = "x", index: int = 1) -> Event:
    return Event.create(
        LiveChunk(
            stream_id=stream_id, seq=seq, deltas=[{"kind": "text", "index": index, "text": piece}]
        ),
        run_id="run-1",
        causation_id=cause,
    )


def run_event(payload: Any, cause: str | None) -> Event:
    return Event.create(payload, run_id="run-1", causation_id=cause)


def test_the_view_shows_an_answer_until_its_canonical_part_lands() -> None:
    view = LiveView()
    view.canonical(run_event(RunStatusChanged(status=RunStatus.RUNNING), "d1"))  # the ack
    assert view.live(live_chunk("d1", "s1", 0, "Hel"))
    assert view.live(live_chunk("d1", "s1", 1, "lo"))
    assert view.text("d1") == "Hello"
    view.canonical(run_event(AssistantText(text="Hello!"), "d1"))
    assert view.pending == {}
    assert not view.live(live_chunk("d1", "s1", 2, " late"))  # after the answer: not shown


def test_the_view_drops_repeats_marks_gaps_and_starts_over_on_a_new_stream() -> None:
    view = LiveView()
    assert view.live(live_chunk("d1", "s1", 0, "a"))
    assert not view.live(live_chunk("d1", "s1", 0, "a"))  # a repeat
    assert view.live(live_chunk("d1", "s1", 2, "c"))  # seq 1 was lost
    assert view.pending["d1"].gapped
    assert view.text("d1") == "ac"
    assert view.live(live_chunk("d1", "s2", 0, "retry"))  # a retried call streams again
    assert view.text("d1") == "retry"
    assert not view.pending["d1"].gapped


def test_tool_events_settle_with_their_result_and_everything_with_the_end() -> None:
    view = LiveView()
    started = Event.create(
        LiveToolStarted(tool_use_id="t1", name="calculator"), run_id="run-1", causation_id="use-1"
    )
    assert view.live(started)
    view.canonical(run_event(ToolResult(tool_use_id="t1", content=84), "use-1"))
    assert not view.live(started)
    assert view.live(live_chunk("d2", "s1", 0))
    view.canonical(run_event(RunCompleted(), "d2"))
    assert view.ended
    assert view.pending == {}
    assert not view.live(live_chunk("d3", "s1", 0))


def test_a_view_holds_a_bounded_number_of_answers_and_settled_causes() -> None:
    # A hostile producer may write live chunks under any number of causes for a
    # run someone follows (and a run may settle any number of causes).
    from runwire.transcript import live

    view = LiveView()
    for i in range(live.MAX_PENDING + 50):
        assert view.live(live_chunk(f"d{i}", "s1", 0, "x"))
    assert len(view.pending) == live.MAX_PENDING
    newest = f"d{live.MAX_PENDING + 49}"
    assert view.text(newest) == "x"  # the newest are kept, the oldest dropped
    assert view.text("d0") == ""
    for i in range(live.MAX_SETTLED + 50):
        view.canonical(run_event(AssistantText(text="a"), f"c{i}"))
    assert len(view.settled) == live.MAX_SETTLED
    assert not view.live(live_chunk(f"c{live.MAX_SETTLED + 49}", "s1", 0))  # recent: still settled


def test_an_answer_keeps_a_bounded_text_and_says_pieces_are_missing() -> None:
    from runwire.transcript import live

    view = LiveView()
    piece = "y" * 100_000
    seq = 0
    while seq * len(piece) <= 2 * live.MAX_ANSWER_CHARS:
        view.live(live_chunk("d1", "s1", seq, piece))
        seq += 1
    assert len(view.text("d1")) <= live.MAX_ANSWER_CHARS
    assert view.pending["d1"].gapped  # what is shown is incomplete until the canonical part
    for index in range(2, live.MAX_BLOCKS + 50):  # blocks under made-up indexes
        view.live(live_chunk("d2", "s1", index - 2, "z", index=index))
    assert len(view.pending["d2"].blocks) == live.MAX_BLOCKS
    assert view.pending["d2"].gapped


async def answer_one_run(**options: Any) -> tuple[InMemoryLog, InMemoryLog]:
    """An orchestrator answering one run on in-memory logs: (its publisher, its live writer)."""
    from runwire.contract.events import RunStarted, UserMessage
    from runwire.providers.local import LocalModel
    from runwire.services.orchestrator.service import Orchestrator
    from tests.helpers import assert_eventually

    published, live = InMemoryLog(), InMemoryLog()
    async with LocalModel(chunk_chars=3) as model:
        orchestrator = Orchestrator(
            Settings(), provider=model, publisher=published, live_writer=live, **options
        )
        started = Event.create(RunStarted(agent_id="a"), run_id="r1", session_id="s")
        said = Event.create(UserMessage(parts=["My name is Ada."]), run_id="r1", session_id="s")
        orchestrator.assigned([0])
        orchestrator.apply(0, 0, started)
        orchestrator.apply(0, 1, said)
        orchestrator.caught_up(0)

        async def answered() -> bool:
            assert any(e.type.value == "run_completed" for e in published.events)
            return True

        await assert_eventually(answered, timeout=5)
        await asyncio.sleep(0.05)  # the last live record's send
        await orchestrator.revoked([0])
    return published, live


async def test_the_orchestrator_streams_to_its_live_writer_and_answers_on_its_publisher() -> None:
    published, live = await answer_one_run()
    assert {e.type.value for e in live.events} == {"live_chunk"}
    said = next(e for e in published.events if e.type.value == "assistant_text")
    assert {e.causation_id for e in live.events} == {said.causation_id}
    streamed = "".join(
        d["text"]
        for e in live.events
        for d in e.payload.deltas  # type: ignore[union-attr]
        if d["kind"] == "text"
    )
    assert streamed == said.payload.text  # type: ignore[union-attr]
    assert all(e.stream.value == "run" for e in published.events)


async def test_live_off_streams_nothing() -> None:
    published, live = await answer_one_run(live=False)
    assert live.events == []
    assert any(e.type.value == "assistant_text" for e in published.events)
