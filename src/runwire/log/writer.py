"""The one writer: puts events on Kafka, idempotently, for every part of runwire.

Contract:
- ``async with Publisher(settings) as pub`` (or ``await start()`` /
  ``await stop()``; ``stop()`` is safe to call twice and flushes what is
  queued). Using a publisher that is not started or already stopped raises
  ``PublishError`` saying so.
- The producer runs with ``acks=all`` and idempotence on, so a retry inside
  the client never duplicates or reorders a record; compression, linger and
  batch size come from ``Settings``.
- ``publish(event)`` returns the event's ``Position`` once the broker has it:
  a caller that got a position was told the truth, a caller that got an
  exception was not told the event was written (it may still have been: a
  retry then writes a duplicate with the same ``event_id``, which consumers
  drop).
- Records are keyed and routed by ``runwire.contract.routing``: run events on
  the run's partition, in the order ``publish`` was called for that run.
- ``publish_message(events)`` appends the events of one assistant message as
  one Kafka record batch on the run's partition: they get consecutive offsets
  (nothing interleaves) and are written all or nothing. Messages for one
  partition that wait together may share a record batch (each stays
  contiguous; the whole batch is written all or nothing, which is stronger);
  messages queued for a partition are written in the order they were queued,
  so many concurrent calls on one partition neither time out waiting for
  each other nor cost one round trip each.
- ``enqueue_message(events)`` queues a message *now* (no await) and returns
  the future of its positions: a service can queue a run's acknowledgement
  and later its answer without waiting, and the log keeps that order.
  (Call :meth:`Publisher.prepare_topic` first so the partitions are known.)
- The tenant is the writer's, never the caller's (:mod:`runwire.log.tenancy`):
  with ``settings.tenant`` set every event is written with it, and one
  naming another tenant is refused with ``ContractError`` before anything
  is sent.
- Every record passes :func:`runwire.log.hooks.writing` (trace context,
  tenant, counters), every publish call the hooks' publish scope when one
  is set (a tracing span per call), and the partitioner is :func:`runwire.log.partitioner.partition_for`.
- Every failure reaches the caller as ``PublishError`` (or
  ``EventTooLargeError`` / ``ContractError`` for events that can never be
  written, raised before anything is sent); nothing is dropped silently.

Why a record batch and not a Kafka transaction for ``publish_message``: a
batch is appended to the partition log as one unit, which gives both
atomicity and contiguity, needs no ``transactional_id`` (one per producer
instance, with fencing to manage) and no ``read_committed`` consumers. A
transaction would give atomicity only: records from other producers can
still land between its records. The price is that one message must fit one
batch (``producer_max_batch_bytes``); a larger one is refused with a clear
error instead of being split.

Why a queue per partition in front of ``send_batch``: aiokafka keeps one
batch per partition in its accumulator and sends at most one per partition
per request, so N concurrent ``send_batch`` calls on one partition wait
behind each other inside ``add_batch``, whose timeout loop subtracts the
whole elapsed time on every wait: around 40 waiters, the last ones fail with
``KafkaTimeoutError`` although nothing is wrong. The publisher instead
queues messages per partition and one task per partition writes them: it
puts everything queued (up to the batch size) into the next record batch and
waits for its delivery before building the next, so at most one of our
batches per partition is ever in aiokafka and a round trip carries as many
messages as were waiting.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NamedTuple, Protocol, Self, runtime_checkable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from runwire.contract.codec import Codec, codec_for
from runwire.contract.events import Event, EventType, Stream
from runwire.contract.routing import (
    HEADER_EVENT_ID,
    HEADER_SCHEMA,
    HEADER_TYPE,
    Headers,
    record_headers,
    record_key,
    topic_for,
)
from runwire.errors import ConfigurationError, ContractError, PublishError
from runwire.log import clients, hooks, tenancy
from runwire.log.partitioner import partition_for
from runwire.log.retrying import kafka_error
from runwire.settings import Settings

__all__ = ["EventWriter", "OutgoingRecord", "Position", "Publisher", "QueueingWriter"]


class Position(NamedTuple):
    """Where a record lies in the log."""

    topic: str
    partition: int
    offset: int


class OutgoingRecord(NamedTuple):
    """What the publisher hands to Kafka for one event."""

    event: Event
    topic: str
    key: bytes
    value: bytes | None
    """None for a tombstone."""
    headers: Headers


class EventWriter(Protocol):
    """What writers of events need of the publisher (services take this, tests pass twins)."""

    async def publish(self, event: Event) -> Position:
        """Write one event; return once the broker has it."""
        ...

    async def publish_many(self, events: Sequence[Event]) -> list[Position]:
        """Write events in order (per key) without waiting for each."""
        ...

    async def publish_message(self, events: Sequence[Event]) -> list[Position]:
        """Write the run events of one run as one atomic, contiguous record batch."""
        ...


@runtime_checkable
class QueueingWriter(EventWriter, Protocol):
    """A writer that queues a partition's messages in call order without waiting."""

    def enqueue_message(self, events: Sequence[Event]) -> Awaitable[list[Position]]:
        """Queue the events (one run's) now; the awaitable resolves once they are written."""
        ...


@dataclass(frozen=True, slots=True)
class _Route:
    """What every record of one event type shares (computed once per type)."""

    topic: str
    tombstone: bool
    type_header: tuple[str, bytes]
    schema_header: tuple[str, bytes] | None


_BATCH_HEADER_BYTES = 61
"""Bytes of a v2 record batch's header (counted by aiokafka's batch size check)."""
_RECORD_MAX_OVERHEAD = 5 + 10 + 5 + 1 + 5 + 5 + 5
"""At most, per record, besides key, value and headers: its length, timestamp
delta, offset delta (varints), attributes, key, value and header-count lengths."""
_HEADER_MAX_OVERHEAD = 10
"""At most, per record header: its two lengths (varints)."""


@dataclass(eq=False, slots=True)
class _QueuedMessage:
    """One message waiting for its partition's writer."""

    records: list[OutgoingRecord]
    key: bytes
    what: str
    size: int
    """An upper bound of the bytes its records take in a record batch."""
    done: asyncio.Future[int] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    """The offset of its first record."""

    def __post_init__(self) -> None:
        # A caller that gave up no longer awaits the outcome; mark a failure
        # seen so asyncio does not log it as never retrieved.
        self.done.add_done_callback(lambda f: f.cancelled() or f.exception())

    @classmethod
    def of(cls, records: list[OutgoingRecord], what: str) -> _QueuedMessage:
        key = records[0].key
        size = sum(
            _RECORD_MAX_OVERHEAD
            + len(key)
            + len(r.value or b"")
            + sum(_HEADER_MAX_OVERHEAD + len(k.encode()) + len(v) for k, v in r.headers)
            for r in records
        )
        return cls(records, key, what, size)

    def fail(self, error: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(error)


class _NotStarted:
    def producer(self) -> AIOKafkaProducer:
        raise PublishError(
            "the publisher is not started: use `async with Publisher(settings)` "
            "or `await publisher.start()`"
        )


class _Stopped:
    def producer(self) -> AIOKafkaProducer:
        raise PublishError("the publisher is stopped; create a new one")


class _Running:
    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    def producer(self) -> AIOKafkaProducer:
        return self._producer


class Publisher:
    """Publishes runwire events to Kafka; see the module contract."""

    def __init__(self, settings: Settings, *, codec: Codec | None = None) -> None:
        self._settings = settings
        self._codec = codec if codec is not None else codec_for(settings)
        self._state: _NotStarted | _Running | _Stopped = _NotStarted()
        self._partitions: dict[str, list[int]] = {}
        self.batches = 0
        """Record batches written by ``publish_message`` / ``enqueue_message``."""
        self._routes: dict[EventType, _Route] = {}
        self._queues: dict[tuple[str, int], deque[_QueuedMessage]] = {}
        self._writers: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._tenant = tenancy.writer_tenant(settings)

    @property
    def settings(self) -> Settings:
        return self._settings

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Connect to Kafka. Raises ``PublishError`` when the cluster cannot be reached."""
        if isinstance(self._state, _Running):
            return
        if isinstance(self._state, _Stopped):
            raise PublishError("the publisher is stopped; create a new one")
        await self._codec.prepare()  # registers the schemas when a registry is configured
        try:
            producer = clients.producer(self._settings, "publisher")
        except RuntimeError as e:  # aiokafka: the compression library is missing
            raise ConfigurationError(
                f"producer_compression={self._settings.producer_compression!r} cannot be used: {e}"
            ) from e
        try:
            await producer.start()
        except (KafkaError, OSError, TimeoutError) as e:
            await producer.stop()
            raise kafka_error(
                f"cannot reach Kafka at {self._settings.kafka_bootstrap_servers} "
                "(kafka_bootstrap_servers)",
                e,
            ) from e
        self._state = _Running(producer)

    async def stop(self) -> None:
        """Flush what is queued and disconnect; safe to call more than once."""
        state, self._state = self._state, _Stopped()
        if isinstance(state, _Running):
            # Queued messages go out first (their callers are waiting for them).
            writers = [w for w in self._writers.values() if not w.done()]
            if writers:
                await asyncio.gather(*writers, return_exceptions=True)
            try:
                await state.producer().stop()
            except KafkaError as e:
                raise kafka_error(
                    "stopping the publisher failed; queued events may be lost", e
                ) from e

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- publishing ------------------------------------------------------------

    def _route(self, event_type: EventType) -> _Route:
        route = self._routes.get(event_type)
        if route is None:
            tombstone = event_type is EventType.MEMORY_DELETED
            schema = None if tombstone else self._codec.writer_schema(event_type)
            route = _Route(
                topic=topic_for(event_type.stream, self._settings),
                tombstone=tombstone,
                type_header=(HEADER_TYPE, event_type.value.encode()),
                schema_header=None
                if schema is None
                else (HEADER_SCHEMA, schema.fingerprint.hex().encode()),
            )
            self._routes[event_type] = route
        return route

    def record_for(self, event: Event) -> OutgoingRecord:
        """The record ``publish`` would write for ``event`` (encoded and size-checked)."""
        if self._tenant is not None:
            event = tenancy.stamped(event, self._tenant)
        route = self._route(event.type)
        if route.schema_header is None:
            headers = record_headers(event, None)
            value = None
        else:
            # The same headers as routing.record_headers, from per-type parts.
            headers = [
                route.type_header,
                (HEADER_EVENT_ID, event.event_id.encode()),
                route.schema_header,
            ]
            value = self._codec.encode(event)
        if hooks.installed:
            hooks.writing(event, route.topic, headers)
        return OutgoingRecord(event, route.topic, record_key(event), value, headers)

    @staticmethod
    def _what(record: OutgoingRecord) -> str:
        event = record.event
        return f"publishing {event.type.value} {event.event_id} to {record.topic}"

    async def _send(
        self, producer: AIOKafkaProducer, record: OutgoingRecord
    ) -> asyncio.Future[Any]:
        try:
            future: asyncio.Future[Any] = await producer.send(
                record.topic, value=record.value, key=record.key, headers=record.headers
            )
        except (KafkaError, TimeoutError) as e:
            raise kafka_error(self._what(record), e) from e
        return future

    async def publish(self, event: Event) -> Position:
        """Write one event and return where it lies once the broker has it."""
        if hooks.scope is None:
            return await self._publish(event)
        with hooks.scope(self._route(event.type).topic, (event,)):
            return await self._publish(event)

    async def _publish(self, event: Event) -> Position:
        record = self.record_for(event)
        future = await self._send(self._state.producer(), record)
        try:
            metadata = await future
        except (KafkaError, TimeoutError) as e:
            raise kafka_error(self._what(record), e) from e
        return Position(metadata.topic, metadata.partition, metadata.offset)

    async def publish_many(self, events: Sequence[Event]) -> list[Position]:
        """Write events in order (per key) without waiting for each; positions in input order.

        Every event is encoded (and size-checked) before the first is sent. If
        one fails, ``PublishError`` is raised once all have settled; the others
        may have been written.
        """
        if hooks.scope is None or not events:
            return await self._publish_many(events)
        with hooks.scope(self._route(events[0].type).topic, events):
            return await self._publish_many(events)

    async def _publish_many(self, events: Sequence[Event]) -> list[Position]:
        records = [self.record_for(e) for e in events]
        producer = self._state.producer()
        futures: list[asyncio.Future[Any]] = []
        try:
            for record in records:
                futures.append(await self._send(producer, record))
        finally:
            # Settle what was queued before a failure, so no delivery error goes unseen.
            results = await asyncio.gather(*futures, return_exceptions=True)
        positions: list[Position] = []
        for record, result in zip(records, results, strict=False):
            if isinstance(result, BaseException):
                raise kafka_error(self._what(record), result) from result
            positions.append(Position(result.topic, result.partition, result.offset))
        return positions

    async def publish_message(self, events: Sequence[Event]) -> list[Position]:
        """Write the events of one assistant message as one record batch on the run's partition.

        The events must be run events of one run. Their positions are
        consecutive offsets of one partition, in the given order.
        """
        if hooks.scope is None or not events:
            return await self._publish_message(events)
        with hooks.scope(self._route(events[0].type).topic, events):
            return await self._publish_message(events)

    async def _publish_message(self, events: Sequence[Event]) -> list[Position]:
        records, what = self._message(events)
        topic = records[0].topic
        if topic not in self._partitions:
            await self.prepare_topic(topic)
        # Shielded: a caller that gives up does not unqueue the message (it may
        # already be in a batch); like any caller told nothing, it may be written.
        return await asyncio.shield(self._queue_message(records, what))

    def enqueue_message(self, events: Sequence[Event]) -> asyncio.Future[list[Position]]:
        """Queue one message now (no await); the future of its positions.

        Messages of one partition are written in the order they were queued.
        Encoding errors are raised here; the topic's partitions must be known
        (:meth:`prepare_topic`, or an earlier ``publish_message``).
        """
        if hooks.scope is None or not events:
            records, what = self._message(events)
        else:
            with hooks.scope(self._route(events[0].type).topic, events):
                records, what = self._message(events)  # the span covers the encoding
        if records[0].topic not in self._partitions:
            raise PublishError(
                f"{what}: the partitions of {records[0].topic} are not known yet; "
                "call prepare_topic() after start()"
            )
        return self._queue_message(records, what)

    async def prepare_topic(self, topic: str) -> list[int]:
        """Learn (once) the partitions of ``topic``, so messages can be queued without waiting."""
        known = self._partitions.get(topic)
        if known is not None:
            return known
        try:
            partitions = sorted(await self._state.producer().partitions_for(topic))
        except (KafkaError, TimeoutError) as e:
            raise kafka_error(f"looking up the partitions of {topic}", e) from e
        return self._partitions.setdefault(topic, partitions)

    def _message(self, events: Sequence[Event]) -> tuple[list[OutgoingRecord], str]:
        if not events:
            raise ContractError("a message needs at least one event")
        run_ids = {e.run_id for e in events}
        if len(run_ids) != 1 or any(e.stream is not Stream.RUN for e in events):
            raise ContractError(
                "a message is the run events of one run; got "
                f"{sorted(e.type.value for e in events)} for runs {sorted(map(str, run_ids))}"
            )
        records = [self.record_for(e) for e in events]
        what = (
            f"publishing a message of {len(records)} events for run {events[0].run_id} "
            f"to {records[0].topic}"
        )
        return records, what

    def _queue_message(
        self, records: list[OutgoingRecord], what: str
    ) -> asyncio.Future[list[Position]]:
        producer = self._state.producer()
        topic = records[0].topic
        partition = partition_for(records[0].key, self._partitions[topic])
        message = _QueuedMessage.of(records, what)
        self._enqueue(producer, topic, partition, message)
        out: asyncio.Future[list[Position]] = asyncio.get_running_loop().create_future()

        def settle(done: asyncio.Future[int]) -> None:
            if out.done():
                return
            if done.cancelled():
                out.cancel()
            elif (error := done.exception()) is not None:
                out.set_exception(error)
            else:
                first = done.result()
                out.set_result([Position(topic, partition, first + i) for i in range(len(records))])

        message.done.add_done_callback(settle)
        # A caller that gave up no longer awaits the outcome: no "never retrieved" noise.
        out.add_done_callback(lambda f: f.cancelled() or f.exception())
        return out

    def _enqueue(
        self, producer: AIOKafkaProducer, topic: str, partition: int, message: _QueuedMessage
    ) -> None:
        queue = self._queues.setdefault((topic, partition), deque())
        queue.append(message)
        writer = self._writers.get((topic, partition))
        if writer is None or writer.done():
            self._writers[(topic, partition)] = asyncio.create_task(
                self._write_queue(producer, topic, partition, queue),
                name=f"runwire-publisher-{topic}-{partition}",
            )

    async def _write_queue(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        partition: int,
        queue: deque[_QueuedMessage],
    ) -> None:
        """Write what is queued for one partition, a record batch at a time, until empty."""
        limit = self._settings.producer_max_batch_bytes
        while queue:
            taken: list[tuple[_QueuedMessage, int]] = []
            try:
                batch = producer.create_batch()
                while queue:
                    message = queue[0]
                    if taken and batch.size() + message.size > limit:
                        break  # the next batch takes it
                    queue.popleft()
                    first = batch.record_count()
                    if not self._append(batch, message):
                        # Only a message alone in its batch can fail to fit: the
                        # size bound above is an upper bound of aiokafka's own
                        # accounting, so it holds back any later one that might not.
                        assert not taken, "a message was split across batches"
                        batch = producer.create_batch()
                        continue
                    taken.append((message, first))
                if not taken:
                    continue
                batch.close()  # nothing from send() may join it
                self.batches += 1
                future = await producer.send_batch(batch, topic, partition=partition)
                metadata = await future
            except (KafkaError, TimeoutError) as e:
                for message, _ in taken:
                    message.fail(kafka_error(message.what, e))
                continue
            except BaseException as e:
                # Never leave a caller waiting: everything taken or queued fails.
                error = PublishError(
                    f"the publisher's writer for {topic}[{partition}] failed: {e!r}"
                )
                for message in [m for m, _ in taken] + list(queue):
                    message.fail(error)
                queue.clear()
                raise
            for message, first in taken:
                if not message.done.done():
                    message.done.set_result(metadata.offset + first)

    def _append(self, batch: Any, message: _QueuedMessage) -> bool:
        """Append a message's records to ``batch``; False (and the message failed) if it cannot fit."""
        for record in message.records:
            appended = batch.append(
                key=message.key, value=record.value, timestamp=None, headers=record.headers
            )
            if appended is None:
                error = PublishError(
                    f"the {len(message.records)} events of this message for run "
                    f"{message.records[0].event.run_id} do not fit one record batch of "
                    f"producer_max_batch_bytes={self._settings.producer_max_batch_bytes}; "
                    "raise that setting (and the topic's max.message.bytes) to write them "
                    "atomically"
                )
                error.retriable = False
                message.fail(error)
                return False
        return True
