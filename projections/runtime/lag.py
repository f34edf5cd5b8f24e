"""How far behind the log a projection is, per partition."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka.structs import TopicPartition as KafkaTopicPartition

from runwire.log import clients
from runwire.log.records import TopicPartition
from runwire.projections.runtime.consumer import consumer_group
from runwire.projections.runtime.protocol import Projection
from runwire.settings import Settings


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """One partition: the projection's stored position, the log end, and the gap."""

    topic: str
    partition: int
    position: int
    end: int
    committed: int | None
    """The consumer group's committed offset: only a hint, positions are the truth."""

    @property
    def lag(self) -> int:
        return max(0, self.end - self.position)

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "position": self.position,
            "end": self.end,
            "lag": self.lag,
            "committed": self.committed,
        }


@dataclass(frozen=True, slots=True)
class ProjectionLag:
    name: str
    group: str
    partitions: list[PartitionLag]

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.group,
            "lag": self.lag,
            "partitions": [p.as_dict() for p in self.partitions],
        }


async def log_ends(settings: Settings, topics: tuple[str, ...]) -> dict[TopicPartition, int]:
    """The end offset (next offset to be written) of every partition of ``topics``."""
    kafka = clients.consumer(
        settings,
        "lag",
    )
    await kafka.start()
    try:
        tps = await _partitions(kafka, topics)
        ends = await kafka.end_offsets(tps) if tps else {}
        return {TopicPartition(tp.topic, tp.partition): end for tp, end in ends.items()}
    finally:
        await kafka.stop()


async def _partitions(kafka: Any, topics: tuple[str, ...]) -> list[KafkaTopicPartition]:
    await kafka._client.force_metadata_update()
    out: list[KafkaTopicPartition] = []
    for topic in topics:
        out.extend(
            KafkaTopicPartition(topic, p) for p in sorted(kafka.partitions_for_topic(topic) or ())
        )
    return out


async def projection_lag(projection: Projection, settings: Settings) -> ProjectionLag:
    """Stored positions against log ends (and the group's committed hint) per partition."""
    group = consumer_group(settings, projection.name)
    kafka = clients.consumer(
        settings,
        "lag",
        group_id=group,
    )
    await kafka.start()
    try:
        tps = await _partitions(kafka, projection.topics)
        ends = await kafka.end_offsets(tps) if tps else {}
        committed: dict[KafkaTopicPartition, int | None] = {}
        for tp in tps:
            committed[tp] = await kafka.committed(tp)
    finally:
        await kafka.stop()
    positions = await projection.load_positions(
        [TopicPartition(tp.topic, tp.partition) for tp in tps]
    )
    rows = [
        PartitionLag(
            topic=tp.topic,
            partition=tp.partition,
            position=positions.get(TopicPartition(tp.topic, tp.partition), 0),
            end=ends[tp],
            committed=committed.get(tp),
        )
        for tp in tps
    ]
    return ProjectionLag(name=projection.name, group=group, partitions=rows)
