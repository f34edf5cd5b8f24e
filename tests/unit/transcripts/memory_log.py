"""An in-memory partitioned log and a tiny runner with the projector's semantics,
so the transcript projection can be driven without Kafka."""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from runwire.contract.events import Event
from runwire.log.records import SourceRecord, TopicPartition
from runwire.projections.runtime.protocol import ApplyResult, Batch, Projection, Rejection
from runwire.projections.transcripts.keys import owner_tag
from runwire.projections.transcripts.miss import RunLocation


@dataclass
class MemoryLog:
    """A run-events topic: runs hashed to partitions, offsets per partition."""

    topic: str
    partitions: int = 3
    records: dict[int, list[SourceRecord]] = field(default_factory=dict)

    def partition_of(self, run_id: str) -> int:
        return zlib.crc32(run_id.encode()) % self.partitions

    def append(self, event: Event) -> SourceRecord:
        assert event.run_id is not None
        p = self.partition_of(event.run_id)
        log = self.records.setdefault(p, [])
        record = SourceRecord(
            topic=self.topic,
            partition=p,
            offset=len(log),
            timestamp_ms=0,
            key=event.run_id.encode(),
            value=b"",
            headers=(),
            event=event,
        )
        log.append(record)
        return record

    def extend(self, events: Sequence[Event]) -> None:
        for event in events:
            self.append(event)

    def end(self, partition: int) -> int:
        return len(self.records.get(partition, []))

    def tps(self) -> list[TopicPartition]:
        return [TopicPartition(self.topic, p) for p in range(self.partitions)]

    # RunLog
    async def read(self, run_id: str, partition: int, first: int, last: int) -> list[SourceRecord]:
        return [
            r
            for r in self.records.get(partition, [])[max(first, 0) : last + 1]
            if r.event.run_id == run_id
        ]


@dataclass
class MemoryLocator:
    """What the run-status store would say about runs: partition, first and last offset."""

    log: MemoryLog

    async def locate(self, run_id: str) -> RunLocation | None:
        p = self.log.partition_of(run_id)
        offsets = [r.offset for r in self.log.records.get(p, []) if r.event.run_id == run_id]
        if not offsets:
            return None
        return RunLocation(p, offsets[0], offsets[-1])

    async def session_runs(self, session_id: str, owner: str = "") -> list[str]:
        found: dict[str, int] = {}
        owners: dict[str, str] = {}
        for records in self.log.records.values():
            for r in records:
                if r.event.session_id == session_id and r.event.run_id is not None:
                    ms = int(r.event.occurred_at.timestamp() * 1000)
                    found.setdefault(r.event.run_id, ms)
                    owners.setdefault(r.event.run_id, owner_tag(r.event.user_id, r.event.tenant))
        if owner:
            found = {run: ms for run, ms in found.items() if owners[run] == owner}
        return [run for run, _ in sorted(found.items(), key=lambda item: (item[1], item[0]))]


class ListSink:
    def __init__(self) -> None:
        self.sent: list[Rejection] = []

    async def send(self, rejections: Sequence[Rejection]) -> None:
        self.sent.extend(rejections)


class MiniRunner:
    """Feeds a projection random-sized batches of a :class:`MemoryLog`, the way
    the projector does: from the positions it believes stored, seeking to
    whatever the projection reports."""

    def __init__(self, projection: Projection, log: MemoryLog, *, seed: int = 0) -> None:
        self.projection = projection
        self.log = log
        self.sink = ListSink()
        self.rng = random.Random(seed)
        self.expected: dict[TopicPartition, int] = {}
        self.results: list[ApplyResult] = []

    async def assign(self) -> None:
        self.expected = await self.projection.load_positions(self.log.tps())

    def behind(self) -> list[TopicPartition]:
        return [tp for tp in self.log.tps() if self.expected[tp] < self.log.end(tp.partition)]

    async def step(self, max_records: int = 40) -> bool:
        behind = self.behind()
        if not behind:
            return False
        chosen = self.rng.sample(behind, self.rng.randint(1, len(behind)))
        records: list[SourceRecord] = []
        nxt: dict[TopicPartition, int] = {}
        for tp in chosen:
            start = self.expected[tp]
            chunk = self.log.records[tp.partition][start : start + self.rng.randint(1, max_records)]
            records += chunk
            nxt[tp] = chunk[-1].offset + 1
        batch = Batch(
            records=records, next_positions=nxt, expected={tp: self.expected[tp] for tp in nxt}
        )
        result = await self.projection.apply(batch, self.sink)
        self.results.append(result)
        for tp in nxt:
            self.expected[tp] = result.positions[tp]
        return True

    async def run(self, max_records: int = 40) -> None:
        if not self.expected:
            await self.assign()
        while await self.step(max_records):
            pass
