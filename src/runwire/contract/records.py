"""Layer 1 of the codec: ``Event`` model <-> Avro record dict (no bytes here).

Contract:
- ``to_record`` gives the dict fastavro writes with the type's schema: the
  envelope fields, ``payload`` as a nested dict, JSON fields as compact UTF-8
  JSON text, key order kept and numbers exact (:mod:`runwire.contract.jsonvalues`).
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

import types
import typing
from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from runwire.contract import ids, jsonvalues
from runwire.contract.events import PAYLOAD_TYPES, Event, EventPayload, EventType, Stream

_dumps = jsonvalues.dumps_text
_loads = jsonvalues.loads  # refuses NaN/Infinity, which are not JSON


class RecordError(ValueError):
    """A record does not make a valid event; the message names the field."""


@dataclass(frozen=True)
class PayloadShape:
    """What ``from_record`` must convert or check for one payload model."""

    model: type[EventPayload]
    event_type: EventType
    type_value: str
    required_id: str | None
    """The envelope id this type cannot do without (run_id, session_id or none)."""
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
        required_id={Stream.RUN: "run_id", Stream.LIVE: "run_id", Stream.SESSION: "session_id"}.get(
            model.event_type.stream
        ),
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


def _slot_setter(name: str) -> Callable[[Any, Any], None]:
    """A direct setter for one of pydantic's per-instance slots."""
    slot = BaseModel.__dict__.get(name)
    if slot is not None and hasattr(slot, "__set__"):
        setter: Callable[[Any, Any], None] = slot.__set__
        return setter
    return lambda obj, value: object.__setattr__(obj, name, value)


_set_dict = _slot_setter("__dict__")
_set_fields_set = _slot_setter("__pydantic_fields_set__")
_set_extra = _slot_setter("__pydantic_extra__")
_set_private = _slot_setter("__pydantic_private__")


def construct(
    model: type[BaseModel], values: dict[str, Any], fields_set: Collection[str] | None = None
) -> Any:
    """What ``model.model_construct(**values)`` does, for values that have every field.

    ``values`` must already be valid; callers check what the schema does not
    (here, the codec; the ledger for the messages and parts it makes of what
    it validated). Sets the four per-instance slots pydantic keeps (the fields in
    ``__dict__``, the fields set, no extras, no private attributes) directly:
    this runs twice for every consumed record. ``fields_set``: the fields
    given, as validation records those passed to it (``model_fields_set``,
    what ``exclude_unset`` keeps); every field by default.
    """
    obj = object.__new__(model)
    _set_dict(obj, values)
    _set_fields_set(obj, set(values if fields_set is None else fields_set))
    _set_extra(obj, None)
    _set_private(obj, None)
    return obj


def from_record(event_type: EventType, record: dict[str, Any]) -> Event:
    """The event in ``record`` (as read with the newest schema of ``event_type``).

    Raises ``RecordError`` naming the field when the record breaks a rule the
    Avro schema cannot express.
    """
    return event_from_record(SHAPES[event_type], record)


def event_from_record(shape: PayloadShape, record: dict[str, Any]) -> Event:
    """``from_record`` for a caller that already holds the type's shape (the codec)."""
    raw_payload = record["payload"]
    for name in shape.json_fields:
        try:
            raw_payload[name] = value = _loads(raw_payload[name])
        except ValueError as e:
            raise RecordError(f"payload.{name} is not JSON text: {e}") from e
        if name in shape.json_object_fields and not isinstance(value, dict):
            raise RecordError(f"payload.{name} must be a JSON object, got {value!r:.100}")
    for name, enum in shape.enum_fields:
        raw = raw_payload[name]
        if raw is not None:
            # The member by a dict lookup; calling the enum (what raises for an
            # unknown value, with its message) costs as much as the rest of a field.
            member = enum._value2member_map_.get(raw)
            raw_payload[name] = member if member is not None else enum(raw)
    if record["type"] != shape.type_value:
        raise RecordError(
            f"type {record['type']!r} does not match the schema of {shape.type_value}"
        )
    if shape.required_id is not None and not record[shape.required_id]:
        raise RecordError(f"{shape.required_id} is required for {shape.type_value} events")
    if not ids.is_event_id(record["event_id"]):
        # Another producer's UUID text (uppercase, braces, no hyphens) names the same
        # event: normalised, so duplicates are recognised whoever wrote them.
        try:
            record["event_id"] = ids.canonical_event_id(record["event_id"])
        except ValueError:
            raise RecordError(f"event_id must be a UUID, got {record['event_id']!r:.60}") from None
    # fastavro returns exactly the reader schema's fields, in its order, which
    # is the models' order (the drift test checks it): use the dicts as they are.
    record["type"] = shape.event_type
    record["payload"] = construct(shape.model, raw_payload)
    event: Event = construct(Event, record)
    return event
