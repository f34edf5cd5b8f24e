"""The event models: envelope rules, payload typing, JSON values, identity."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from runwire.contract import ids
from runwire.contract.events import (
    PAYLOAD_TYPES,
    AssistantText,
    Event,
    EventType,
    MemoryDeleted,
    MemorySet,
    SessionCleared,
    Stream,
    Thinking,
    ToolResult,
    ToolUse,
)
from runwire.contract.identity import StreamIds
from runwire.errors import DecodeError

UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_every_event_type_has_a_payload_model_named_after_it() -> None:
    assert set(PAYLOAD_TYPES) == set(EventType)
    for kind, cls in PAYLOAD_TYPES.items():
        assert cls.__name__ == "".join(w.capitalize() for w in kind.value.split("_"))


def test_streams_of_event_types() -> None:
    assert EventType.TOOL_USE.stream is Stream.RUN
    assert EventType.SESSION_DELETED.stream is Stream.SESSION
    assert EventType.MEMORY_DELETED.stream is Stream.MEMORY


def test_create_fills_type_id_and_time() -> None:
    event = Event.create(AssistantText(text="hi"), run_id="r1", producer="test")
    assert event.type is EventType.ASSISTANT_TEXT
    assert UUID7.match(event.event_id)
    assert event.occurred_at.tzinfo is not None
    assert event.occurred_at.microsecond % 1000 == 0


def test_uuid7_ids_are_time_ordered() -> None:
    first = [ids.new_event_id() for _ in range(100)]
    assert first == sorted(first)


def test_deterministic_ids_are_stable_and_distinct() -> None:
    a = Event.create(AssistantText(text="x"), run_id="r", causation_id="c", index=0)
    b = Event.create(AssistantText(text="y"), run_id="r", causation_id="c", index=0)
    c = Event.create(AssistantText(text="x"), run_id="r", causation_id="c", index=1)
    assert a.event_id == b.event_id == ids.deterministic_event_id("r", "c", 0)
    assert c.event_id != a.event_id
    assert ids.deterministic_event_id("a", "bc", 0) != ids.deterministic_event_id("ab", "c", 0)


def test_event_ids_must_be_uuids_and_are_kept_canonical() -> None:
    upper = "0191C3E2-7A4B-7C3D-8E9F-0A1B2C3D4E5F"
    event = Event.create(AssistantText(text="a"), run_id="r", event_id=upper)
    assert event.event_id == upper.lower()
    with pytest.raises(ValidationError, match="event_id must be a UUID, got 'nope'"):
        Event.create(AssistantText(text="a"), run_id="r", event_id="nope")


def test_payload_class_must_match_type() -> None:
    with pytest.raises(ValidationError, match="payload is AssistantText but type 'tool_use'"):
        Event(
            event_id=ids.new_event_id(),
            run_id="r",
            type=EventType.TOOL_USE,
            occurred_at=datetime.now(UTC),
            producer="p",
            payload=AssistantText(text="a"),
        )


def test_raw_payload_is_resolved_by_type() -> None:
    event = Event.model_validate(
        {
            "event_id": ids.new_event_id(),
            "run_id": "r",
            "type": "tool_result",
            "occurred_at": "2025-01-02T03:04:05.678901Z",
            "producer": "p",
            "payload": {"tool_use_id": "t", "content": [1, "two"], "is_error": True},
        }
    )
    assert event.payload == ToolResult(tool_use_id="t", content=[1, "two"], is_error=True)
    assert event.occurred_at == datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def test_unknown_type_names_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        Event.model_validate(
            {
                "event_id": ids.new_event_id(),
                "type": "nope",
                "occurred_at": datetime.now(UTC),
                "producer": "p",
            }
        )
    assert ("type",) in [err["loc"] for err in info.value.errors()]
    assert "nope" in str(info.value)


def test_run_events_need_a_run_id_and_session_events_a_session_id() -> None:
    with pytest.raises(ValidationError, match="run_id is required for tool_use"):
        Event.create(ToolUse(id="t", name="n"))
    with pytest.raises(ValidationError, match="session_id is required for session_cleared"):
        Event.create(SessionCleared())
    assert Event.create(MemoryDeleted(scope="user", owner="u", key="k")).run_id is None


def test_occurred_at_is_utc_millis_and_must_be_aware() -> None:
    local = datetime(2025, 1, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    event = Event.create(AssistantText(text="a"), run_id="r", occurred_at=local)
    assert event.occurred_at == datetime(2025, 1, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(0)
    with pytest.raises(ValidationError, match="timezone-aware"):
        Event.create(AssistantText(text="a"), run_id="r", occurred_at=datetime(2025, 1, 1))


@pytest.mark.parametrize(
    "bad",
    [
        {"a": {1, 2}},
        {"a": float("nan")},
        {"a": [float("inf")]},
        {"a": b"bytes"},
        {1: "non-str key"},
        {"a": {1: "nested non-str key"}},
        {"a": (1, 2)},
        {"a": datetime(2025, 1, 1, tzinfo=UTC)},
    ],
)
def test_json_values_are_checked_and_the_error_names_the_field(bad: object) -> None:
    with pytest.raises(ValidationError) as info:
        ToolUse(id="t", name="n", input=bad)
    assert info.value.errors()[0]["loc"][0] == "input"


def test_models_are_frozen_and_strict_about_fields() -> None:
    part = AssistantText(text="a")
    with pytest.raises(ValidationError):
        part.text = "b"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra_field"):
        AssistantText(text="a", extra_field=1)  # type: ignore[call-arg]


def test_json_round_trip_keeps_redacted_bytes() -> None:
    blob = bytes(range(256))
    event = Event.create(Thinking(redacted=blob, index=0, final=True), run_id="r")
    again = Event.model_validate_json(event.model_dump_json())
    assert again == event
    assert isinstance(again.payload, Thinking)
    assert again.payload.redacted == blob


def test_payload_errors_name_the_field_under_payload() -> None:
    with pytest.raises(ValidationError) as info:
        Event.model_validate(
            {
                "event_id": ids.new_event_id(),
                "run_id": "r",
                "type": "tool_use",
                "occurred_at": datetime.now(UTC),
                "producer": "p",
                "payload": {"id": "t", "input": {"x": float("inf")}},
            }
        )
    locations = {err["loc"] for err in info.value.errors()}
    assert locations == {("payload", "name"), ("payload", "input")}
    assert "inf" in str(info.value)


def test_stream_ids_drop_repeats_refuse_other_bodies_and_keep_streams_apart() -> None:
    ids = StreamIds()
    first = Event.create(MemorySet(scope="user", owner="u", key="k", value=1))
    assert ids.admit(first, b"a")
    assert not ids.admit(first.model_copy(update={"producer": "again"}), b"a")
    other = first.model_copy(
        update={"payload": MemorySet(scope="user", owner="u", key="k", value=2)}
    )
    with pytest.raises(DecodeError) as refused:
        ids.admit(other, b"a")
    assert refused.value.reason == "conflicting_duplicate_event"
    assert ids.admit(other, b"b"), "another stream, another event"


def test_stream_ids_forget_the_oldest_beyond_their_limit() -> None:
    ids = StreamIds(limit=2)
    events = [Event.create(MemorySet(scope="user", owner="u", key="k", value=i)) for i in range(3)]
    assert all(ids.admit(e, b"a") for e in events)
    assert ids.admit(events[0], b"a"), "forgotten: read as new"
    assert not ids.admit(events[2], b"a")
