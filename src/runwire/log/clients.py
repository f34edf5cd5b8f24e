"""The one place runwire builds Kafka clients.

Contract:
- :func:`consumer`, :func:`producer` and :func:`admin` return *unstarted*
  aiokafka clients for ``settings``' cluster, with a client id naming the
  process and what the client is for (``<client_id>-<purpose>``), so broker
  logs and quotas tell them apart.
- Consumers commit nothing on their own (``enable_auto_commit=False``): a
  read model keeps its positions with its rows, a follower commits safe
  points explicitly. ``options`` override any default.
- Consumers read committed records only (``isolation_level="read_committed"``):
  a foreign producer may write in Kafka transactions, and what it aborted
  was never written, for every consumer alike. Without transactions on a
  topic this changes nothing (the last stable offset is the log end).
- Producers are idempotent and wait for every in-sync replica
  (``acks=all``, ``enable_idempotence``); batching, linger and compression
  come from the settings (:func:`producer_options`).
- :func:`topic_partitions` waits for a topic's metadata and names the fix
  when the topic does not exist.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from runwire.errors import ConfigurationError
from runwire.log.partitioner import ProducerPartitioner
from runwire.settings import Settings

__all__ = ["admin", "consumer", "producer", "producer_options", "topic_partitions"]


def _client_id(settings: Settings, purpose: str) -> str:
    return f"{settings.client_id}-{purpose}"


def consumer(settings: Settings, purpose: str, **options: Any) -> AIOKafkaConsumer:
    """An unstarted consumer (no group unless ``group_id`` is given)."""
    defaults: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": _client_id(settings, purpose),
        "group_id": None,
        "enable_auto_commit": False,
        "isolation_level": "read_committed",
    }
    return AIOKafkaConsumer(**{**defaults, **options})


def producer_options(settings: Settings) -> dict[str, Any]:
    """The options of runwire's producers (the benchmarks reuse them for raw baselines)."""
    return {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": settings.client_id,
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": None
        if settings.producer_compression == "none"
        else settings.producer_compression,
        "linger_ms": settings.producer_linger_ms,
        "max_batch_size": settings.producer_max_batch_bytes,
        # A single event may be up to max_event_bytes; leave room for headers.
        "max_request_size": max(1_048_576, settings.max_event_bytes + 65_536),
    }


def producer(settings: Settings, purpose: str, **options: Any) -> AIOKafkaProducer:
    """An unstarted idempotent producer with the settings' batching and compression."""
    defaults = {
        **producer_options(settings),
        "client_id": _client_id(settings, purpose),
        "partitioner": ProducerPartitioner(),
    }
    return AIOKafkaProducer(**{**defaults, **options})


def admin(settings: Settings, purpose: str, **options: Any) -> AIOKafkaAdminClient:
    """An unstarted admin client."""
    defaults: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": _client_id(settings, purpose),
    }
    return AIOKafkaAdminClient(**{**defaults, **options})


async def topic_partitions(consumer: Any, topic: str, timeout: float = 10.0) -> list[int]:  # noqa: ASYNC109
    """The partitions of ``topic`` as a started consumer sees them (waits for metadata).

    Raises :class:`ConfigurationError` when the topic does not exist.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return sorted(partitions)
        if asyncio.get_running_loop().time() > deadline:
            raise ConfigurationError(
                f"the topic {topic!r} does not exist; run `runwire topics apply` "
                "(or `runwire stack up`)"
            )
        consumer._client.add_topic(topic)
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.05)
