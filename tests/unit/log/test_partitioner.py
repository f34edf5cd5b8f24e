"""The contract partitioner is Java Kafka's default for keyed records."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import murmur2

from runwire.log import partitioner
from runwire.log.partitioner import ProducerPartitioner, partition_for

# Utils.murmur2 of these keys in Kafka's own tests (clients UtilsTest.testMurmur2).
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "java"), list(JAVA_MURMUR2.items()))
@pytest.mark.parametrize("count", [1, 3, 12, 50])
def test_partition_is_javas_to_positive_murmur2_modulo_the_count(
    key: bytes, java: int, count: int
) -> None:
    expected = (java & 0x7FFFFFFF) % count  # Utils.toPositive(murmur2(key)) % numPartitions
    assert partition_for(key, list(range(count))) == expected


def test_the_producer_partitioner_agrees_whatever_order_the_client_lists_partitions() -> None:
    chosen = ProducerPartitioner()
    for key in JAVA_MURMUR2:
        assert chosen(key, [3, 1, 0, 2], [0, 1, 2, 3]) == partition_for(key, [0, 1, 2, 3])


def test_a_topic_without_partitions_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        partition_for(b"k", [])


def test_answers_stay_javas_when_the_remembered_hashes_fill_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(partitioner, "_HASHES", {})
    monkeypatch.setattr(partitioner, "_MAX_HASHES", 2)
    for _ in range(3):  # remembered, forgotten when full, asked again
        for key, java in JAVA_MURMUR2.items():
            assert partition_for(key, list(range(12))) == (java & 0x7FFFFFFF) % 12
            assert len(partitioner._HASHES) <= 2


def test_a_long_key_is_hashed_as_java_hashes_it_but_not_remembered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A hostile record's key may be as large as a record: remembering 65,536
    # of them would hold gigabytes.
    monkeypatch.setattr(partitioner, "_HASHES", {})
    key = b"k" * 100_000
    expected = (murmur2(key) & 0x7FFFFFFF) % 12
    assert partition_for(key, list(range(12))) == expected
    assert partition_for(key, list(range(12))) == expected
    assert partitioner._HASHES == {}
    partition_for(b"run-1", list(range(12)))
    assert list(partitioner._HASHES) == [b"run-1"]
