"""A consumed record as runwire's readers see it, for tests without Kafka."""

from __future__ import annotations

from typing import NamedTuple


class Consumed(NamedTuple):
    """What ``decode_record`` and the readers read of an aiokafka ``ConsumerRecord``."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
