"""The one envelope check: what every consumer requires of a record besides its value.

Contract (:func:`check_envelope`, after the value decoded to an event):
- The record's key is the event's routing key
  (:func:`runwire.contract.routing.record_key`), byte for byte: the run id,
  the session id, or the memory address as compact JSON
  ``["scope","owner","key"]`` with non-ASCII characters as UTF-8. The bytes
  decide the partition and what compaction keeps, so an address escaped
  otherwise (``\\u00fc``) would be another stream of the same entry. Else
  ``key_mismatch``.
- The record's partition is the contract partitioner's choice for its key
  (:func:`runwire.log.partitioner.partition_for`, Java's murmur2) among the
  topic's partitions. Else ``wrong_partition``: a record elsewhere is not part
  of its key's stream, and reading it would mix two orders.
- With the topics' streams given (``streams``: topic -> stream,
  :func:`runwire.contract.routing.streams_by_topic`), the event's stream is
  the one its topic carries (a session event is not read from the run-events
  topic, whatever its key). Else ``wrong_topic``. A topic not named there is
  not checked.
- A tombstone (no value) is checked for its partition only; what it means is
  read from its key and headers.
- A failure raises :class:`~runwire.errors.DecodeError` with the reason;
  every consumer dead-letters it with that reason and goes on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from runwire.contract.routing import record_key
from runwire.errors import DecodeError
from runwire.log.partitioner import partition_for

if TYPE_CHECKING:
    from runwire.contract.events import Event, Stream

__all__ = ["check_envelope"]


def check_envelope(
    record: Any,
    event: Event | None,
    partitions: Sequence[int],
    streams: Mapping[str, Stream] | None = None,
) -> None:
    """Raise ``DecodeError`` when ``record`` (a consumed record holding ``event``; None
    for a tombstone) breaks the envelope rules; see the module contract."""
    if event is not None and streams is not None:
        carried = streams.get(record.topic)
        if carried is not None and event.type.stream is not carried:
            raise DecodeError(
                "wrong_topic",
                f"{event.type.value} event (the {event.type.stream.value} stream) on "
                f"{record.topic}, which carries the {carried.value} stream",
            )
    key: bytes | None = record.key
    if event is not None and key != record_key(event):
        raise DecodeError(
            "key_mismatch",
            f"record key {key!r:.80} is not the routing key {record_key(event)!r:.80} "
            f"of event {event.event_id} ({event.type.value})",
        )
    if key is not None and partitions:
        expected = partition_for(key, partitions)
        if record.partition != expected:
            raise DecodeError(
                "wrong_partition",
                f"record of key {key!r:.80} is on partition {record.partition}; the "
                f"contract partitioner (murmur2) puts it on {expected} of {len(partitions)}",
            )
