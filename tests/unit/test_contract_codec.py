"""The codec: round trips, framings, typed decode errors, the size limit."""

from __future__ import annotations

import io
import json

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import HealthCheck, given, settings
from pydantic import ValidationError

from runwire.contract.codec import (
    REASONS,
    Codec,
    EventTooLargeError,
    InMemorySchemaLookup,
    default_codec,
)
from runwire.contract.events import AssistantText, Event, EventType, ToolUse, UserMessage
from runwire.contract.framing import Framing, read_header
from runwire.contract.records import to_record
from runwire.contract.schemas import released_schemas
from runwire.errors import ConfigurationError, DecodeError
from tests.support.event_samples import events, sample_event

CODEC = default_codec()


@pytest.mark.parametrize("event_type", list(EventType), ids=str)
def test_every_type_round_trips(event_type: EventType) -> None:
    event = sample_event(event_type)
    data = CODEC.encode(event)
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == released_schemas().latest(event_type).fingerprint
    decoded = CODEC.decode(data)
    assert decoded == event
    assert type(decoded.payload) is type(event.payload)
    assert decoded.model_dump() == event.model_dump()


@given(events())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_random_events_round_trip(event: Event) -> None:
    decoded = CODEC.decode(CODEC.encode(event))
    assert decoded == event
    # Decoded events behave like validated ones (they can be re-validated).
    assert Event.model_validate(decoded.model_dump()) == event


@pytest.mark.parametrize("event_type", list(EventType), ids=str)
def test_the_body_is_plain_avro_for_any_reader(event_type: EventType) -> None:
    """A service in another language needs only the .avsc file to read the body."""
    event = sample_event(event_type)
    data = CODEC.encode(event)
    schema = released_schemas().latest(event_type)
    parsed = parse_schema(dict(schema.definition))
    record = schemaless_reader(io.BytesIO(data[10:]), parsed, None)
    assert isinstance(record, dict)
    assert record["type"] == event_type.value
    assert str(record["event_id"]) == event.event_id
    for name in schema.json_fields:
        assert json.loads(record["payload"][name]) == getattr(event.payload, name)


def test_json_text_keeps_key_order_and_unicode() -> None:
    event = Event.create(ToolUse(id="t", name="n", input={"b": 1, "a": "é"}), run_id="r")
    assert to_record(event)["payload"]["input"] == '{"b":1,"a":"é"}'


# -- bad bytes -----------------------------------------------------------------


def _reason(data: bytes, codec: Codec = CODEC) -> str:
    with pytest.raises(DecodeError) as info:
        codec.decode(data)
    assert info.value.reason in REASONS
    return info.value.reason


def test_bad_magic() -> None:
    assert _reason(b"\x7b\x22json\x22: 1}") == "bad_magic"
    assert _reason(b"\xc3\x02" + bytes(20)) == "bad_magic"


def test_truncated_header_and_body() -> None:
    data = CODEC.encode(sample_event(EventType.TOOL_USE))
    assert _reason(b"") == "truncated"
    assert _reason(b"\xc3") == "truncated"
    assert _reason(data[:7]) == "truncated"
    assert _reason(data[:-3]) == "truncated"
    assert _reason(b"\x00\x00\x01") == "truncated"


def test_unknown_fingerprint_names_it() -> None:
    data = CODEC.encode(sample_event(EventType.TOOL_USE))
    forged = data[:2] + bytes(8) + data[10:]
    with pytest.raises(DecodeError, match="fingerprint 0000000000000000") as info:
        CODEC.decode(forged)
    assert info.value.reason == "unknown_fingerprint"


def test_invalid_body_and_trailing_bytes() -> None:
    data = CODEC.encode(sample_event(EventType.TOOL_USE))
    assert _reason(data + b"\x00") == "invalid_body"
    # A union branch index of 9 in the first nullable field is no branch at all.
    header, body = data[:10], bytearray(data[10:])
    body[37] = 18  # zig-zag 9 where run_id's union index is
    assert _reason(header + bytes(body)) == "invalid_body"


def _frame_record(event_type: EventType, record: dict[str, object]) -> bytes:
    schema = released_schemas().latest(event_type)
    buffer = io.BytesIO()
    buffer.write(b"\xc3\x01" + schema.fingerprint)
    schemaless_writer(buffer, parse_schema(dict(schema.definition)), record)
    return buffer.getvalue()


def test_records_that_break_event_rules_are_invalid_events() -> None:
    """What Avro cannot say is still checked: a foreign producer cannot sneak it in."""
    good = to_record(sample_event(EventType.TOOL_USE))
    cases = {
        "payload.input is not JSON text": {**good, "payload": {**good["payload"], "input": "{"}},
        "payload.input must be a JSON object": {
            **good,
            "payload": {**good["payload"], "input": "[1]"},
        },
        "payload.input is not JSON text: NaN is not a JSON number": {
            **good,
            "payload": {**good["payload"], "input": '{"x": NaN}'},
        },
        "run_id is required": {**good, "run_id": None},
        "does not match the schema": {**good, "type": "assistant_text"},
        "event_id must be a UUID": {**good, "event_id": "not-a-uuid"},
    }
    for message, record in cases.items():
        with pytest.raises(DecodeError, match=message) as info:
            CODEC.decode(_frame_record(EventType.TOOL_USE, record))
        assert info.value.reason == "invalid_event"


# -- Confluent framing and lookups --------------------------------------------


def test_confluent_framing_round_trips_through_a_lookup() -> None:
    lookup = InMemorySchemaLookup()
    schema = released_schemas().latest(EventType.ASSISTANT_TEXT)
    schema_id = lookup.register(json.dumps(schema.definition), schema_id=42)
    assert lookup.register(json.dumps(schema.definition)) == 42  # same schema, same id
    writer = Codec(framing=Framing.CONFLUENT, lookup=lookup)
    event = sample_event(EventType.ASSISTANT_TEXT)
    data = writer.encode(event)
    assert data[:5] == b"\x00\x00\x00\x00\x2a"
    assert read_header(data).schema_id == schema_id
    assert Codec(lookup=lookup).decode(data) == event
    # Without a lookup the id means nothing.
    assert _reason(data) == "unknown_schema_id"
    assert _reason(b"\x00\x00\x00\x00\x07" + data[5:], Codec(lookup=lookup)) == "unknown_schema_id"


def test_confluent_framing_needs_a_lookup_and_registered_schemas() -> None:
    with pytest.raises(ConfigurationError, match="needs a schema lookup"):
        Codec(framing=Framing.CONFLUENT)
    codec = Codec(framing=Framing.CONFLUENT, lookup=InMemorySchemaLookup())
    with pytest.raises(ConfigurationError, match="ToolUseEvent v1 has no registry id"):
        codec.encode(sample_event(EventType.TOOL_USE))


def test_a_lookup_resolves_schemas_that_are_not_released_here() -> None:
    """A newer producer's schema (an extra field with a default) is read as ours."""
    newer = json.loads(json.dumps(released_schemas().latest(EventType.ASSISTANT_TEXT).definition))
    payload = next(f for f in newer["fields"] if f["name"] == "payload")["type"]
    payload["fields"].append({"name": "lang", "type": "string", "default": "en"})
    lookup = InMemorySchemaLookup()
    lookup.register(json.dumps(newer))
    event = sample_event(EventType.ASSISTANT_TEXT)
    record = to_record(event)
    record["payload"]["lang"] = "fr"
    buffer = io.BytesIO()
    schemaless_writer(buffer, parse_schema(newer), record)
    from runwire.contract.schemas import build_event_schema

    fingerprint = build_event_schema(newer, EventType.ASSISTANT_TEXT).fingerprint
    data = b"\xc3\x01" + fingerprint + buffer.getvalue()
    assert _reason(data) == "unknown_fingerprint"
    assert Codec(lookup=lookup).decode(data) == event


def test_a_foreign_schema_of_no_runwire_type_is_unknown_type() -> None:
    lookup = InMemorySchemaLookup()
    schema_id = lookup.register(
        json.dumps({"type": "record", "name": "x.Other", "fields": [{"name": "a", "type": "int"}]})
    )
    data = b"\x00" + schema_id.to_bytes(4, "big") + b"\x02"
    assert _reason(data, Codec(lookup=lookup)) == "unknown_type"


# -- size limit ----------------------------------------------------------------


def test_events_over_the_size_limit_are_refused_with_the_setting_named() -> None:
    codec = Codec(max_event_bytes=1_000)
    small = Event.create(AssistantText(text="x" * 100), run_id="r-big")
    assert codec.decode(codec.encode(small)) == small
    big = Event.create(AssistantText(text="x" * 2_000), run_id="r-big")
    with pytest.raises(
        EventTooLargeError, match=r"run r-big\) is 2\d\d\d bytes encoded.*max_event_bytes=1000"
    ):
        codec.encode(big)


def test_decoded_events_are_ordinary_models() -> None:
    event = sample_event(EventType.RUN_STATUS_CHANGED)
    decoded = CODEC.decode(CODEC.encode(event))
    assert decoded.model_fields_set == set(Event.model_fields)
    changed = decoded.model_copy(update={"labels": {"x": "y"}})
    assert changed.labels == {"x": "y"}
    assert decoded.labels == {"priority": "high"}
    assert hash(decoded.payload) == hash(event.payload)
    assert decoded.model_dump_json() == event.model_dump_json()
    with pytest.raises(ValidationError):
        decoded.producer = "other"  # type: ignore[misc]


def test_another_producers_uuid_text_names_the_same_event() -> None:
    """An uppercase UUID (other languages' default text) is normalised on read; a value
    that is no UUID is refused, naming the field."""
    codec = Codec()
    event = Event.create(UserMessage(parts=["hi"]), run_id="r1")
    shouting = codec.encode(event).replace(event.event_id.encode(), event.event_id.upper().encode())
    assert event.event_id.upper().encode() in shouting
    assert codec.decode(shouting).event_id == event.event_id
    broken = codec.encode(event).replace(event.event_id.encode(), b"x" * 36)
    with pytest.raises(DecodeError) as refused:
        codec.decode(broken)
    assert refused.value.reason == "invalid_event"
    assert "event_id must be a UUID" in str(refused.value)
