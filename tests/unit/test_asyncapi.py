"""docs/asyncapi.yaml is what ``runwire asyncapi`` makes from the code, and it holds together.

- The checked-in file equals the generated one (so it cannot drift).
- Every topic of the topics file is a channel and every event type a message
  of its topic's channel, with the newest released ``.avsc`` as its payload.
- The headers the writer really puts on a record satisfy the message's header
  schema; every ``$ref`` resolves; every JSON Schema in it is well formed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from runwire.cli.asyncapi import document, render
from runwire.cli.main import app
from runwire.contract.events import Event, EventType, MemoryDeleted, UserMessage
from runwire.contract.routing import record_headers
from runwire.contract.schemas import released_schemas
from runwire.infra.topics import load_topics
from runwire.projections.runtime import dead_letters

REPO = Path(__file__).resolve().parents[2]
CHECKED_IN = REPO / "docs" / "asyncapi.yaml"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return document()


def test_the_checked_in_document_is_the_generated_one() -> None:
    assert CHECKED_IN.read_text() == render(), (
        "docs/asyncapi.yaml is stale: run `runwire asyncapi --output docs/asyncapi.yaml`"
    )
    assert yaml.safe_load(CHECKED_IN.read_text()) == document()


def test_the_command_prints_and_writes_the_document(tmp_path: Path) -> None:
    runner = CliRunner()
    printed = runner.invoke(app, ["asyncapi"])
    assert printed.exit_code == 0, printed.output
    assert printed.stdout == render()
    target = tmp_path / "asyncapi.yaml"
    written = runner.invoke(app, ["asyncapi", "--output", str(target)])
    assert written.exit_code == 0, written.output
    assert target.read_text() == render()


def test_this_machines_settings_do_not_change_it(monkeypatch: pytest.MonkeyPatch) -> None:
    before = render()
    monkeypatch.setenv("RUNWIRE_TOPIC_PREFIX", "staging.")
    monkeypatch.setenv("RUNWIRE_RUN_EVENTS_TOPIC", "elsewhere")
    monkeypatch.setenv("RUNWIRE_KAFKA_BOOTSTRAP_SERVERS", "kafka.example:9092")
    assert render() == before


def test_every_topic_is_a_channel_and_every_event_a_message_of_its_topic(
    doc: dict[str, Any],
) -> None:
    specs = {spec.id: spec for spec in load_topics()}
    assert set(doc["channels"]) == set(specs)
    for topic_id, channel in doc["channels"].items():
        assert channel["address"] == specs[topic_id].name
        assert channel["bindings"]["kafka"]["partitions"] == specs[topic_id].partitions
        assert {"send", "receive"} == {
            op["action"]
            for op in doc["operations"].values()
            if op["channel"]["$ref"] == f"#/channels/{topic_id}"
        }
    on_channels = {
        name: topic_id
        for topic_id, channel in doc["channels"].items()
        for name in channel["messages"]
    }
    assert {t.value for t in EventType} <= set(on_channels)
    assert on_channels["user_message"] == "run_events"
    assert on_channels["session_created"] == "session_events"
    assert on_channels["memory_set"] == "memory"
    assert on_channels["dead_letter"] == "dead_letters"


def test_payloads_are_the_newest_released_schemas(doc: dict[str, Any]) -> None:
    schemas = released_schemas()
    messages = doc["components"]["messages"]
    for event_type in schemas.event_types():
        message = messages[event_type.value]
        latest = schemas.latest(event_type)
        fingerprints = message["headers"]["properties"]["runwire-type"]
        assert fingerprints["const"] == event_type.value
        if event_type is EventType.MEMORY_DELETED:
            assert message["payload"]["schema"] == {"type": "null"}  # a tombstone
            continue
        assert message["payload"]["schemaFormat"].startswith("application/vnd.apache.avro")
        assert message["payload"]["schema"] == latest.definition
        fastavro.parse_schema(message["payload"]["schema"])
        enum = message["headers"]["properties"]["runwire-schema"]["enum"]
        assert enum == [s.fingerprint.hex() for s in schemas.versions(event_type)]


def test_the_headers_the_writer_puts_on_records_satisfy_the_document(
    doc: dict[str, Any],
) -> None:
    messages = doc["components"]["messages"]
    schemas = released_schemas()
    event = Event.create(UserMessage(parts=["hi"]), run_id="r-1")
    fingerprint = schemas.latest(EventType.USER_MESSAGE).fingerprint
    written = {k: v.decode() for k, v in record_headers(event, fingerprint)}
    jsonschema.validate(written, messages["user_message"]["headers"])
    written["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    jsonschema.validate(written, messages["user_message"]["headers"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {**written, "runwire-type": "thinking"}, messages["user_message"]["headers"]
        )
    tombstone = Event.create(
        MemoryDeleted(scope="user", owner="u-1", key="k"), occurred_at=datetime.now(UTC)
    )
    written = {k: v.decode() for k, v in record_headers(tombstone, None)}
    jsonschema.validate(written, messages["memory_deleted"]["headers"])


def test_dead_letters_list_every_header_the_runtime_writes(doc: dict[str, Any]) -> None:
    headers = doc["components"]["messages"]["dead_letter"]["headers"]["properties"]
    for name in (
        dead_letters.SOURCE_TOPIC,
        dead_letters.SOURCE_PARTITION,
        dead_letters.SOURCE_OFFSET,
        dead_letters.CONSUMER,
        dead_letters.REASON,
        dead_letters.ERROR_CLASS,
        dead_letters.ERROR_MESSAGE,
        dead_letters.FAILED_AT,
    ):
        assert name in headers


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_every_reference_resolves_and_every_json_schema_is_well_formed(
    doc: dict[str, Any],
) -> None:
    refs = [n["$ref"] for n in _walk(doc) if "$ref" in n]
    assert refs
    for ref in refs:
        _resolve(doc, ref)
    for message in doc["components"]["messages"].values():
        jsonschema.Draft7Validator.check_schema(message["headers"])
        jsonschema.Draft7Validator.check_schema(message["bindings"]["kafka"]["key"])
