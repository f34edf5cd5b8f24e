"""Where ``remember`` / ``recall`` keep facts: a Protocol and two implementations.

Contract:
- :class:`MemoryStore`: ``set(scope, owner, key, value)`` and ``get(scope,
  owner, key)`` (``None`` when unknown).
- :class:`InMemoryMemory` is the twin for unit tests (one process only).
- :class:`LogMemory` keeps memory where the design puts it, on the compacted
  memory topic: ``set`` publishes ``memory_set`` (keyed by scope, owner and
  key); a background reader folds the topic from its beginning into a dict,
  reading each record as every consumer does (:func:`runwire.log.decode_record`
  with the envelope check; an id reused with another body is refused) and
  skipping, with a warning naming it and its reason, what it cannot apply.
  ``get`` first reads up to the topic's end as of the call, so it sees every
  write that was acknowledged before it (read-your-writes across processes).
  When the memory projection (Postgres) exists, a store reading it can
  replace this one behind the same Protocol.
- ``start()`` / ``stop()`` (idempotent) or ``async with``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from runwire.contract.codec import Codec, codec_for
from runwire.contract.events import Event, MemoryDeleted, MemoryScope, MemorySet, UserErased
from runwire.contract.identity import StreamIds
from runwire.contract.routing import streams_by_topic
from runwire.errors import DecodeError, RunwireError
from runwire.log import EventWriter, clients, publish_retrying
from runwire.log.clients import topic_partitions
from runwire.log.records import decode_record
from runwire.services.lifecycle import AsyncService, vital
from runwire.settings import Settings

__all__ = ["InMemoryMemory", "LogMemory", "MemoryStore"]

log = logging.getLogger(__name__)

_Key = tuple[str, str, str]


class MemoryStore(Protocol):
    async def get(self, scope: MemoryScope, owner: str, key: str) -> Any:
        """The value stored under (scope, owner, key), or None."""
        ...

    async def set(self, scope: MemoryScope, owner: str, key: str, value: Any) -> None:
        """Store ``value`` (JSON) under (scope, owner, key); durable on return."""
        ...


class InMemoryMemory:
    """A dict; for tests."""

    def __init__(self) -> None:
        self.values: dict[_Key, Any] = {}

    async def get(self, scope: MemoryScope, owner: str, key: str) -> Any:
        return self.values.get((scope, owner, key))

    async def set(self, scope: MemoryScope, owner: str, key: str, value: Any) -> None:
        self.values[(scope, owner, key)] = value


class LogMemory(AsyncService):
    """Memory on the memory topic; see the module contract."""

    def __init__(
        self,
        settings: Settings,
        publisher: EventWriter,
        *,
        codec: Codec | None = None,
        producer: str = "runwire-tools",
    ) -> None:
        self._settings = settings
        self._streams = streams_by_topic(settings)
        self._publisher = publisher
        self._codec = codec or codec_for(settings)
        self._producer = producer
        self._topic = settings.memory
        self._values: dict[_Key, Any] = {}
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._progress = asyncio.Condition()
        self._partitions: list[TopicPartition] = []
        self._partition_ids: tuple[int, ...] = ()
        self._ids = StreamIds()
        self._stopped = False

    async def start(self) -> None:
        if self._consumer is not None:
            return
        consumer = clients.consumer(
            self._settings,
            "memory-reader",
        )
        await consumer.start()
        try:
            partitions = await topic_partitions(consumer, self._topic)
        except BaseException:
            await consumer.stop()
            raise
        self._partitions = [TopicPartition(self._topic, p) for p in partitions]
        self._partition_ids = tuple(partitions)
        consumer.assign(self._partitions)
        await consumer.seek_to_beginning(*self._partitions)
        self._consumer = consumer
        self._task = vital(asyncio.create_task(self._read(), name="memory reader"))

    async def stop(self) -> None:
        if self._consumer is None or self._stopped:
            return
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            # A reader that died has been reported by vital(); do not raise it again.
            await asyncio.wait({self._task})
        await self._consumer.stop()

    async def get(self, scope: MemoryScope, owner: str, key: str) -> Any:
        await self._read_to_end()
        return self._values.get((scope, owner, key))

    async def set(self, scope: MemoryScope, owner: str, key: str, value: Any) -> None:
        event = Event.create(
            MemorySet(scope=scope, owner=owner, key=key, value=value), producer=self._producer
        )
        await publish_retrying(self._publisher, [event], atomic=False)

    async def _read_to_end(self) -> None:
        consumer = self._consumer
        if consumer is None:
            raise RunwireError("LogMemory is not started: use `async with LogMemory(...)`")
        ends = await consumer.end_offsets(self._partitions)
        while True:
            positions = [await consumer.position(tp) for tp in self._partitions]
            if all(pos >= ends[tp] for pos, tp in zip(positions, self._partitions, strict=True)):
                return
            # The reader notifies after every fetch (at least every 200 ms).
            async with self._progress:
                await self._progress.wait()

    async def _read(self) -> None:
        consumer = self._consumer
        while True:
            try:
                batch = await consumer.getmany(timeout_ms=200)
            except KafkaError as e:
                log.warning("memory: reading %s failed, retrying: %s", self._topic, e)
                await asyncio.sleep(0.5)
                continue
            for records in batch.values():
                for record in records:
                    try:
                        event = decode_record(
                            self._codec,
                            record,
                            self._partition_ids,
                            tombstones=True,
                            streams=self._streams,
                        ).event
                        if not self._ids.admit(event, record.key):
                            continue  # a duplicate
                    except DecodeError as e:
                        # What the memory projection dead-letters (same check, same
                        # reason); this reader only skips it.
                        log.warning(
                            "memory: skipping %s/%d@%d: %s (%s)",
                            record.topic,
                            record.partition,
                            record.offset,
                            e.reason,
                            e,
                        )
                        continue
                    payload = event.payload
                    if isinstance(payload, MemorySet):
                        self._values[(payload.scope, payload.owner, payload.key)] = payload.value
                    elif isinstance(payload, MemoryDeleted):
                        self._values.pop((payload.scope, payload.owner, payload.key), None)
                    elif isinstance(payload, UserErased):  # its user memory goes with it
                        for gone in [k for k in self._values if k[:2] == ("user", payload.owner)]:
                            del self._values[gone]
            async with self._progress:
                self._progress.notify_all()
