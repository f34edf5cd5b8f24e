"""``runwire asyncapi``: the AsyncAPI 3.0 document of runwire's topics, made from the code.

Contract:
- :func:`document` is built only from what the code and the contract files
  hold: the topics of ``infra/topics.toml`` (channels: address, key,
  partitions, configs), each event type routed to its topic
  (:func:`runwire.contract.routing.topic_for`), the newest released ``.avsc``
  of each type (the Avro payload) and every released fingerprint (the
  ``runwire-schema`` header), the record headers of
  :mod:`runwire.contract.routing`, and the dead-letter headers of
  :mod:`runwire.projections.runtime.dead_letters`.
- Default topic names (no ``RUNWIRE_TOPIC_PREFIX``), the same output on every
  machine: ``docs/asyncapi.yaml`` is this document, and a unit test fails
  when it drifts (``runwire asyncapi --output docs/asyncapi.yaml`` rewrites it).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import typer
import yaml

from runwire import __version__
from runwire.contract.events import Event, EventType
from runwire.contract.routing import (
    HEADER_EVENT_ID,
    HEADER_OCCURRED_AT,
    HEADER_PRODUCER,
    HEADER_SCHEMA,
    HEADER_TYPE,
    is_tombstone,
    topic_for,
)
from runwire.contract.schemas import released_schemas
from runwire.infra.topics import TopicSpec, load_topics
from runwire.projections.runtime import dead_letters
from runwire.settings import Settings

__all__ = ["asyncapi", "document", "render"]

AVRO = "application/vnd.apache.avro+json;version=1.9.0"
JSON_SCHEMA = "application/schema+json;version=draft-07"
KAFKA_BINDING = "0.5.0"
TRACE_HEADERS = {
    "traceparent": {
        "type": "string",
        "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
        "description": "W3C Trace Context of the span that wrote the record, when the "
        "writer traces (OTEL_* variables); a reader continues its trace, or starts a "
        "new one when the header is missing or malformed.",
    },
    "tracestate": {"type": "string", "description": "W3C Trace Context vendor state."},
}


def _defaults() -> Settings:
    # Defaults only: the document must not depend on this machine's RUNWIRE_* variables.
    return Settings.model_construct()


def _event_headers(event_type: EventType, fingerprints: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [HEADER_TYPE, HEADER_EVENT_ID, HEADER_SCHEMA],
        "properties": {
            HEADER_TYPE: {"type": "string", "const": event_type.value},
            HEADER_EVENT_ID: {"type": "string", "format": "uuid"},
            HEADER_SCHEMA: {
                "type": "string",
                "enum": fingerprints,
                "description": "The writer schema's CRC-64-AVRO fingerprint (16 hex "
                "digits, the bytes that follow C3 01 in the value); one per released "
                "version of this type.",
            },
            **TRACE_HEADERS,
        },
    }


def _tombstone_headers(event_type: EventType) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [HEADER_TYPE, HEADER_EVENT_ID, HEADER_OCCURRED_AT, HEADER_PRODUCER],
        "properties": {
            HEADER_TYPE: {"type": "string", "const": event_type.value},
            HEADER_EVENT_ID: {"type": "string", "format": "uuid"},
            HEADER_OCCURRED_AT: {
                "type": "string",
                "pattern": "^-?[0-9]+$",
                "description": "When, in milliseconds since the epoch.",
            },
            HEADER_PRODUCER: {"type": "string", "description": "The writing service."},
            **TRACE_HEADERS,
        },
    }


def _key(spec: TopicSpec) -> dict[str, Any]:
    return {
        "kafka": {
            "key": {"type": "string", "description": spec.key},
            "bindingVersion": KAFKA_BINDING,
        }
    }


def _event_message(event_type: EventType, spec: TopicSpec) -> dict[str, Any]:
    schemas = released_schemas()
    latest = schemas.latest(event_type)
    fingerprints = [s.fingerprint.hex() for s in schemas.versions(event_type)]
    payload_doc = next(
        (f["type"].get("doc") for f in latest.definition["fields"] if f["name"] == "payload"),
        None,
    )
    message: dict[str, Any] = {
        "name": event_type.value,
        "title": latest.full_name,
        "summary": payload_doc or latest.definition.get("doc", event_type.value),
        "bindings": _key(spec),
    }
    # is_tombstone reads only the type; the document has types, not events.
    if is_tombstone(cast(Event, SimpleNamespace(type=event_type))):
        message["description"] = (
            "Written as a tombstone: the record has no value (compaction then "
            "removes the entry); the headers hold the event. The Avro schema is "
            f"released as {event_type.value}.v{latest.version}.avsc for other uses."
        )
        message["contentType"] = "application/octet-stream"
        message["payload"] = {"schemaFormat": JSON_SCHEMA, "schema": {"type": "null"}}
        message["headers"] = _tombstone_headers(event_type)
        return message
    message["description"] = (
        "The value is Avro single-object encoding (C3 01, the 8-byte fingerprint, "
        "the Avro body, or what a configured payload codec made of it), or the "
        "Confluent wire format when a schema registry is configured; "
        f"schemas/{event_type.value}.v{latest.version}.avsc is the newest writer "
        "schema (docs/wire-format.md)."
    )
    message["contentType"] = "application/vnd.apache.avro"
    message["payload"] = {"schemaFormat": AVRO, "schema": dict(latest.definition)}
    message["headers"] = _event_headers(event_type, fingerprints)
    return message


def _dead_letter_message(spec: TopicSpec) -> dict[str, Any]:
    names = sorted(
        value
        for name, value in vars(dead_letters).items()
        if name.isupper()
        and isinstance(value, str)
        and value.startswith(dead_letters.HEADER_PREFIX)
        and value != dead_letters.HEADER_PREFIX
    )
    return {
        "name": "dead_letter",
        "title": "A record a consumer could not decode or apply",
        "summary": spec.what,
        "description": "The original key, value and headers, with headers saying where it "
        "came from and why (reasons: schemas/README.md). A value too big for the topic "
        "is cut, with its length and SHA-256 in headers. `runwire dlq list | redrive` "
        f"read and re-publish them; a re-published record carries {dead_letters.REDRIVEN_FROM}.",
        "contentType": "application/octet-stream",
        "payload": {
            "schemaFormat": JSON_SCHEMA,
            "schema": {"type": ["string", "null"], "description": "The original value's bytes."},
        },
        "headers": {
            "type": "object",
            "required": [dead_letters.SOURCE_TOPIC, dead_letters.REASON],
            "properties": {name: {"type": "string"} for name in names},
            "additionalProperties": {"description": "The original record's headers."},
        },
        "bindings": _key(spec),
    }


def _channel(spec: TopicSpec, messages: dict[str, Any]) -> dict[str, Any]:
    return {
        "address": spec.name,
        "title": spec.id,
        "description": f"{spec.what}. Key: {spec.key}. {spec.partitions} partitions; "
        "the name takes RUNWIRE_TOPIC_PREFIX and can be renamed in settings "
        "(infra/topics.toml).",
        "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in messages},
        "bindings": {
            "kafka": {
                "topic": spec.name,
                "partitions": spec.partitions,
                "topicConfiguration": _topic_configuration(spec.config),
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }


def _topic_configuration(config: dict[str, str]) -> dict[str, Any]:
    # The Kafka binding's typed fields; the rest stay in infra/topics.toml.
    out: dict[str, Any] = {}
    for name, value in config.items():
        if name == "cleanup.policy":
            out[name] = value.split(",")
        elif name in (
            "retention.ms",
            "retention.bytes",
            "delete.retention.ms",
            "max.message.bytes",
        ):
            out[name] = int(value)
    return out


def document() -> dict[str, Any]:
    """The AsyncAPI document (see the module contract)."""
    settings = _defaults()
    specs = load_topics()
    by_topic: dict[str, list[EventType]] = {}
    for event_type in EventType:
        by_topic.setdefault(topic_for(event_type.stream, settings), []).append(event_type)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for spec in specs:
        if spec.id == "dead_letters":
            mine = {"dead_letter": _dead_letter_message(spec)}
        else:
            address = settings.topic_for(spec.id)
            mine = {t.value: _event_message(t, spec) for t in by_topic.get(address, [])}
        messages.update(mine)
        channels[spec.id] = _channel(spec, mine)
        refs = [{"$ref": f"#/channels/{spec.id}/messages/{name}"} for name in mine]
        for action, verb in (("send", "Write to"), ("receive", "Read")):
            operations[f"{action}_{spec.id}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{spec.id}"},
                "summary": f"{verb} {spec.name}",
                "messages": refs,
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "runwire",
            "version": __version__,
            "description": "The Kafka topics of runwire, an event-sourced backbone for "
            "AI-agent conversations: their keys, headers and every event schema. "
            "Generated by `runwire asyncapi` from infra/topics.toml and schemas/; do not "
            "edit by hand.",
        },
        "defaultContentType": "application/vnd.apache.avro",
        "servers": {
            "local": {
                "host": settings.kafka_bootstrap_servers,
                "protocol": "kafka",
                "description": "The local stack and docker-compose's published port "
                "(RUNWIRE_KAFKA_BOOTSTRAP_SERVERS elsewhere).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def render() -> str:
    """The document as YAML, in the key order it was built in."""
    # Through JSON so that shared parts are written out, not as YAML anchors.
    plain = json.loads(json.dumps(document()))
    text: str = yaml.safe_dump(plain, sort_keys=False, allow_unicode=True, width=100)
    return "# Generated by `runwire asyncapi --output docs/asyncapi.yaml`; do not edit.\n" + text


def asyncapi(
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the document here instead of printing it."
    ),
) -> None:
    """Print (or write) the AsyncAPI document of runwire's topics and events."""
    text = render()
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text)
    typer.echo(f"wrote {output}")
