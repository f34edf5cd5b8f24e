"""The in-memory twin of the log: a writer (and the records it wrote) for unit tests.

Contract (the writer's, see :mod:`runwire.log.writer`):
- Topics and keys come from :mod:`runwire.contract.routing`, partitions from
  :func:`runwire.log.partitioner.partition_for` over ``partitions`` per topic,
  offsets count up per partition; every event passes the hooks.
- ``publish_message`` takes the run events of one run and gives them
  consecutive offsets; ``enqueue_message`` writes at once (the future is done).
- ``records(topic)`` lists what was written, in offset order per partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from runwire.contract.events import Event, Stream
from runwire.contract.routing import record_headers, record_key, topic_for
from runwire.errors import ContractError
from runwire.log import hooks, tenancy
from runwire.log.partitioner import partition_for
from runwire.log.writer import OutgoingRecord, Position
from runwire.settings import Settings

__all__ = ["InMemoryLog"]


class InMemoryLog:
    """An :class:`~runwire.log.writer.EventWriter` (and queueing writer) on lists."""

    def __init__(self, settings: Settings | None = None, *, partitions: int = 12) -> None:
        self._settings = settings if settings is not None else Settings()
        self._partitions = list(range(partitions))
        self._log: dict[tuple[str, int], list[OutgoingRecord]] = {}
        self._written: list[OutgoingRecord] = []
        self._tenant = tenancy.writer_tenant(self._settings)

    @property
    def events(self) -> list[Event]:
        """Every event written, in the order written."""
        return [r.event for r in self._written]

    def records(self, topic: str) -> dict[int, list[OutgoingRecord]]:
        """What ``topic`` holds, per partition in offset order."""
        return {p: list(rs) for (t, p), rs in self._log.items() if t == topic}

    async def publish(self, event: Event) -> Position:
        return self._write([event])[0]

    async def publish_many(self, events: Sequence[Event]) -> list[Position]:
        return [self._write([e])[0] for e in events]

    async def publish_message(self, events: Sequence[Event]) -> list[Position]:
        return self.enqueue_message(events).result()

    def enqueue_message(self, events: Sequence[Event]) -> asyncio.Future[list[Position]]:
        if not events or len({e.run_id for e in events}) != 1:
            raise ContractError("a message is the run events of one run")
        if any(e.stream is not Stream.RUN for e in events):
            raise ContractError("a message is the run events of one run")
        done: asyncio.Future[list[Position]] = asyncio.get_running_loop().create_future()
        done.set_result(self._write(events))
        return done

    def _write(self, events: Sequence[Event]) -> list[Position]:
        out: list[Position] = []
        events = [tenancy.stamped(e, self._tenant) for e in events]
        for event in events:
            topic = topic_for(event.stream, self._settings)
            headers = record_headers(event, None)
            if hooks.installed:
                hooks.writing(event, topic, headers)
            key = record_key(event)
            partition = partition_for(key, self._partitions)
            log = self._log.setdefault((topic, partition), [])
            record = OutgoingRecord(event, topic, key, b"", headers)
            log.append(record)
            self._written.append(record)
            out.append(Position(topic, partition, len(log) - 1))
        return out
