"""Layer 1 of the codec: ``Event`` model <-> Avro record dict (no bytes here).

Contract:
- ``to_record`` gives the dict fastavro writes with the type's schema: the
  envelope fields, ``payload`` as a nested dict, JSON fields as compact JSON
  text (key order kept, NaN/Infinity refused).
- ``from_record`` turns a record read with the newest schema of its type back
  into an ``Event`` equal to the one that was written.
- Records read by fastavro are already typed by the schema, so ``from_record``
  does not re-run pydantic validation (it is the hot path of every consumer);
  it checks what Avro cannot express instead: JSON text, JSON objects where the
  model wants one, enum members, the envelope's id rules. A unit test keeps the
  models to the field kinds this module understands, so a new model constraint
  cannot slip past it unnoticed.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from runwire.contract import ids
from runwire.contract.events import PAYLOAD_TYPES, Event, EventPayload, EventType, Stream

_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_loads = json.JSONDecoder(parse_constant=_refuse_constant).decode


class RecordError(ValueError):
    """A record does not make a valid event; the message names the field."""


@dataclass(frozen=True)
class PayloadShape:
    """What ``from_record`` must convert or check for one payload model."""

    model: type[EventPayload]
    event_type: EventType
    type_value: str
    stream: Stream
    fields: tuple[str, ...]
    json_fields: tuple[str, ...]
    json_object_fields: frozenset[str]
    enum_fields: tuple[tuple[str, type[StrEnum]], ...]


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def is_json_field(model: type[EventPayload], name: str) -> bool:
    """True when the model field holds a JSON value (JSON text on the wire)."""
    info = model.model_fields[name]
    return any(
        getattr(getattr(m, "func", None), "__name__", "") == "_require_json" for m in info.metadata
    )


def payload_shape(model: type[EventPayload]) -> PayloadShape:
    json_fields = tuple(n for n in model.model_fields if is_json_field(model, n))
    enums: list[tuple[str, type[StrEnum]]] = []
    for name, info in model.model_fields.items():
        inner = _strip_optional(info.annotation)
        if isinstance(inner, type) and issubclass(inner, StrEnum):
            enums.append((name, inner))
    return PayloadShape(
        model=model,
        event_type=model.event_type,
        type_value=model.event_type.value,
        stream=model.event_type.stream,
        fields=tuple(model.model_fields),
        json_fields=json_fields,
        json_object_fields=frozenset(
            n for n in json_fields if typing.get_origin(model.model_fields[n].annotation) is dict
        ),
        enum_fields=tuple(enums),
    )


SHAPES: dict[EventType, PayloadShape] = {t: payload_shape(m) for t, m in PAYLOAD_TYPES.items()}


def to_record(event: Event) -> dict[str, Any]:
    """The Avro record of ``event`` for the newest schema of its type."""
    # A pydantic model keeps its field values in __dict__; copying it is the
    # cheapest way to get them all, in declaration (= schema) order.
    record = dict(event.__dict__)
    payload = dict(event.payload.__dict__)
    for name in SHAPES[event.type].json_fields:
        payload[name] = _dumps(payload[name])
    record["payload"] = payload
    return record


def _construct(model: type[BaseModel], values: dict[str, Any]) -> Any:
    """What ``model.model_construct(**values)`` does, for values that have every field.

    ``values`` must already be valid; callers check what the schema does not.
    """
    obj = model.__new__(model)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "__pydantic_fields_set__", set(values.keys()))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


def from_record(event_type: EventType, record: dict[str, Any]) -> Event:
    """The event in ``record`` (as read with the newest schema of ``event_type``).

    Raises ``RecordError`` naming the field when the record breaks a rule the
    Avro schema cannot express.
    """
    shape = SHAPES[event_type]
    raw_payload = record["payload"]
    for name in shape.json_fields:
        try:
            raw_payload[name] = value = _loads(raw_payload[name])
        except ValueError as e:
            raise RecordError(f"payload.{name} is not JSON text: {e}") from e
        if name in shape.json_object_fields and not isinstance(value, dict):
            raise RecordError(f"payload.{name} must be a JSON object, got {value!r:.100}")
    for name, enum in shape.enum_fields:
        if raw_payload[name] is not None:
            raw_payload[name] = enum(raw_payload[name])
    if record["type"] != shape.type_value:
        raise RecordError(f"type {record['type']!r} does not match the schema of {event_type}")
    stream = shape.stream
    if stream is Stream.RUN and not record["run_id"]:
        raise RecordError(f"run_id is required for {shape.type_value} events")
    if stream is Stream.SESSION and not record["session_id"]:
        raise RecordError(f"session_id is required for {shape.type_value} events")
    if not ids.is_event_id(record["event_id"]):
        raise RecordError(f"event_id must be canonical UUID text, got {record['event_id']!r:.60}")
    # fastavro returns exactly the reader schema's fields, in its order, which
    # is the models' order (the drift test checks it): use the dicts as they are.
    record["type"] = shape.event_type
    record["payload"] = _construct(shape.model, raw_payload)
    event: Event = _construct(Event, record)
    return event
