"""Schema evolution: every released chain is FULL_TRANSITIVE, and old data still decodes.

The compatibility verdicts come from the ``avro`` package's own checker
(``avro.compatibility``), the reference implementation of the Avro spec's
schema-resolution rules, not from code of ours.
"""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from fastavro import parse_schema, schemaless_writer

from runwire.contract.codec import Codec
from runwire.contract.events import EventType, ToolResult
from runwire.contract.records import to_record
from runwire.contract.schemas import load_from_texts, read_released_files, released_schemas
from tests.support.event_samples import sample_event


def full_transitive_problems(chain: list[dict[str, Any]]) -> list[str]:
    """Every pair of versions (oldest first) must read each other, in both directions."""
    parsed = [avro.schema.parse(json.dumps(v)) for v in chain]
    problems = []
    for old in range(len(parsed)):
        for new in range(old + 1, len(parsed)):
            for reader, writer, what in (
                (new, old, "backward: the new reader cannot read old data"),
                (old, new, "forward: old readers cannot read new data"),
            ):
                checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
                result = checker.get_compatibility(parsed[reader], parsed[writer])
                if result.compatibility is not SchemaCompatibilityType.compatible:
                    problems.append(f"v{old + 1}->v{new + 1} {what}: {sorted(result.messages)}")
    return problems


@pytest.mark.parametrize("event_type", list(EventType), ids=str)
def test_released_chains_are_full_transitive(event_type: EventType) -> None:
    chain = [dict(s.definition) for s in released_schemas().versions(event_type)]
    assert full_transitive_problems(chain) == []


@pytest.mark.parametrize("event_type", list(EventType), ids=str)
def test_data_of_every_released_version_decodes_with_the_newest(event_type: EventType) -> None:
    event = sample_event(event_type)
    codec = Codec()
    for schema in released_schemas().versions(event_type):
        buffer = io.BytesIO()
        buffer.write(b"\xc3\x01" + schema.fingerprint)
        schemaless_writer(buffer, parse_schema(dict(schema.definition)), to_record(event))
        decoded = codec.decode(buffer.getvalue())
        assert decoded.event_id == event.event_id
        assert decoded.type is event_type


# -- the check can fail, and resolution really happens --------------------------


def _tool_result_v1() -> dict[str, Any]:
    return copy.deepcopy(dict(released_schemas().latest(EventType.TOOL_RESULT).definition))


def _payload_fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    payload = next(f for f in schema["fields"] if f["name"] == "payload")
    fields: list[dict[str, Any]] = payload["type"]["fields"]
    return fields


def test_adding_a_field_with_a_default_is_full_compatible() -> None:
    v1 = _tool_result_v1()
    v2 = copy.deepcopy(v1)
    _payload_fields(v2).append({"name": "duration_ms", "type": ["null", "long"], "default": None})
    assert full_transitive_problems([v1, v2]) == []


@pytest.mark.parametrize(
    ("change", "direction"),
    [
        ("add a field without a default", "backward"),
        ("drop a field that has no default", "forward"),
        ("change a field's type", "backward"),
        ("add an enum symbol", "forward"),
    ],
)
def test_incompatible_changes_are_caught(change: str, direction: str) -> None:
    if change == "add an enum symbol":
        v1 = copy.deepcopy(dict(released_schemas().latest(EventType.RUN_STATUS_CHANGED).definition))
        v2 = copy.deepcopy(v1)
        _payload_fields(v2)[0]["type"]["symbols"].append("sleeping")
    else:
        v1 = _tool_result_v1()
        v2 = copy.deepcopy(v1)
        fields = _payload_fields(v2)
        if change == "add a field without a default":
            fields.append({"name": "duration_ms", "type": "long"})
        elif change == "drop a field that has no default":
            fields[:] = [f for f in fields if f["name"] != "tool_use_id"]
        else:
            next(f for f in fields if f["name"] == "is_error")["type"] = "string"
    problems = full_transitive_problems([v1, v2])
    assert any(p.startswith(f"v1->v2 {direction}") for p in problems), problems


def test_transitive_means_every_pair_not_just_neighbours() -> None:
    """v1 -> v2 adds a defaulted field, v2 -> v3 drops its default: v1/v3 clash."""
    v1 = _tool_result_v1()
    v2 = copy.deepcopy(v1)
    _payload_fields(v2).append({"name": "attempt", "type": "long", "default": 0})
    v3 = copy.deepcopy(v2)
    _payload_fields(v3)[-1].pop("default")
    assert full_transitive_problems([v2, v3]) == []
    assert any(p.startswith("v1->v3 backward") for p in full_transitive_problems([v1, v2, v3]))


def test_old_data_is_resolved_to_the_newest_reader() -> None:
    """A chain where v1 lacked ``is_error``: v1 bytes decode with v2 as reader."""
    v2 = _tool_result_v1()
    v1 = copy.deepcopy(v2)
    _payload_fields(v1)[:] = [f for f in _payload_fields(v1) if f["name"] != "is_error"]
    texts = read_released_files()
    texts["tool_result.v1.avsc"] = json.dumps(v1)
    texts["tool_result.v2.avsc"] = json.dumps(v2)
    schemas = load_from_texts(texts)
    assert full_transitive_problems([v1, v2]) == []
    old_schema = schemas.versions(EventType.TOOL_RESULT)[0]

    event = sample_event(EventType.TOOL_RESULT)
    record = to_record(event)
    del record["payload"]["is_error"]
    buffer = io.BytesIO()
    buffer.write(b"\xc3\x01" + old_schema.fingerprint)
    schemaless_writer(buffer, parse_schema(v1), record)

    decoded = Codec(schemas).decode(buffer.getvalue())
    assert isinstance(decoded.payload, ToolResult)
    assert decoded.payload.is_error is False  # the v2 default
    assert decoded.payload.content == {"temp": -3.5, "ok": True}
    assert decoded.event_id == event.event_id
