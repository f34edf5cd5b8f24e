"""Records as runwire reads them: where they lie and what they hold.

Contract:
- :class:`TopicPartition` and :class:`LogPosition` name a place in the log;
  a position is the offset of the *next* record to read (Kafka's convention).
- :class:`SourceRecord` is a consumed record with its decoded event and its
  original bytes (so that one a reader cannot apply can be dead-lettered
  byte for byte).
- :func:`decode_record` is the one way a consumed record becomes a
  :class:`SourceRecord`: the value decoded by the codec (a tombstone read
  from its key and headers), every installed hook told
  (:mod:`runwire.log.hooks`), and, given the topic's partitions, the one
  envelope check (:mod:`runwire.log.envelope`). A record that cannot be read raises
  :class:`~runwire.errors.DecodeError` with its reason; a retriable one
  (the schema registry unreachable) is to be read again, never skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from runwire.contract.routing import event_of_record
from runwire.log import hooks
from runwire.log.envelope import check_envelope

if TYPE_CHECKING:
    from runwire.contract.codec import Codec
    from runwire.contract.events import Event, Stream

__all__ = ["LogPosition", "SourceRecord", "TopicPartition", "decode_record"]


class TopicPartition(NamedTuple):
    """A partition of a topic (field-compatible with aiokafka's TopicPartition)."""

    topic: str
    partition: int


class LogPosition(Protocol):
    """Where an event lies in the log, e.g. the ``Position`` a publish returns."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...


class SourceRecord(NamedTuple):
    """A decoded record together with where it came from and its original bytes.

    (A named tuple: readers make one per record, and a frozen dataclass costs
    several times as much to build.)
    """

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    event: Event

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


def decode_record(
    codec: Codec,
    record: Any,
    partitions: Sequence[int] = (),
    *,
    tombstones: bool = False,
    streams: Mapping[str, Stream] | None = None,
) -> SourceRecord:
    """``record`` (an aiokafka ``ConsumerRecord``) read; see the module contract.

    With the topic's ``partitions`` (and the topics' ``streams``), the envelope
    is checked too (:func:`runwire.log.envelope.check_envelope`). ``tombstones``:
    the record is of the memory topic, where a record without a value is a deletion.
    """
    headers = tuple(record.headers or ())
    event = event_of_record(codec, record.key, record.value, headers, tombstones=tombstones)
    if partitions:
        check_envelope(record, event if record.value is not None else None, partitions, streams)
    out = SourceRecord(
        record.topic,
        record.partition,
        record.offset,
        record.timestamp,
        record.key,
        record.value if record.value is not None else b"",
        headers,
        event,
    )
    if hooks.installed:
        hooks.read(out)
    return out
