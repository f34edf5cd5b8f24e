"""Where an event goes on Kafka: its topic, its record key, its headers.

Contract:
- Run events go to the run-events topic keyed by ``run_id``; session events to
  the session-events topic keyed by ``session_id``; memory events to the
  (compacted) memory topic keyed by ``memory_key(scope, owner, key)`` (a
  user's erasure receipt ``user_erased`` by ``memory_key("user", owner, "")``);
  checkpoint events to the checkpoints topic keyed by their ``thread_id``;
  live events (streamed pieces, tool execution) to the live topic keyed by
  ``run_id``.
- ``memory_key`` is the compact JSON array ``[scope, owner, key]`` in UTF-8:
  unambiguous whatever the parts contain, and readable in any language.
- A ``memory_deleted`` event is written as a tombstone (no value) so
  compaction removes the entry; its headers keep the event's id, time and
  producer, and ``tombstone_event`` rebuilds the event from key and headers.
  Both are held to the contract as a value is: a key that is not exactly
  ``memory_key`` of its address is ``key_mismatch`` (another spelling would
  delete an entry that compaction keeps); ``runwire-occurred-at`` that is not
  decimal milliseconds within the years 1-9999, or headers breaking the
  event's rules, are ``invalid_event``.
- Every record carries headers: ``runwire-type``, ``runwire-event-id`` and,
  when there is a value, ``runwire-schema`` (the 16 hex digits of the 8
  fingerprint bytes, as they follow ``C3 01`` in the value) — enough to route
  or drop duplicates without decoding the value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import orjson

from runwire.contract.codec import Codec
from runwire.contract.events import (
    CheckpointPruned,
    CheckpointPut,
    CheckpointRunsDeleted,
    CheckpointThreadDeleted,
    CheckpointWrites,
    Event,
    EventType,
    MemoryDeleted,
    MemoryScope,
    MemorySet,
    Stream,
    UserErased,
)
from runwire.contract.limits import check_event
from runwire.contract.records import SHAPES, event_from_record
from runwire.errors import DecodeError, InputError
from runwire.settings import Settings

HEADER_TYPE = "runwire-type"
HEADER_EVENT_ID = "runwire-event-id"
HEADER_SCHEMA = "runwire-schema"
HEADER_OCCURRED_AT = "runwire-occurred-at"
"""Milliseconds since the epoch; only on tombstones (the value has it otherwise)."""
HEADER_PRODUCER = "runwire-producer"
"""Only on tombstones (the value has it otherwise)."""

Headers = list[tuple[str, bytes]]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TOMBSTONE_SHAPE = SHAPES[EventType.MEMORY_DELETED]


def topic_for(stream: Stream, settings: Settings) -> str:
    """The full topic name (prefix included) of a stream."""
    if stream is Stream.RUN:
        return settings.run_events
    if stream is Stream.SESSION:
        return settings.session_events
    if stream is Stream.CHECKPOINT:
        return settings.checkpoints
    if stream is Stream.LIVE:
        return settings.live
    return settings.memory


def streams_by_topic(settings: Settings) -> dict[str, Stream]:
    """Which stream each of runwire's topics carries (full names, prefix included)."""
    return {topic_for(stream, settings): stream for stream in Stream}


# What a memory key is: this encoder's text in UTF-8. Every memory record's
# key is made when written and again when checked on reading, so it is made
# by orjson, which writes the same bytes for every string it accepts (each
# code point is checked by a unit test) in a tenth of the time.
_KEY_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def memory_key(scope: MemoryScope, owner: str, key: str) -> bytes:
    try:
        return orjson.dumps([scope, owner, key])
    except orjson.JSONEncodeError:
        # A lone surrogate: fail (UnicodeEncodeError) as the key always has.
        return _KEY_JSON.encode([scope, owner, key]).encode()


def parse_memory_key(data: bytes) -> tuple[MemoryScope, str, str]:
    """``(scope, owner, key)`` of a memory record key; ``DecodeError`` if it is not one."""
    try:
        scope, owner, key = json.loads(data)
    except (ValueError, TypeError, RecursionError) as e:
        raise DecodeError("bad_key", f"memory key {data!r:.80} is not [scope, owner, key]") from e
    if scope not in ("session", "user", "agent", "global") or not (
        isinstance(owner, str) and isinstance(key, str)
    ):
        raise DecodeError("bad_key", f"memory key {data!r:.80} is not [scope, owner, key]")
    return scope, owner, key


_CheckpointPayload = (
    CheckpointPut
    | CheckpointWrites
    | CheckpointThreadDeleted
    | CheckpointRunsDeleted
    | CheckpointPruned
)
"""The checkpoint stream's payloads (each has the ``thread_id`` it is keyed by)."""


def record_key(event: Event) -> bytes:
    """The Kafka record key of ``event`` (what decides its partition)."""
    stream = event.type.stream
    if stream is Stream.RUN or stream is Stream.LIVE:
        assert event.run_id is not None  # the model guarantees it for run and live events
        return event.run_id.encode()
    if stream is Stream.SESSION:
        assert event.session_id is not None  # the model guarantees it for session events
        return event.session_id.encode()
    # By the event's type, not isinstance: a miss against a pydantic model class
    # goes through ABCMeta (0.15 us each), and every consumed record comes here.
    # The model holds the payload's class to its type.
    payload: Any = event.payload
    if stream is Stream.CHECKPOINT:
        return cast(_CheckpointPayload, payload).thread_id.encode()
    if event.type is EventType.USER_ERASED:  # beside the user's entries; no entry has key ""
        return memory_key("user", cast(UserErased, payload).owner, "")
    entry = cast(MemorySet | MemoryDeleted, payload)  # the memory stream's other payloads
    return memory_key(entry.scope, entry.owner, entry.key)


def is_tombstone(event: Event) -> bool:
    """True when ``event`` is written as a tombstone (no value)."""
    return event.type is EventType.MEMORY_DELETED


def record_headers(event: Event, fingerprint: bytes | None) -> Headers:
    """The headers of ``event``'s record; ``fingerprint`` is None for tombstones."""
    headers = [
        (HEADER_TYPE, event.type.value.encode()),
        (HEADER_EVENT_ID, event.event_id.encode()),
    ]
    if fingerprint is not None:
        headers.append((HEADER_SCHEMA, fingerprint.hex().encode()))
    else:
        millis = (event.occurred_at - _EPOCH) // timedelta(milliseconds=1)
        headers.append((HEADER_OCCURRED_AT, str(millis).encode()))
        headers.append((HEADER_PRODUCER, event.producer.encode()))
    return headers


def tombstone_event(key: bytes, headers: Iterable[tuple[str, bytes]]) -> Event:
    """The ``memory_deleted`` event a tombstone on the memory topic stands for."""
    found = dict(headers)  # a repeated header: the last one, as Java's lastHeader()
    try:
        scope, owner, entry = parse_memory_key(key)
    except DecodeError as e:
        raise DecodeError("key_mismatch", f"tombstone: {e}") from e
    try:
        kind = found[HEADER_TYPE].decode()
        event_id = found[HEADER_EVENT_ID].decode()
        stamp = found[HEADER_OCCURRED_AT]
        producer = found[HEADER_PRODUCER].decode()
    except (KeyError, ValueError) as e:
        raise DecodeError("invalid_event", f"tombstone without runwire headers ({e})") from e
    if kind != EventType.MEMORY_DELETED.value:
        raise DecodeError("invalid_event", f"tombstone of type {kind!r}; only memory_deleted")
    if _MILLIS.fullmatch(stamp) is None:
        raise DecodeError(
            "invalid_event",
            f"tombstone header {HEADER_OCCURRED_AT} {stamp!r:.40} is not epoch milliseconds "
            "as decimal digits",
        )
    try:
        occurred_at = _EPOCH + timedelta(milliseconds=int(stamp))
    except OverflowError:
        raise DecodeError(
            "invalid_event",
            f"tombstone header {HEADER_OCCURRED_AT} {stamp.decode()} is outside the years 1-9999",
        ) from None
    try:
        # Built as a decoded value's event is (its record checked, then the
        # limits), not validated by the model: a tombstone is read on every
        # rebuild, and the model's validation costs ten times as much.
        event = event_from_record(
            _TOMBSTONE_SHAPE,
            {
                "event_id": event_id,
                "run_id": None,
                "session_id": None,
                "agent_id": None,
                "turn_id": None,
                "user_id": None,
                "tenant": None,
                "type": _TOMBSTONE_SHAPE.type_value,
                "occurred_at": occurred_at,
                "producer": producer,
                "causation_id": None,
                "labels": {},
                "payload": {"scope": scope, "owner": owner, "key": entry},
            },
        )
        check_event(event)
    except (ValueError, InputError) as e:
        raise DecodeError("invalid_event", f"tombstone headers: {e}") from e
    if memory_key(scope, owner, entry) != key:
        # Checked last: what the key names is known to be an address by now.
        raise DecodeError(
            "key_mismatch",
            f"tombstone key {key!r:.80} is not the compact JSON address "
            f"{memory_key(scope, owner, entry)!r:.80}",
        )
    return event


_MILLIS = re.compile(rb"-?[0-9]{1,19}")


def event_of_record(
    codec: Codec,
    key: bytes | None,
    value: bytes | None,
    headers: Iterable[tuple[str, bytes]],
    *,
    tombstones: bool,
) -> Event:
    """The event a consumed record holds: its decoded value, or what its tombstone means.

    Only the memory topic has tombstones (``tombstones``); elsewhere a record
    without a value is ``truncated: empty value``, as every consumer reads it.
    """
    if value is not None:
        return codec.decode(value)
    if not tombstones:
        return codec.decode(b"")  # raises the reason every consumer gives
    if key is None:
        raise DecodeError("truncated", "record has neither value nor key")
    return tombstone_event(key, headers)
