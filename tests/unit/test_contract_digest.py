"""The body digest read models store: the same value whichever way it is computed."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from runwire.contract.codec import default_codec
from runwire.contract.events import (
    PAYLOAD_TYPES,
    Event,
    EventType,
    ToolResult,
    ToolUse,
)
from runwire.contract.identity import body_digest, payload_digest
from tests.support.event_samples import events, json_values, sample_event


def _by_definition(event: Event) -> str:
    # The definition stored rows were digested with; it must never change.
    body = f"{event.payload.event_type.value}\x1f{event.payload.model_dump_json()}"
    return hashlib.sha256(body.encode()).hexdigest()[:32]


@pytest.mark.parametrize("event_type", list(EventType))
def test_digest_of_every_type_is_the_defined_one(event_type: EventType) -> None:
    event = sample_event(event_type)
    assert body_digest(event) == _by_definition(event)
    assert payload_digest(event.payload) == _by_definition(event)
    codec = default_codec()
    assert body_digest(codec.decode(codec.encode(event))) == _by_definition(event)


@given(events())
@settings(max_examples=200, deadline=None)
def test_digest_of_any_event_is_the_defined_one(event: Event) -> None:
    assert body_digest(event) == _by_definition(event)


def test_digest_is_pinned() -> None:
    # A stored digest from before the fast path: a change here breaks every
    # read model's duplicate detection for events applied before it.
    assert body_digest(sample_event(EventType.ASSISTANT_TEXT)) == "46d157f4ca806f0cb09bb97d99e02aa8"
    assert body_digest(sample_event(EventType.TOOL_USE)) == "4726443cce33eae8399347060f4d13d2"


@settings(max_examples=200, deadline=None)
@given(events())
def test_digest_of_any_decoded_event_is_the_defined_one(event: Event) -> None:
    # Decoded payloads are made from the Avro record, not validated by pydantic.
    codec = default_codec()
    assert body_digest(codec.decode(codec.encode(event))) == _by_definition(event)


# Numbers orjson does not write (past 64 bits, Decimals jsonvalues reads from
# long decimals): the digest falls back to pydantic's serializer for them.
_numbers_beyond = (
    st.integers(min_value=2**64, max_value=2**300)
    | st.integers(min_value=-(2**300), max_value=-(2**63) - 1)
    | st.decimals(allow_nan=False, allow_infinity=False, places=30)
)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        json_values | _numbers_beyond,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=8,
    )
)
def test_digest_of_numbers_only_pydantic_writes_is_the_defined_one(value: Any) -> None:
    for payload in (
        ToolResult.model_construct(tool_use_id="t", content=value, is_error=False),
        ToolUse.model_construct(id="t", name="n", input={"v": value}),
    ):
        event = Event.create(payload, run_id="r", producer="test")
        assert body_digest(event) == _by_definition(event)


@settings(max_examples=500, deadline=None)
@given(st.text(st.characters(exclude_categories=["Cs"])), st.floats(allow_nan=False))
def test_orjson_writes_strings_and_floats_as_pydantic_does(text: str, number: float) -> None:
    # The digest's fast path rests on it (with infinities: null both).
    value = {"text": text, "number": number, "list": [text, number]}
    assert orjson.dumps(value) == TypeAdapter(Any).dump_json(value)


@pytest.mark.parametrize("event_type", list(EventType))
def test_payload_fields_are_written_as_they_are(event_type: EventType) -> None:
    # The digest writes a payload's __dict__: no field may be written otherwise.
    model = PAYLOAD_TYPES[event_type]
    decorators = model.__pydantic_decorators__
    assert not decorators.field_serializers
    assert not decorators.model_serializers
    assert not model.__pydantic_computed_fields__
    for name, info in model.model_fields.items():
        assert info.serialization_alias is None, name
        assert info.alias is None, name
        assert not info.exclude, name
