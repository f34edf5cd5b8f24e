"""The ledger fed from the log: build_messages_from_events and TranscriptBuilder."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runwire.contract.codec import default_codec
from runwire.contract.events import (
    AssistantText,
    Event,
    EventPayload,
    PlannerNote,
    RunStarted,
    RunStatus,
    RunStatusChanged,
    Thinking,
    ToolResult,
    ToolUse,
    Usage,
    UserMessage,
)
from runwire.errors import ContractError
from runwire.transcript.errors import LedgerError
from runwire.transcript.ledger import (
    Ledger,
    LedgerState,
    TranscriptBuilder,
    TranscriptState,
    build_messages_from_events,
    payloads_for_messages,
)
from runwire.transcript.messages import (
    Message,
    Part,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
)
from tests.support.transcript_strategies import events_for, transcripts

RUN = "run-42"


def ev(payload: EventPayload, *, run_id: str = RUN, event_id: str | None = None) -> Event:
    return Event.create(payload, run_id=run_id, producer="test", event_id=event_id)


def two_turn_events() -> list[Event]:
    return [
        ev(RunStarted(agent_id="a1")),
        ev(UserMessage(parts=["find pumps"])),
        ev(RunStatusChanged(status=RunStatus.RUNNING)),
        ev(Thinking(text="plan", signature="sig-1", index=0, final=True)),
        ev(AssistantText(text="calling ")),
        ev(AssistantText(text="tools")),
        ev(ToolUse(id="tu1", name="search", input={"q": "pump"})),
        ev(ToolUse(id="tu2", name="lookup", input={"id": 7})),
        ev(Usage(model="m", provider="anthropic", input_tokens=10)),
        ev(ToolResult(tool_use_id="tu2", content={"found": 1})),
        ev(PlannerNote(text="waiting on tu1")),
        ev(ToolResult(tool_use_id="tu1", content="boom", is_error=True)),
        ev(Thinking(redacted=b"\xff\x00secret")),
        ev(AssistantText(text="one pump found")),
        ev(UserMessage(parts=["thanks", "bye"])),
    ]


EXPECTED = [
    Message(role="user", parts=(TextPart(text="find pumps"),)),
    Message(
        role="assistant",
        parts=(
            ThinkingPart(text="plan", signature="sig-1"),
            TextPart(text="calling tools"),
            ToolUsePart(id="tu1", name="search", input={"q": "pump"}),
            ToolUsePart(id="tu2", name="lookup", input={"id": 7}),
        ),
    ),
    Message(
        role="user",
        parts=(
            ToolResultPart(tool_use_id="tu1", content="boom", is_error=True),
            ToolResultPart(tool_use_id="tu2", content={"found": 1}),
        ),
    ),
    Message(
        role="assistant",
        parts=(ThinkingPart(redacted=b"\xff\x00secret"), TextPart(text="one pump found")),
    ),
    Message(role="user", parts=(TextPart(text="thanks"), TextPart(text="bye"))),
]


def test_events_build_the_multi_turn_transcript_and_other_events_make_no_message() -> None:
    assert build_messages_from_events(two_turn_events()) == EXPECTED


def test_building_from_events_is_deterministic() -> None:
    events = two_turn_events()
    assert build_messages_from_events(events) == build_messages_from_events(list(events))


def test_incremental_fold_matches_the_batch_build_at_every_prefix() -> None:
    events = two_turn_events()
    builder = TranscriptBuilder()
    for i, event in enumerate(events):
        builder.apply(event)
        assert builder.messages() == build_messages_from_events(events[: i + 1])
    assert builder.run_id == RUN


def test_state_dumped_to_json_and_restored_folds_on_identically() -> None:
    events = two_turn_events()
    for cut in range(len(events) + 1):
        first = TranscriptBuilder()
        first.apply_all(events[:cut])
        state = TranscriptState.model_validate_json(first.state.model_dump_json())
        second = TranscriptBuilder(state=state)
        second.apply_all(events[cut:])
        assert second.messages() == EXPECTED


def test_awaiting_tool_results_tracks_the_open_tool_calls() -> None:
    events = two_turn_events()
    builder = TranscriptBuilder()
    builder.apply_all(events[:8])
    assert builder.awaiting_tool_results == []  # the assistant message is still open
    builder.apply(events[9])  # result for tu2 closes it
    assert builder.awaiting_tool_results == ["tu1"]
    builder.apply(events[11])
    assert builder.awaiting_tool_results == []


def test_an_event_breaking_a_rule_names_the_run_the_event_and_the_rule() -> None:
    builder = TranscriptBuilder()
    builder.apply_all(two_turn_events()[:8])
    orphan = ev(ToolResult(tool_use_id="nope", content=1))
    with pytest.raises(LedgerError) as info:
        builder.apply(orphan)
    err = info.value
    assert isinstance(err, ContractError)
    assert (err.run_id, err.event_id, err.rule) == (RUN, orphan.event_id, "unknown_tool_use")
    for name in (RUN, orphan.event_id, "unknown_tool_use"):
        assert name in str(err)


def test_a_duplicate_tool_use_id_is_refused_with_its_event() -> None:
    builder = TranscriptBuilder()
    builder.apply_all(two_turn_events()[:8])
    again = ev(ToolUse(id="tu1", name="search", input={}))
    with pytest.raises(LedgerError) as info:
        builder.apply(again)
    assert (info.value.rule, info.value.event_id) == ("duplicate_tool_use_id", again.event_id)


def test_a_refused_event_leaves_the_state_unchanged() -> None:
    builder = TranscriptBuilder()
    builder.apply_all(two_turn_events()[:10])
    before = builder.state
    with pytest.raises(LedgerError):
        builder.apply(ev(AssistantText(text="too early: tu1 has no result")))
    assert builder.state == before


def test_a_repeated_event_is_dropped_and_a_conflicting_one_refused() -> None:
    events = two_turn_events()
    builder = TranscriptBuilder()
    builder.apply_all(events)
    # a retried publish: same id, same body
    assert builder.apply(events[6]) is False
    assert builder.apply(events[13]) is False
    assert builder.messages() == EXPECTED
    conflicting = ev(AssistantText(text="another answer"), event_id=events[13].event_id)
    with pytest.raises(LedgerError) as info:
        builder.apply(conflicting)
    assert info.value.rule == "conflicting_duplicate_event"
    assert builder.messages() == EXPECTED


def test_events_of_another_run_are_refused() -> None:
    builder = TranscriptBuilder(RUN)
    with pytest.raises(LedgerError) as info:
        builder.apply(ev(UserMessage(parts=["hi"]), run_id="other"))
    assert info.value.rule == "wrong_run"
    with pytest.raises(LedgerError):
        build_messages_from_events(
            [ev(UserMessage(parts=["a"])), ev(UserMessage(parts=["b"]), run_id="other")]
        )


def test_unsigned_thinking_events_make_no_part() -> None:
    events = [
        ev(UserMessage(parts=["hi"])),
        ev(Thinking(text="streamed preview", final=False)),
        ev(Thinking(text="full", signature="s", index=0, final=True)),
        ev(AssistantText(text="hello")),
    ]
    assert build_messages_from_events(events)[1].parts == (
        ThinkingPart(text="full", signature="s"),
        TextPart(text="hello"),
    )


def test_payloads_for_messages_rebuild_the_same_messages() -> None:
    payloads = payloads_for_messages(EXPECTED)
    assert [p.event_type.value for p in payloads] == [
        "user_message",
        "thinking",
        "assistant_text",
        "tool_use",
        "tool_use",
        "tool_result",
        "tool_result",
        "thinking",
        "assistant_text",
        "user_message",
    ]
    assert build_messages_from_events([ev(p) for p in payloads]) == EXPECTED


@settings(max_examples=150, deadline=None)
@given(transcripts(), st.booleans())
def test_random_transcripts_survive_events_avro_and_back(
    messages: list[Message], restore_midway: bool
) -> None:
    """build -> events -> Avro bytes -> events -> build gives the same messages."""
    codec = default_codec()
    events = [codec.decode(codec.encode(e)) for e in events_for(messages, RUN)]
    assert build_messages_from_events(events) == messages
    # the same through the incremental fold, with its state through JSON half-way
    builder = TranscriptBuilder()
    half = len(events) // 2
    builder.apply_all(events[:half])
    if restore_midway:
        builder = TranscriptBuilder(
            state=TranscriptState.model_validate_json(builder.state.model_dump_json())
        )
    builder.apply_all(events[half:])
    assert builder.messages() == messages


def test_states_taken_along_a_fold_keep_what_they_held() -> None:
    # The ledger empties and refills its lists in place: a state it gave out
    # must not see what comes after.
    events = two_turn_events()
    builder = TranscriptBuilder()
    taken: list[tuple[TranscriptState, str]] = []
    for event in events:
        builder.apply(event)
        state = builder.state
        taken.append((state, state.model_dump_json()))
    for i, (state, dumped) in enumerate(taken):
        assert state.model_dump_json() == dumped
        assert TranscriptBuilder(state=state).messages() == build_messages_from_events(
            events[: i + 1]
        )


@settings(max_examples=60)
@given(transcripts(thinking=True))
def test_committed_messages_are_the_models_validation_would_make(messages: list[Message]) -> None:
    # The ledger commits messages without validating the parts it made again:
    # each must be the message pydantic's validation builds of the same fields.
    builder = TranscriptBuilder(RUN)
    for event in events_for(messages, RUN):
        builder.apply(event)
    built = builder.messages()
    assert built == messages
    for message in built:
        validated = Message(role=message.role, parts=message.parts)
        assert message == validated
        assert message.model_fields_set == validated.model_fields_set
        assert message.model_dump_json() == validated.model_dump_json()
        assert [type(p) for p in message.parts] == [type(p) for p in validated.parts]


def _every_part(state: LedgerState) -> list[Part]:
    return [
        *(p for m in state.messages for p in m.parts),
        *state.assistant,
        *state.results,
        *state.user_text,
    ]


@settings(max_examples=100, deadline=None)
@given(transcripts(thinking=True), st.booleans())
def test_a_builder_makes_the_parts_a_validating_ledger_makes(
    messages: list[Message], through_avro: bool
) -> None:
    # A builder's ledger makes its parts of payload fields without validating
    # them again; a ledger fed the same payloads by hand validates each part.
    # Both must hold the same parts, down to their fields set and JSON.
    events = events_for(messages, RUN)
    if through_avro:
        codec = default_codec()
        events = [codec.decode(codec.encode(e)) for e in events]
    builder = TranscriptBuilder(RUN)
    by_hand = Ledger()
    for event in events:
        builder.apply(event)
        TranscriptBuilder._fold_into(by_hand, event.payload)
    built, validated = _every_part(builder.state.ledger), _every_part(by_hand.state)
    assert built == validated
    for mine, theirs in zip(built, validated, strict=True):
        assert type(mine) is type(theirs)
        assert list(mine.__dict__) == list(theirs.__dict__)
        assert mine.model_fields_set == theirs.model_fields_set
        assert mine.model_dump_json() == theirs.model_dump_json()
        assert mine.model_dump_json(exclude_unset=True) == theirs.model_dump_json(
            exclude_unset=True
        )
    assert builder.messages() == by_hand.build_messages() == messages
