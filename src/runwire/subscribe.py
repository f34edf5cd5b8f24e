"""Typed event subscribers on faststream, for analytics and other side consumers.

Contract:
- A ``Subscription`` is a set of typed handlers that share one consumer group.
  ``@subscription.on(ToolUse)`` registers ``async def handler(payload, event)``;
  handlers of a type run in registration order, one record at a time, in
  partition order (so per run, in the run's order).
- ``subscription.attach(broker)`` adds one faststream subscriber per topic the
  handlers need (run events, session events, memory), in the consumer group
  ``<topic_prefix><group_id>``, reading from the beginning of the log the
  first time the group runs, committed records only (an aborted Kafka
  transaction's records are skipped, as by every runwire consumer).
- Values are decoded with runwire's codec; a tombstone on the memory topic
  arrives as its ``memory_deleted`` event. Records of types no handler wants
  are skipped without decoding, by the type their frame's schema names (never
  by the ``runwire-type`` header, which a producer may get wrong); a record
  of no known schema is decoded, and so refused, whatever its headers say.
- Every record passes the one envelope check (:mod:`runwire.log.envelope`:
  its key is its event's routing key, its partition the contract
  partitioner's); one that does not, or does not decode, goes to the
  ``on_undecodable`` hook with its reason (default:
  a warning naming topic, partition, offset and reason; for a record of an
  erased session, reason ``erased``, nothing) and is skipped: a
  side consumer never stalls on one bad record. Projections that must not
  lose anything use the projector runtime and its dead letters instead.
- A repeat of an event already handed over is dropped, and its id with
  another body goes to ``on_undecodable`` (``conflicting_duplicate_event``),
  as every consumer refuses it (:mod:`runwire.contract.identity`); the
  subscription remembers the most recent 200,000 ids of this process.
- Delivery is at least once: the group's offset is committed after the
  handlers ran (faststream ``AckPolicy.ACK``), so a crash may hand a record
  again. Handlers that count should drop repeats by ``event.event_id``.
- ``dispatch(event)`` runs the handlers without Kafka (replays, tests).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage

from runwire.contract.codec import Codec, codec_for
from runwire.contract.events import PAYLOAD_TYPES, Event, EventPayload, EventType, Stream
from runwire.contract.identity import StreamIds
from runwire.contract.routing import event_of_record, streams_by_topic, topic_for
from runwire.contract.sealing.errors import ERASED
from runwire.errors import ConfigurationError, DecodeError
from runwire.log.envelope import check_envelope
from runwire.settings import Settings

log = logging.getLogger(__name__)

_IDS_REMEMBERED = 200_000
"""Event ids a subscription remembers (per process) to drop repeats and refuse reused ids."""

P = TypeVar("P", bound=EventPayload)
Handler = Callable[[P, Event], Awaitable[None]]
UndecodableHook = Callable[["ConsumerRecord[bytes, bytes]", DecodeError], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _Skipped:
    """A record no handler wants (by its type header)."""


@dataclass(frozen=True, slots=True)
class _Undecodable:
    record: ConsumerRecord[bytes, bytes]
    error: DecodeError


async def _warn_undecodable(record: ConsumerRecord[bytes, bytes], error: DecodeError) -> None:
    if error.reason == ERASED:  # its session was erased (docs/sealing.md): no fault
        log.debug("skipping a record of an erased session: %s", error)
        return
    log.warning(
        "skipping undecodable record %s[%d]@%d: %s",
        record.topic,
        record.partition,
        record.offset,
        error,
    )


def runwire_broker(settings: Settings, **options: Any) -> KafkaBroker:
    """A faststream ``KafkaBroker`` for the cluster in ``settings``."""
    return KafkaBroker(
        settings.kafka_bootstrap_servers, client_id=f"{settings.client_id}-subscriber", **options
    )


class Subscription:
    """Typed handlers sharing one consumer group; see the module contract."""

    def __init__(self, settings: Settings, group_id: str, *, codec: Codec | None = None) -> None:
        self._settings = settings
        self._streams = streams_by_topic(settings)
        self.group_id = f"{settings.topic_prefix}{group_id}"
        self._codec = codec if codec is not None else codec_for(settings)
        self._handlers: dict[EventType, list[Callable[[Any, Event], Awaitable[None]]]] = (
            defaultdict(list)
        )
        self._on_undecodable: UndecodableHook = _warn_undecodable
        self._subscriber: object | None = None
        self._topic_partitions: dict[str, tuple[int, ...]] = {}
        self._ids = StreamIds(limit=_IDS_REMEMBERED)

    # -- registration ------------------------------------------------------------

    def on(self, payload_type: type[P]) -> Callable[[Handler[P]], Handler[P]]:
        """Register ``async def handler(payload: payload_type, event: Event)``."""
        if payload_type not in PAYLOAD_TYPES.values():
            raise TypeError(f"{payload_type!r} is not a runwire event payload")

        def register(handler: Handler[P]) -> Handler[P]:
            self._handlers[payload_type.event_type].append(handler)
            return handler

        return register

    def on_undecodable(self, hook: UndecodableHook) -> UndecodableHook:
        """Replace what happens to records that do not decode (default: a warning)."""
        self._on_undecodable = hook
        return hook

    @property
    def event_types(self) -> frozenset[EventType]:
        return frozenset(self._handlers)

    def topics(self) -> list[str]:
        """The topics the registered handlers need, in a stable order."""
        streams = {t.stream for t in self._handlers}
        return [topic_for(s, self._settings) for s in Stream if s in streams]

    # -- running -----------------------------------------------------------------

    async def dispatch(self, event: Event) -> None:
        """Run the handlers registered for ``event``'s type, in registration order."""
        for handler in self._handlers.get(event.type, ()):
            await handler(event.payload, event)

    def _decode(self, message: StreamMessage[Any]) -> Event | _Skipped | _Undecodable:
        record: ConsumerRecord[bytes, bytes] = message.raw_message
        headers = record.headers or ()
        # Skipped by what the record holds: its frame's schema (a header may say
        # otherwise), and on the memory topic a tombstone is only ever memory_deleted.
        memory = record.topic == self._settings.memory
        if record.value is not None:
            kind = self._codec.framed_type(record.value)
        else:
            kind = EventType.MEMORY_DELETED if memory else None
        if kind is not None and kind not in self._handlers:
            return _Skipped()
        try:
            event = event_of_record(
                self._codec,
                record.key,
                record.value,
                headers,
                tombstones=memory,
            )
            partitions = self._partitions(record.topic)
            check_envelope(
                record, event if record.value is not None else None, partitions, self._streams
            )
            if not self._ids.admit(event, record.key):
                return _Skipped()  # a repeat of an event handed over already
        except DecodeError as e:
            return _Undecodable(record, e)
        if event.type not in self._handlers:  # a record without our headers
            return _Skipped()
        return event

    @staticmethod
    async def _parse(
        record: ConsumerRecord[bytes, bytes],
        original: Callable[[ConsumerRecord[bytes, bytes]], Awaitable[StreamMessage[Any]]],
    ) -> StreamMessage[Any]:
        """faststream's parser, for any header values: Kafka headers are bytes, and its
        own decodes each as UTF-8, so one foreign header that is not (an extra one, a
        binary trace id) lost the record before our decoder saw it."""
        try:
            return await original(record)
        except UnicodeDecodeError:
            readable = [(k, v.decode(errors="replace").encode()) for k, v in record.headers]
            message = await original(dataclasses.replace(record, headers=readable))
            message.raw_message = record  # what we read: the headers as written
            return message

    def _partitions(self, topic: str) -> tuple[int, ...]:
        """The topic's partitions, from the running consumer's metadata (cached)."""
        known = self._topic_partitions.get(topic)
        if known is not None:
            return known
        consumer = getattr(self._subscriber, "consumer", None)
        found = consumer.partitions_for_topic(topic) if consumer is not None else None
        if not found:
            # Not known yet: the record is read; its key is checked, its partition
            # cannot be. (The consumer knows its topics' metadata once assigned.)
            return ()
        self._topic_partitions[topic] = out = tuple(sorted(found))
        return out

    async def _handle(self, body: Any) -> None:
        if isinstance(body, Event):
            await self.dispatch(body)
        elif isinstance(body, _Undecodable):
            await self._on_undecodable(body.record, body.error)

    def attach(self, broker: KafkaBroker, *, from_beginning: bool = True) -> None:
        """Subscribe the handlers on ``broker`` (call before the broker starts)."""
        if not self._handlers:
            raise ConfigurationError(f"subscription {self.group_id!r} has no handlers")
        subscriber = broker.subscriber(
            *self.topics(),
            group_id=self.group_id,
            auto_offset_reset="earliest" if from_beginning else "latest",
            # As every runwire consumer (runwire.log.clients): an aborted
            # transaction's records were never written.
            isolation_level="read_committed",
            parser=self._parse,
            decoder=self._decode,
            ack_policy=AckPolicy.ACK,
        )
        subscriber(self._handle)
        self._subscriber = subscriber
