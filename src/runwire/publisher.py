"""The publisher: puts events on Kafka, idempotently, for any service.

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
  (nothing interleaves) and are written all or nothing.
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
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from runwire.contract.codec import Codec
from runwire.contract.events import Event, Stream
from runwire.contract.routing import (
    Headers,
    is_tombstone,
    record_headers,
    record_key,
    topic_for,
)
from runwire.errors import ConfigurationError, ContractError, PublishError
from runwire.settings import Settings


@dataclass(frozen=True, slots=True)
class Position:
    """Where a record lies in the log."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class _Record:
    event: Event
    topic: str
    key: bytes
    value: bytes | None
    headers: Headers


def _publish_error(message: str, cause: BaseException) -> PublishError:
    """A ``PublishError`` whose retry posture follows the client's verdict."""
    error = PublishError(f"{message}: {type(cause).__name__}: {cause}")
    # aiokafka marks broker-side transient errors; a timeout or a lost
    # connection is worth a retry too (the event keeps its id, so a duplicate
    # is harmless). Anything else (authorization, a record the broker finds
    # too large, a closed producer) will fail again.
    error.retriable = bool(getattr(cause, "retriable", False)) or isinstance(
        cause, TimeoutError | ConnectionError
    )
    return error


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
        self._codec = (
            codec if codec is not None else Codec(max_event_bytes=settings.max_event_bytes)
        )
        self._state: _NotStarted | _Running | _Stopped = _NotStarted()
        self._partitioner = DefaultPartitioner()

    @property
    def settings(self) -> Settings:
        return self._settings

    def producer_options(self) -> dict[str, Any]:
        """The aiokafka producer options this publisher uses (the benchmark reuses them)."""
        s = self._settings
        return {
            "bootstrap_servers": s.kafka_bootstrap_servers,
            "client_id": s.client_id,
            "acks": "all",
            "enable_idempotence": True,
            "compression_type": None
            if s.producer_compression == "none"
            else s.producer_compression,
            "linger_ms": s.producer_linger_ms,
            "max_batch_size": s.producer_max_batch_bytes,
            # A single event may be up to max_event_bytes; leave room for headers.
            "max_request_size": max(1_048_576, s.max_event_bytes + 65_536),
        }

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Connect to Kafka. Raises ``PublishError`` when the cluster cannot be reached."""
        if isinstance(self._state, _Running):
            return
        if isinstance(self._state, _Stopped):
            raise PublishError("the publisher is stopped; create a new one")
        try:
            producer = AIOKafkaProducer(**self.producer_options())
        except RuntimeError as e:  # aiokafka: the compression library is missing
            raise ConfigurationError(
                f"producer_compression={self._settings.producer_compression!r} cannot be used: {e}"
            ) from e
        try:
            await producer.start()
        except (KafkaError, OSError, TimeoutError) as e:
            await producer.stop()
            raise _publish_error(
                f"cannot reach Kafka at {self._settings.kafka_bootstrap_servers} "
                "(kafka_bootstrap_servers)",
                e,
            ) from e
        self._state = _Running(producer)

    async def stop(self) -> None:
        """Flush what is queued and disconnect; safe to call more than once."""
        state, self._state = self._state, _Stopped()
        if isinstance(state, _Running):
            try:
                await state.producer().stop()
            except KafkaError as e:
                raise _publish_error(
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

    def _record(self, event: Event) -> _Record:
        if is_tombstone(event):
            value, fingerprint = None, None
        else:
            value = self._codec.encode(event)
            fingerprint = self._codec.writer_schema(event.type).fingerprint
        return _Record(
            event=event,
            topic=topic_for(event.stream, self._settings),
            key=record_key(event),
            value=value,
            headers=record_headers(event, fingerprint),
        )

    async def _send(self, record: _Record) -> asyncio.Future[Any]:
        producer = self._state.producer()
        try:
            future: asyncio.Future[Any] = await producer.send(
                record.topic, value=record.value, key=record.key, headers=record.headers
            )
        except (KafkaError, TimeoutError) as e:
            raise _publish_error(self._what(record), e) from e
        return future

    @staticmethod
    def _what(record: _Record) -> str:
        event = record.event
        return f"publishing {event.type.value} {event.event_id} to {record.topic}"

    async def _delivered(self, record: _Record, future: asyncio.Future[Any]) -> Position:
        try:
            metadata = await future
        except (KafkaError, TimeoutError) as e:
            raise _publish_error(self._what(record), e) from e
        return Position(metadata.topic, metadata.partition, metadata.offset)

    async def publish(self, event: Event) -> Position:
        """Write one event and return where it lies once the broker has it."""
        record = self._record(event)
        return await self._delivered(record, await self._send(record))

    async def publish_many(self, events: Sequence[Event]) -> list[Position]:
        """Write events in order (per key) without waiting for each; positions in input order.

        Every event is encoded (and size-checked) before the first is sent. If
        one fails, ``PublishError`` is raised after all have settled; others
        may have been written.
        """
        records = [self._record(e) for e in events]
        futures = [await self._send(r) for r in records]
        results = await asyncio.gather(
            *(self._delivered(r, f) for r, f in zip(records, futures, strict=True)),
            return_exceptions=True,
        )
        positions: list[Position] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            positions.append(result)
        return positions

    async def publish_message(self, events: Sequence[Event]) -> list[Position]:
        """Write the events of one assistant message as one record batch on the run's partition.

        The events must be run events of one run. Their positions are
        consecutive offsets of one partition, in the given order.
        """
        if not events:
            raise ContractError("publish_message needs at least one event")
        run_ids = {e.run_id for e in events}
        if len(run_ids) != 1 or any(e.stream is not Stream.RUN for e in events):
            raise ContractError(
                "publish_message takes the run events of one run; got "
                f"{sorted(e.type.value for e in events)} for runs {sorted(map(str, run_ids))}"
            )
        records = [self._record(e) for e in events]
        producer = self._state.producer()
        topic, key = records[0].topic, records[0].key
        try:
            partitions = sorted(await producer.partitions_for(topic))
            # The producer's own partitioner, so the batch lands where publish()
            # puts the run's other events.
            partition = self._partitioner(key, partitions, partitions)
            batch = producer.create_batch()
            for record in records:
                if (
                    batch.append(
                        key=key, value=record.value, timestamp=None, headers=record.headers
                    )
                    is None
                ):
                    raise PublishError(
                        f"the {len(records)} events of this message for run {events[0].run_id} "
                        f"do not fit one record batch of producer_max_batch_bytes="
                        f"{self._settings.producer_max_batch_bytes}; raise that setting "
                        "(and the topic's max.message.bytes) to write them atomically"
                    )
            batch.close()  # nothing from send() may join it
            future = await producer.send_batch(batch, topic, partition=partition)
            metadata = await future
        except PublishError as e:
            e.retriable = False
            raise
        except (KafkaError, TimeoutError) as e:
            raise _publish_error(
                f"publishing a message of {len(records)} events for run {events[0].run_id} to {topic}",
                e,
            ) from e
        return [Position(topic, partition, metadata.offset + i) for i in range(len(records))]
