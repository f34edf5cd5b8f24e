"""The contract partitioner: which partition a record key belongs to.

Contract:
- ``partition_for(key, partitions)`` is Java's default partitioner for keyed
  records: ``(murmur2(key) & 0x7fffffff) % len(partitions)``, indexing the
  topic's partitions in order. Every runwire writer and every reader that
  needs a run's partition uses it; a record on any other partition than this
  choice for its key is not part of that key's stream.
- librdkafka-based producers (confluent-kafka, Go's and others) must set
  ``partitioner=murmur2_random`` to agree (their default is crc32).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence

from aiokafka.partitioner import murmur2

__all__ = ["ProducerPartitioner", "partition_for"]


@functools.lru_cache(maxsize=1 << 16)
def _positive_murmur2(key: bytes) -> int:
    # Cached: every event of a run has the run's key, and murmur2 in Python
    # costs microseconds, as much as decoding a small event.
    return int(murmur2(key)) & 0x7FFFFFFF


def partition_for(key: bytes, partitions: Sequence[int]) -> int:
    """The partition of ``partitions`` (the topic's, sorted) that ``key`` belongs to."""
    if not partitions:
        raise ValueError("a topic has at least one partition")
    return partitions[_positive_murmur2(key) % len(partitions)]


class ProducerPartitioner:
    """:func:`partition_for` as aiokafka's producer calls a partitioner (runwire's
    producers are built with it, so every path of a write agrees)."""

    def __call__(
        self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
    ) -> int:
        if key is None:  # unkeyed records (none of runwire's) go anywhere available
            return random.choice(list(available or all_partitions))
        return partition_for(key, sorted(all_partitions))
