"""``runwire publish FILE|-``: publish JSON events from the shell.

Input is a JSON array of events or JSON lines (one event per line). Each event
is the JSON form of ``runwire.contract.events.Event``; ``event_id`` (a fresh
UUIDv7), ``occurred_at`` (now) and ``producer`` (``--producer``) may be left
out. ``bytes`` fields (redacted thinking) are base64. Every event is validated
and encoded with the same codec the SDK uses before the first one is sent: a
bad file publishes nothing.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from runwire.cli.common import fail_on_runwire_error
from runwire.contract.codec import codec_for
from runwire.contract.events import Event, now
from runwire.contract.ids import new_event_id
from runwire.errors import ContractError
from runwire.log import Position, Publisher
from runwire.settings import Settings


def _items(text: str, source: str) -> list[tuple[str, Any]]:
    """``(where, raw JSON value)`` for every event in ``text``."""
    if text.lstrip().startswith("["):
        try:
            values = json.loads(text)
        except ValueError as e:
            raise ContractError(f"{source}: not a JSON array: {e}") from e
        return [(f"{source} item {i}", v) for i, v in enumerate(values)]
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((f"{source} line {number}", json.loads(line)))
        except ValueError as e:
            raise ContractError(f"{source} line {number}: not JSON: {e}") from e
    return items


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['msg']} (got {e.get('input')!r:.80})"
        for e in error.errors()
    )


def parse_events(text: str, source: str, producer: str) -> list[Event]:
    """Validated events from JSON text; ``ContractError`` naming every bad one."""
    events, problems = [], []
    for where, value in _items(text, source):
        if not isinstance(value, dict):
            problems.append(f"{where}: an event is a JSON object, got {type(value).__name__}")
            continue
        value.setdefault("event_id", new_event_id())
        value.setdefault("occurred_at", now().isoformat())
        value.setdefault("producer", producer)
        try:
            # JSON mode, so bytes are base64 exactly as Event.model_dump_json writes them.
            events.append(Event.model_validate_json(json.dumps(value)))
        except ValidationError as e:
            problems.append(f"{where}: {_describe(e)}")
    if problems:
        raise ContractError("invalid events, nothing published:\n  " + "\n  ".join(problems))
    return events


async def _publish(settings: Settings, events: list[Event], as_message: bool) -> list[Position]:
    async with Publisher(settings) as publisher:
        if as_message:
            return await publisher.publish_message(events)
        return await publisher.publish_many(events)


def publish(
    file: str = typer.Argument(..., help="A JSON or JSON-lines file of events, or - for stdin."),
    producer: str = typer.Option("runwire-cli", help="Producer name for events without one."),
    as_message: bool = typer.Option(
        False, "--message", help="Write all events as one record batch (one assistant message)."
    ),
    check: bool = typer.Option(False, "--check", help="Validate and encode only; send nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per event."),
) -> None:
    """Publish events from FILE (or - for stdin) to Kafka, validated with the SDK's codec."""
    settings = Settings()
    with fail_on_runwire_error():
        source = "stdin" if file == "-" else file
        try:
            text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        except OSError as e:
            raise typer.BadParameter(f"cannot read {file}: {e.strerror}", param_hint="FILE") from e
        events = parse_events(text, source, producer)
        codec = codec_for(settings)
        for event in events:
            codec.encode(event)  # refuse what could never be sent before sending anything
        if check:
            typer.echo(f"{len(events)} valid events")
            return
        positions = asyncio.run(_publish(settings, events, as_message))
    for event, position in zip(events, positions, strict=True):
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "event_id": event.event_id,
                        "type": event.type.value,
                        "topic": position.topic,
                        "partition": position.partition,
                        "offset": position.offset,
                    }
                )
            )
        else:
            typer.echo(
                f"{event.type.value} {event.event_id} -> "
                f"{position.topic}[{position.partition}]@{position.offset}"
            )
