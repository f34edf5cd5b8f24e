"""What makes two records the same event: its id within its stream, and its body.

Contract:
- An event is named by its ``event_id`` within its *stream*: the records of
  one routing key (a run, a session, a memory address), which every consumer
  reads in the same order from one partition. Every consumer can decide what
  a record is from its stream alone, with no shared state.
- :func:`body_digest` is what "the same body" means: the event type and the
  payload as JSON. The envelope's other fields (``occurred_at``, ``producer``,
  labels, causation) are not part of it: a producer that re-sends an event
  after a timeout may stamp it again.
- A second record of a stream with an id already applied is a *duplicate*
  when its digest matches (every consumer drops it) and a conflict
  otherwise: every consumer refuses it with the reason
  :data:`CONFLICTING_DUPLICATE` and keeps the first.
- The same id in another stream is another event (ids are only compared
  within a stream).
- :class:`StreamIds` applies the rule for a reader that folds a log in memory.
"""

from __future__ import annotations

from hashlib import sha256
from typing import TYPE_CHECKING

import orjson

from runwire.contract.jsonvalues import bytes_as_base64
from runwire.errors import DecodeError

if TYPE_CHECKING:
    from runwire.contract.events import Event, EventPayload

__all__ = ["CONFLICTING_DUPLICATE", "StreamIds", "body_digest", "payload_digest", "stream_of"]

CONFLICTING_DUPLICATE = "conflicting_duplicate_event"
"""The reason every consumer refuses an applied id with another body with."""


def payload_digest(payload: EventPayload) -> str:
    """The digest of an event body (32 hex digits); stored by read models, so never change it.

    It is ``sha256(f"{type}\x1f{payload.model_dump_json()}")``, computed from
    bytes (what ``model_dump_json`` decodes to text), as consumers digest
    every remembered record:

    - the payload's fields written by orjson where its bytes are pydantic's:
      strings, floats, integers of 64 bits, booleans, None, lists and dicts
      of them, str enums, bytes as URL-safe base64 (a payload's fields are
      plain: no serializer, alias or computed field; tests hold both equal);
      at half the serializer's cost;
    - else (a ``Decimal``, a longer integer, any other object) pydantic's
      serializer's bytes.
    """
    model = type(payload)
    prefix = _PREFIXES.get(model)
    if prefix is None:
        prefix = _PREFIXES[model] = f"{model.event_type.value}\x1f".encode()
    try:
        body = orjson.dumps(payload.__dict__, default=bytes_as_base64, option=_OTHERS_REFUSED)
    except orjson.JSONEncodeError:
        body = model.__pydantic_serializer__.to_json(payload)
    return sha256(prefix + body).hexdigest()[:32]


_PREFIXES: dict[type, bytes] = {}
# Objects orjson would write in its own way go to ``default``, which refuses them.
_OTHERS_REFUSED = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def body_digest(event: Event) -> str:
    """:func:`payload_digest` of ``event``'s payload."""
    return payload_digest(event.payload)


def stream_of(key: bytes | None) -> str:
    """The stream a record belongs to, as text (its key; a keyless record has none: ``""``)."""
    return key.decode("utf-8", "replace") if key else ""


class StreamIds:
    """The ids a reader folding a log in memory has applied, per stream, with digests.

    (Read models keep theirs in their stores; this is for in-process readers.)
    """

    def __init__(self, limit: int | None = None) -> None:
        """``limit``: remember at most that many (the oldest are forgotten first)."""
        self._applied: dict[tuple[str, str], str] = {}
        self._limit = limit

    def admit(self, event: Event, key: bytes | None) -> bool:
        """True for an event to apply (now remembered), False for a duplicate; raises
        ``DecodeError`` (:data:`CONFLICTING_DUPLICATE`) for an id with another body."""
        ident = (event.event_id, stream_of(key))
        digest = body_digest(event)
        stored = self._applied.get(ident)
        if stored is None:
            self._applied[ident] = digest
            if self._limit is not None and len(self._applied) > self._limit:
                del self._applied[next(iter(self._applied))]
            return True
        if stored == digest:
            return False
        raise DecodeError(
            CONFLICTING_DUPLICATE,
            f"event {event.event_id} ({event.type.value}) was already applied with another "
            f"body (digest {stored}, this one {digest}); the first is kept",
        )
