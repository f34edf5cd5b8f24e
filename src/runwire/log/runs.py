"""The one run reader: a run read back from the run-events topic by its positions.

Contract (:class:`RunReader`):
- ``scan(run_id, partition, first, last=None)`` reads ``partition`` from
  offset ``first`` through ``last`` (inclusive; None: up to the log's end
  when the scan began) and keeps the records of the run: keyed by its id and
  holding an event of that run, in log order. Where a run lies (partition,
  first and last offset) comes from the run-status store or the transcript
  cache, so no read scans the whole topic.
- A record of the run that does not decode is not returned; its offset is
  listed in ``undecodable`` (the projectors dead-letter it). A *retriable*
  decode failure (the schema registry unreachable) is raised, never skipped.
- ``read(...)`` is ``scan(...).records`` with a known ``last``.
- ``read_runs(run_ids, partition, first, last)`` reads the range once for
  many runs of one partition (a session's history) and gives each run its
  records, in log order; ``end_offset(partition)`` is the offset the next
  record of the partition will get (what a position is checked against).
- One group-less consumer per reader, reads serialised; a read that does
  not reach its end within ``timeout`` raises :class:`LogReadError`
  (retriable). ``start()`` / ``stop()`` (idempotent) or ``async with``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiokafka.structs import TopicPartition as KafkaTopicPartition

from runwire.contract.routing import streams_by_topic
from runwire.contract.sealing.errors import ERASED
from runwire.errors import DecodeError, RunwireError
from runwire.lifecycle import AsyncService
from runwire.log import clients
from runwire.log.records import SourceRecord, decode_record

if TYPE_CHECKING:
    from runwire.contract.codec import Codec
    from runwire.settings import Settings

__all__ = ["LogReadError", "RunReader", "RunScan"]


class LogReadError(RunwireError):
    """A run's records could not be read back from Kafka in time."""

    retriable = True


@dataclass(frozen=True, slots=True)
class RunScan:
    """What one scan of a run's range found."""

    records: list[SourceRecord] = field(default_factory=list)
    undecodable: list[int] = field(default_factory=list)
    """Offsets of the run's records that did not decode (dead-lettered by the projectors)."""
    end: int = 0
    """The offset the scan stopped before (``last + 1``, or the log end it read to)."""


class RunReader(AsyncService):
    """Reads runs back from the log; see the module contract."""

    def __init__(
        self, settings: Settings, *, codec: Codec | None = None, timeout: float = 30.0
    ) -> None:
        self._settings = settings
        self._streams = streams_by_topic(settings)
        self._codec = codec
        self._timeout = timeout
        self._consumer: Any = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        if self._consumer is not None:
            return
        if self._codec is None:
            from runwire.contract.codec import codec_for

            self._codec = codec_for(self._settings)
        consumer = clients.consumer(
            self._settings,
            "run-reader",
            auto_offset_reset="earliest",
            # A read stops at a known offset, often the log end: waiting for
            # more data there only delays the answer.
            fetch_max_wait_ms=20,
        )
        await consumer.start()
        self._consumer = consumer

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def read(self, run_id: str, partition: int, first: int, last: int) -> list[SourceRecord]:
        """The run's decodable records with ``first <= offset <= last``, in log order."""
        if last < first:
            return []
        return (await self.scan(run_id, partition, first, last)).records

    async def end_offset(self, partition: int) -> int:
        """The offset the partition's next record will get (its log end now)."""
        async with self._lock:
            await self.start()
            tp = KafkaTopicPartition(self._settings.run_events, partition)
            self._consumer.assign([tp])
            end: int = (await self._consumer.end_offsets([tp]))[tp]
            return end

    async def read_runs(
        self, run_ids: Collection[str], partition: int, first: int, last: int
    ) -> dict[str, list[SourceRecord]]:
        """The decodable records of each of ``run_ids`` (all in ``partition``) with
        ``first <= offset <= last``, in log order: one pass over the range."""
        found: dict[str, list[SourceRecord]] = {run_id: [] for run_id in run_ids}
        if last < first or not found:
            return found
        scan = await self._scan(set(found), partition, first, last)
        for record in scan.records:
            assert record.event.run_id is not None
            found[record.event.run_id].append(record)
        return found

    async def scan(
        self, run_id: str, partition: int, first: int, last: int | None = None
    ) -> RunScan:
        """The run's records from ``first`` through ``last`` (None: the log end)."""
        return await self._scan({run_id}, partition, first, last)

    async def _scan(
        self, run_ids: set[str], partition: int, first: int, last: int | None
    ) -> RunScan:
        async with self._lock:
            await self.start()
            consumer = self._consumer
            codec = self._codec
            assert codec is not None
            topic = self._settings.run_events
            tp = KafkaTopicPartition(topic, partition)
            consumer.assign([tp])
            if last is None:
                last = (await consumer.end_offsets([tp]))[tp] - 1
            partitions = sorted(consumer.partitions_for_topic(topic) or ())
            keys = {run_id.encode() for run_id in run_ids}
            what = f"run {next(iter(run_ids))}" if len(run_ids) == 1 else f"{len(run_ids)} runs"
            out = RunScan(end=last + 1)
            if last < first:
                return out
            consumer.seek(tp, first)
            deadline = time.monotonic() + self._timeout
            while await consumer.position(tp) <= last:
                if time.monotonic() > deadline:
                    raise LogReadError(
                        f"reading {what} from {topic}/{partition} offsets {first}..{last} "
                        f"took more than {self._timeout:.0f}s (at {await consumer.position(tp)})"
                    )
                fetched = await consumer.getmany(tp, timeout_ms=500, max_records=2000)
                for rec in fetched.get(tp, ()):
                    if rec.offset > last:
                        break
                    if rec.key not in keys:
                        continue
                    try:
                        record = decode_record(codec, rec, partitions, streams=self._streams)
                    except DecodeError as e:
                        if e.retriable:
                            raise
                        if e.reason != ERASED:  # an erased session's record is no fault
                            out.undecodable.append(rec.offset)
                        continue
                    if record.event.run_id in run_ids and record.event.run_id == rec.key.decode():
                        out.records.append(record)
            return out
