"""The .avsc files and the models mirror each other; released files never change."""

from __future__ import annotations

import json
import types
import typing
from datetime import datetime
from enum import StrEnum
from typing import Any

import pytest
from fastavro.schema import fingerprint

from runwire.contract.events import PAYLOAD_TYPES, Event, EventPayload, EventType
from runwire.contract.records import is_json_field
from runwire.contract.schemas import (
    NAMESPACE,
    crc64_avro,
    load_from_texts,
    read_released_files,
    released_schemas,
)
from runwire.errors import ContractError

# Every released file and its fingerprint. A released file never changes: add a
# new version (<type>.v<N+1>.avsc) and a line here instead of editing one.
RELEASED = {
    "approval_decided.v1.avsc": "ae70fdf6b72453ca",
    "approval_requested.v1.avsc": "c59b7f18cbdb5fee",
    "assistant_text.v1.avsc": "05bd65e0ee530b41",
    "checkpoint_pruned.v1.avsc": "42a57507d4a937bc",
    "checkpoint_put.v1.avsc": "acc679d9b515507f",
    "checkpoint_runs_deleted.v1.avsc": "e9b9856c02fd0b18",
    "checkpoint_thread_deleted.v1.avsc": "969c05ac54799c4b",
    "checkpoint_writes.v1.avsc": "7995d65d712f01ed",
    "context_compacted.v1.avsc": "f848ebd27bfee9c7",
    "context_seeded.v1.avsc": "3d560c0bcd94f12c",
    "framework_item.v1.avsc": "df4267035f248190",
    "item_popped.v1.avsc": "f82e07a239a7a1ef",
    "live_chunk.v1.avsc": "6f38aa13b734b4c6",
    "live_tool_finished.v1.avsc": "8cf657feade1a619",
    "live_tool_started.v1.avsc": "a582821fe9f602f8",
    "memory_deleted.v1.avsc": "c795f83b8111dbb0",
    "memory_set.v1.avsc": "471dbade080e8668",
    "planner_note.v1.avsc": "07a49f9daf83855d",
    "run_canceled.v1.avsc": "a7ccb0f761fd2fa9",
    "run_completed.v1.avsc": "c96b33714e45c84b",
    "run_failed.v1.avsc": "560a5f77949534bd",
    "run_started.v1.avsc": "fb5c63c29dd7d988",
    "run_status_changed.v1.avsc": "cfcd383feaddd400",
    "session_cleared.v1.avsc": "dcdb31124b8340c8",
    "session_created.v1.avsc": "594a71740a48fcea",
    "session_deleted.v1.avsc": "d13893bf339861ed",
    "session_ended.v1.avsc": "dedf8e4de9cf86c4",
    "session_forked.v1.avsc": "475e29c61742d032",
    "session_forked.v2.avsc": "8d37f1af64023f8f",
    "user_erased.v1.avsc": "dbba20cb0372c140",
    "session_metadata_set.v1.avsc": "a36e93568035d524",
    "session_writer_claimed.v1.avsc": "bfc416fc396778df",
    "session_writer_released.v1.avsc": "8572f2b72ceba1e3",
    "thinking.v1.avsc": "a91f3629d2a81387",
    "tool_result.v1.avsc": "af1d708c778b399c",
    "tool_use.v1.avsc": "c16ba16dcb57ca0f",
    "usage.v1.avsc": "6bddfd54853d1c34",
    "usage.v2.avsc": "394f1a7ff3d2a64f",
    "user_message.v1.avsc": "d3ed7e1d2b35ffcf",
}


def test_released_files_are_unchanged() -> None:
    schemas = load_from_texts(read_released_files())
    found = {f"{s.event_type.value}.v{s.version}.avsc": s.fingerprint.hex() for s in schemas}
    assert found == RELEASED


@pytest.mark.parametrize(
    ("canonical", "java_fingerprint"),
    # The Avro project's published vectors (share/test/data/schema-tests.txt).
    [('"null"', 7195948357588979594), ('"int"', 8247732601305521295)],
)
def test_fingerprint_is_crc64_avro(canonical: str, java_fingerprint: int) -> None:
    assert int.from_bytes(crc64_avro(canonical), "little", signed=True) == java_fingerprint


def test_fingerprint_is_of_the_parsing_canonical_form() -> None:
    schema = released_schemas().latest(EventType.TOOL_USE)
    assert schema.canonical_form.startswith('{"name":"io.runwire.v1.ToolUseEvent"')
    assert '"logicalType"' not in schema.canonical_form
    assert schema.fingerprint.hex() == fingerprint(schema.canonical_form, "CRC-64-AVRO")


def test_every_event_type_has_a_schema_and_every_schema_a_type() -> None:
    assert set(released_schemas().event_types()) == set(EventType)


# -- the mirror ----------------------------------------------------------------


def _avro_of(annotation: Any, *, json_text: bool) -> Any:
    """The Avro type a model field annotation must have (independent of the codec)."""
    if json_text:
        return "string"
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return ["null", _avro_of(inner, json_text=False)]
    simple = {str: "string", int: "long", bool: "boolean", bytes: "bytes"}
    if annotation in simple:
        return simple[annotation]
    if annotation is datetime:
        return {"type": "long", "logicalType": "timestamp-millis"}
    if isinstance(annotation, type) and issubclass(annotation, StrEnum):
        return ("enum", annotation.__name__, [m.value for m in annotation])
    if origin is typing.Literal:
        return ("enum", None, list(typing.get_args(annotation)))
    if origin is dict and typing.get_args(annotation) == (str, str):
        return {"type": "map", "values": "string"}
    if origin is dict and typing.get_args(annotation) == (str, int):
        return {"type": "map", "values": "long"}
    if origin is list and typing.get_args(annotation) == (str,):
        return {"type": "array", "items": "string"}
    raise AssertionError(f"no Avro mapping for {annotation!r}; extend the contract deliberately")


def _normalise(avro_type: Any) -> Any:
    """An .avsc field type in the shape ``_avro_of`` returns."""
    if isinstance(avro_type, list):
        return [_normalise(t) for t in avro_type]
    if isinstance(avro_type, dict):
        if avro_type["type"] == "enum":
            return ("enum", avro_type["name"], avro_type["symbols"])
        return avro_type
    return avro_type


def _assert_fields_mirror(
    model: type[EventPayload] | type[Event], fields: list[dict[str, Any]], where: str
) -> None:
    names = [f["name"] for f in fields if f["name"] != "payload"]
    model_names = [n for n in model.model_fields if n != "payload"]
    assert names == model_names, f"{where}: field names or order differ"
    for field in fields:
        name = field["name"]
        if name == "payload":
            continue
        info = model.model_fields[name]
        json_text = issubclass(model, EventPayload) and is_json_field(model, name)
        assert (field.get("contentType") == "application/json") == json_text, f"{where}.{name}"
        expected = _avro_of(info.annotation, json_text=json_text)
        actual = _normalise(field["type"])
        if isinstance(expected, tuple) and expected[1] is None:  # Literal: any enum name
            expected = (expected[0], actual[1], expected[2])
        if model is Event and name == "type":  # the type is text on the wire
            expected = "string"
        if model is Event and name == "event_id":
            expected = {"type": "string", "logicalType": "uuid"}
        assert actual == expected, f"{where}.{name}: {actual} != {expected}"
        if info.is_required():
            assert "default" not in field or name == "type", f"{where}.{name} has a default"
        else:
            default = info.get_default(call_default_factory=True)
            wire = json.dumps(default) if json_text else default
            assert field.get("default", "<none>") == wire, f"{where}.{name}: default differs"


@pytest.mark.parametrize("event_type", list(EventType), ids=str)
def test_schema_and_model_mirror_each_other(event_type: EventType) -> None:
    schema = released_schemas().latest(event_type)
    definition = schema.definition
    model = PAYLOAD_TYPES[event_type]
    assert definition["namespace"] == NAMESPACE
    assert definition["name"] == f"{model.__name__}Event"
    _assert_fields_mirror(Event, definition["fields"], definition["name"])
    type_field = next(f for f in definition["fields"] if f["name"] == "type")
    assert type_field["default"] == event_type.value
    (payload_field,) = [f for f in definition["fields"] if f["name"] == "payload"]
    payload = payload_field["type"]
    assert payload["name"] == model.__name__
    _assert_fields_mirror(model, payload["fields"], payload["name"])
    assert schema.json_fields == {n for n in model.model_fields if is_json_field(model, n)}


@pytest.mark.parametrize("model", list(PAYLOAD_TYPES.values()), ids=lambda m: m.__name__)
def test_models_use_only_field_kinds_the_codec_understands(model: type[EventPayload]) -> None:
    """The decoder trusts Avro's typing; a model constraint Avro cannot express
    (a length, a range, a pattern) would slip past it, so none may appear
    unnoticed: extend ``runwire.contract.records.from_record`` first."""
    for name, info in model.model_fields.items():
        json_text = is_json_field(model, name)
        _avro_of(info.annotation, json_text=json_text)  # raises for unknown kinds
        assert len(info.metadata) == (1 if json_text else 0), f"{model.__name__}.{name}"


def test_bad_schema_files_are_refused_with_their_name() -> None:
    good = read_released_files()["tool_use.v1.avsc"]
    with pytest.raises(ContractError, match=r"'tool_use.avsc' is not named"):
        load_from_texts({"tool_use.avsc": good})
    with pytest.raises(ContractError, match=r"'nope.v1.avsc': unknown event type"):
        load_from_texts({"nope.v1.avsc": good})
    with pytest.raises(ContractError, match=r"tool_use versions must be 1..N, found \[2\]"):
        load_from_texts({"tool_use.v2.avsc": good})
    with pytest.raises(ContractError, match=r"'tool_use.v1.avsc' is not JSON"):
        load_from_texts({"tool_use.v1.avsc": "{"})
