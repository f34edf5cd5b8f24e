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

import random
from collections.abc import Sequence

from aiokafka.partitioner import murmur2

__all__ = ["ProducerPartitioner", "partition_for"]

_HASHES: dict[bytes, int] = {}
"""Keys' positive murmur2, remembered: every event of a run has the run's key,
and murmur2 in Python costs microseconds, as much as decoding a small event.
A plain dict, emptied when full: an LRU cache's bookkeeping (a key tuple and
its list moved on every hit) cost a third of the check of every consumed
record's partition."""
_MAX_HASHES = 1 << 16
_REMEMBERED_KEY_BYTES = 256
"""Longer keys are hashed each time, not remembered (a record's key may be as
large as a hostile producer makes it; run and session ids are far shorter)."""


def partition_for(key: bytes, partitions: Sequence[int]) -> int:
    """The partition of ``partitions`` (the topic's, sorted) that ``key`` belongs to."""
    if not partitions:
        raise ValueError("a topic has at least one partition")
    hashed = _HASHES.get(key)
    if hashed is None:
        hashed = int(murmur2(key)) & 0x7FFFFFFF
        if len(key) <= _REMEMBERED_KEY_BYTES:
            if len(_HASHES) >= _MAX_HASHES:
                _HASHES.clear()
            _HASHES[key] = hashed
    return partitions[hashed % len(partitions)]


class ProducerPartitioner:
    """:func:`partition_for` as aiokafka's producer calls a partitioner (runwire's
    producers are built with it, so every path of a write agrees)."""

    def __call__(
        self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
    ) -> int:
        if key is None:  # unkeyed records (none of runwire's) go anywhere available
            return random.choice(list(available or all_partitions))
        return partition_for(key, sorted(all_partitions))
