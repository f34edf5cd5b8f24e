"""Many runs' messages in one Kafka record batch: the orchestrator's answer path.

Why: a record batch is what makes a message (one answer's events) atomic and
contiguous on its partition, but aiokafka sends at most one batch per
partition per produce request and keeps one request in flight per broker.
One batch per answer therefore caps a service at a dozen answers per round
trip. This writer puts every message waiting for a partition into the next
batch instead, so answers per round trip grow with concurrency.

Contract (:class:`MessageBatcher`, an
:class:`~runwire.services.publishing.EventPublisher` for run events):
- ``publish_message(events)`` has the contract of
  :meth:`runwire.publisher.Publisher.publish_message`: the events (run
  events of one run) get consecutive offsets on the run's partition, all or
  nothing, and the call returns once the broker has them. Messages of other
  runs may share the record batch, before or after, never in between.
- Events are encoded (and refused: too large, not a contract event) before
  anything is queued; a batch that fails fails every message in it with
  ``PublishError`` (retriable when the client says so: ids are
  deterministic, so retrying is safe).
- At most one batch per partition is in flight, and messages of a
  partition are written in the order they were queued:
  ``enqueue_message`` queues without waiting, so a service can queue a
  run's acknowledgement and later its answer and know the log keeps that
  order. ``publish(event)`` is a message of one event. A message larger
  than ``producer_max_batch_bytes`` is refused, like the publisher does.
- Uses its own idempotent producer with the publisher's options.
  ``start()`` / ``stop()`` (idempotent) or ``async with``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from runwire.contract.codec import Codec, codec_for
from runwire.contract.events import Event, Stream
from runwire.contract.routing import record_headers, record_key, topic_for
from runwire.errors import ContractError, PublishError
from runwire.publisher import Position, Publisher
from runwire.services.lifecycle import AsyncService
from runwire.settings import Settings

__all__ = ["MessageBatcher"]


_BATCH_OVERHEAD = 61
"""Bytes of a v2 record batch's header."""
_RECORD_OVERHEAD = 40
"""At most, per record: attributes, offset and timestamp deltas, lengths (varints)."""
_HEADER_OVERHEAD = 10
"""At most, per record header: its two lengths (varints)."""


@dataclass
class _Message:
    records: list[tuple[bytes, list[tuple[str, bytes]]]]
    key: bytes
    done: asyncio.Future[list[Position]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def size(self) -> int:
        """An upper bound of the bytes the message takes in a record batch."""
        return sum(
            _RECORD_OVERHEAD
            + len(self.key)
            + len(value)
            + sum(_HEADER_OVERHEAD + len(k.encode()) + len(v) for k, v in headers)
            for value, headers in self.records
        )


class MessageBatcher(AsyncService):
    """Writes messages of many runs per record batch; see the module contract."""

    def __init__(self, settings: Settings, *, codec: Codec | None = None) -> None:
        self._settings = settings
        self._codec = codec or codec_for(settings)
        self._topic = settings.run_events
        self._options = Publisher(settings).producer_options()
        self._max_bytes = settings.producer_max_batch_bytes
        self._producer: Any = None
        self._partitions: list[int] = []
        self._queues: dict[int, deque[_Message]] = {}
        self._flushers: dict[int, asyncio.Task[None]] = {}
        self._partitioner = DefaultPartitioner()
        self._stopped = False
        self.batches = 0
        """Record batches sent (each holds one or more messages)."""

    async def start(self) -> None:
        if self._producer is not None:
            return
        await self._codec.prepare()  # registers the schemas when a registry is configured
        producer = AIOKafkaProducer(**{**self._options, "client_id": "runwire-batcher"})
        try:
            await producer.start()
            self._partitions = sorted(await producer.partitions_for(self._topic))
        except (KafkaError, OSError) as e:
            await producer.stop()
            raise PublishError(
                f"cannot reach Kafka at {self._settings.kafka_bootstrap_servers}: {e}"
            ) from e
        self._producer = producer

    async def stop(self) -> None:
        """Let queued messages go out, then disconnect. Idempotent."""
        if self._producer is None or self._stopped:
            return
        self._stopped = True
        flushers = list(self._flushers.values())
        if flushers:
            await asyncio.gather(*flushers, return_exceptions=True)
        await self._producer.stop()

    async def publish_message(self, events: Sequence[Event]) -> list[Position]:
        """Write one message atomically and contiguously; see the module contract."""
        return await asyncio.shield(self.enqueue_message(events))

    async def publish(self, event: Event) -> Position:
        """Write one event (a message of one)."""
        return (await self.publish_message([event]))[0]

    def enqueue_message(self, events: Sequence[Event]) -> asyncio.Future[list[Position]]:
        """Queue a message now (no await) and return its delivery future.

        Messages of one partition are written in the order they were queued,
        so a caller can queue several messages of a run without waiting for
        each, and the log keeps their order. Encoding errors are raised here.
        """
        if self._producer is None or self._stopped:
            raise PublishError("the message batcher is not running: use `async with`")
        if not events:
            raise ContractError("publish_message needs at least one event")
        if len({e.run_id for e in events}) != 1 or any(e.stream is not Stream.RUN for e in events):
            raise ContractError("a message is the run events of one run")
        records = []
        for event in events:
            value = self._codec.encode(event)
            fingerprint = self._codec.writer_schema(event.type).fingerprint
            records.append((value, record_headers(event, fingerprint)))
        assert topic_for(events[0].stream, self._settings) == self._topic
        message = _Message(records, record_key(events[0]))
        partition = self._partitioner(message.key, self._partitions, self._partitions)
        self._queues.setdefault(partition, deque()).append(message)
        flusher = self._flushers.get(partition)
        if flusher is None or flusher.done():
            self._flushers[partition] = asyncio.create_task(self._flush(partition))
        return message.done

    async def _flush(self, partition: int) -> None:
        queue = self._queues[partition]
        while queue:
            batch = self._producer.create_batch()
            taken: list[tuple[_Message, int]] = []
            used = _BATCH_OVERHEAD
            while queue:
                message = queue[0]
                needed = message.size()
                if used + needed > self._max_bytes:
                    if not taken:  # too large for any batch: refuse it alone
                        queue.popleft()
                        error = PublishError(
                            f"a message of {len(message.records)} events for run "
                            f"{message.key.decode()} does not fit one record batch of "
                            f"producer_max_batch_bytes={self._max_bytes}"
                        )
                        error.retriable = False
                        message.done.set_exception(error)
                        continue
                    break
                queue.popleft()
                first = batch.record_count()
                for value, headers in message.records:
                    # Cannot fail: the budget above is an upper bound of the
                    # builder's own size accounting.
                    appended = batch.append(
                        key=message.key, value=value, timestamp=None, headers=headers
                    )
                    assert appended is not None
                taken.append((message, first))
                used += needed
            if not taken:
                continue
            batch.close()
            self.batches += 1
            try:
                future = await self._producer.send_batch(batch, self._topic, partition=partition)
                metadata = await future
            except (KafkaError, TimeoutError) as e:
                error = PublishError(f"writing a batch of {len(taken)} messages: {e!r}")
                error.retriable = bool(getattr(e, "retriable", False)) or isinstance(
                    e, TimeoutError
                )
                for message, _ in taken:
                    if not message.done.done():
                        message.done.set_exception(error)
                continue
            for message, first in taken:
                if not message.done.done():
                    message.done.set_result(
                        [
                            Position(self._topic, partition, metadata.offset + first + i)
                            for i in range(len(message.records))
                        ]
                    )
