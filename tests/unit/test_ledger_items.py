"""Framework items in the transcript fold: kept, popped with what stands for them."""

from __future__ import annotations

import pytest

from runwire.contract.events import (
    AssistantText,
    Event,
    EventPayload,
    FrameworkItem,
    ItemPopped,
    RunStarted,
    ToolResult,
    ToolUse,
    UserMessage,
)
from runwire.log.records import SourceRecord
from runwire.projections.transcripts.body import decode_items, encode_body, restore_builder
from runwire.projections.transcripts.fold import fold_run
from runwire.projections.transcripts.store import UNKNOWN, RunBody, RunHead, RunMeta
from runwire.transcript.errors import LedgerError
from runwire.transcript.items import ITEMS_LABEL
from runwire.transcript.ledger import TranscriptBuilder, build_messages_from_events

RUN = "run-items"


def ev(payload: EventPayload) -> Event:
    return Event.create(payload, run_id=RUN, session_id="s1")


def item(events: int, item: object) -> Event:
    return ev(FrameworkItem(framework="openai_agents", item=item, events=events))


def item_run() -> list[Event]:
    """A turn written the way RunwireSession writes it: each item after its events."""
    return [
        ev(RunStarted(labels={ITEMS_LABEL: "openai_agents"})),
        ev(UserMessage(parts=["weather?"])),
        item(1, {"role": "user", "content": "weather?"}),
        item(0, {"type": "reasoning", "id": "rs_1", "encrypted_content": "xx"}),
        ev(ToolUse(id="c1", name="weather", input={})),
        item(1, {"type": "function_call", "call_id": "c1"}),
        ev(ToolResult(tool_use_id="c1", content="sunny")),
        item(1, {"type": "function_call_output", "call_id": "c1"}),
        ev(AssistantText(text="Sunny.")),
        item(1, {"type": "message", "role": "assistant"}),
    ]


def test_items_are_kept_in_order_beside_the_messages() -> None:
    builder = TranscriptBuilder(RUN)
    builder.apply_all(item_run())
    assert [i.item["type" if "type" in i.item else "role"] for i in builder.items()] == [
        "user",
        "reasoning",
        "function_call",
        "function_call_output",
        "message",
    ]
    assert builder.messages() == build_messages_from_events(
        [e for e in item_run() if not isinstance(e.payload, FrameworkItem)]
    )


def test_a_pop_takes_back_the_item_and_the_events_that_stand_for_it() -> None:
    events = item_run()
    builder = TranscriptBuilder(RUN)
    builder.apply_all(events)
    builder.apply(ev(ItemPopped(item_event_id=events[-1].event_id)))
    assert [i.event_id for i in builder.items()] == [events[i].event_id for i in (2, 3, 5, 7)]
    # The same messages as a run that never had the answer.
    assert builder.messages() == build_messages_from_events(events[:-2])
    assert builder.rewinds == 1
    # An item with no canonical form goes alone.
    builder.apply(ev(ItemPopped(item_event_id=events[7].event_id)))
    builder.apply(ev(ItemPopped(item_event_id=events[5].event_id)))
    builder.apply(ev(ItemPopped(item_event_id=events[3].event_id)))
    assert builder.messages() == build_messages_from_events(events[:3])


def test_a_pop_that_would_break_the_transcript_is_refused_and_changes_nothing() -> None:
    events = item_run()[:-2]  # ends with the tool result
    builder = TranscriptBuilder(RUN)
    builder.apply_all(events)
    before = builder.state
    with pytest.raises(LedgerError) as refused:  # the call, while its result stays
        builder.apply(ev(ItemPopped(item_event_id=events[5].event_id)))
    assert refused.value.rule == "pop_breaks_transcript"
    assert builder.state == before
    with pytest.raises(LedgerError) as unknown:
        builder.apply(ev(ItemPopped(item_event_id="no-such-item")))
    assert unknown.value.rule == "unknown_item"


def test_outside_an_item_run_canonical_items_cannot_be_taken_back() -> None:
    builder = TranscriptBuilder(RUN)
    said = item(1, {"role": "user", "content": "hi"})
    builder.apply_all([ev(UserMessage(parts=["hi"])), said])
    with pytest.raises(LedgerError) as refused:
        builder.apply(ev(ItemPopped(item_event_id=said.event_id)))
    assert refused.value.rule == "item_not_retractable"
    with pytest.raises(LedgerError) as greedy:
        TranscriptBuilder(RUN).apply_all(
            [ev(RunStarted(labels={ITEMS_LABEL: "x"})), item(2, {"n": 1})]
        )
    assert greedy.value.rule == "item_claims_too_much"


def test_the_stored_body_keeps_the_items_and_restores_the_same_state() -> None:
    events = item_run()
    builder = TranscriptBuilder(RUN)
    for i, event in enumerate(events):
        builder.apply(event)
        restored = restore_builder(RUN, encode_body(builder))
        assert restored.state == builder.state, f"after event {i}"
        builder = restored
    state = decode_items(encode_body(builder).state)
    assert state is not None
    assert [i.event_id for i in state.items] == [i.event_id for i in builder.items()]
    plain = TranscriptBuilder(RUN)
    plain.apply(ev(UserMessage(parts=["no items"])))
    assert decode_items(encode_body(plain).state) is None
    assert not encode_body(plain).state.endswith(b"}]"), "runs without items store as before"


def _records(events: list[Event], first: int = 0) -> list[SourceRecord]:
    return [
        SourceRecord(
            topic="t",
            partition=0,
            offset=first + i,
            timestamp_ms=0,
            key=RUN.encode(),
            value=b"",
            headers=(),
            event=e,
        )
        for i, e in enumerate(events)
    ]


def test_the_cache_writes_a_popped_body_whole() -> None:
    events = item_run()
    folded = fold_run(RUN, UNKNOWN, None, _records(events))
    assert folded.write is not None
    assert isinstance(folded.write.body, RunBody)
    meta = folded.write.meta
    assert isinstance(meta, RunMeta)
    head = RunHead(meta=meta, has_body=True)
    popped = fold_run(
        RUN,
        head,
        folded.builder,
        _records([ev(ItemPopped(item_event_id=events[-1].event_id))], len(events)),
    )
    assert popped.write is not None
    assert isinstance(popped.write.body, RunBody), "committed messages changed: replaced"
    more = fold_run(
        RUN,
        RunHead(meta=popped.write.meta, has_body=True),
        popped.builder,
        _records([ev(AssistantText(text="Again."))], len(events) + 1),
    )
    assert more.write is not None
    assert not isinstance(more.write.body, RunBody), "then appends as usual"


def test_a_kept_payload_gives_back_redacted_bytes_whatever_their_base64() -> None:
    # Written as URL-safe base64 (pydantic's way): '-' and '_' must read back as
    # the bytes they stand for, not be dropped as the standard alphabet would.
    from runwire.contract.events import Thinking
    from runwire.transcript.items import KeptPayload

    for redacted in (b"\xfb\xff\xbf", b"\xf8" * 7, bytes(range(256))):
        payload = Thinking(redacted=redacted, index=0, final=True)
        assert KeptPayload.of(payload).payload(Thinking) == payload
