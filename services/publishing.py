"""How the services publish: the seam to :class:`runwire.publisher.Publisher`, with retries.

Contract:
- :class:`EventPublisher` is the part of the publisher the services use;
  :class:`runwire.publisher.Publisher` implements it.
- :class:`QueueingPublisher` (e.g. the orchestrator's
  :class:`~runwire.services.batching.MessageBatcher`) also queues messages
  without waiting, keeping each partition's order.
- :func:`publish_retrying` writes events (one atomic record batch when there
  are several: they are one answer; always a message with a queueing
  publisher, so everything a service writes for a run keeps its order) and retries *retriable* failures with
  capped backoff until they are written or the task is cancelled; a failure
  of the Kafka client that it does not call retriable (e.g. aiokafka's
  ``KafkaTimeoutError`` when many record batches queue for one partition)
  is retried :data:`KAFKA_ATTEMPTS` times. Retrying is safe because every
  event the services publish has a deterministic id: a copy that did reach
  the log is dropped by every consumer. Final failures (an event too large,
  a closed publisher) are raised.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol, runtime_checkable

from aiokafka.errors import KafkaError

from runwire.contract.events import Event
from runwire.errors import RunwireError

__all__ = ["KAFKA_ATTEMPTS", "EventPublisher", "QueueingPublisher", "publish_retrying"]

log = logging.getLogger(__name__)

KAFKA_ATTEMPTS = 8


class EventPublisher(Protocol):
    async def publish(self, event: Event) -> Any:
        """Write one event; return once the broker has it."""
        ...

    async def publish_message(self, events: Sequence[Event]) -> Any:
        """Write the run events of one run as one atomic, contiguous batch."""
        ...


@runtime_checkable
class QueueingPublisher(EventPublisher, Protocol):
    """A publisher that writes a partition's messages in the order they were queued."""

    def enqueue_message(self, events: Sequence[Event]) -> Awaitable[Any]:
        """Queue the events (one run's) now; the awaitable resolves once they are written."""
        ...


async def publish_retrying(
    publisher: EventPublisher,
    events: Sequence[Event],
    *,
    first_delay: float = 0.2,
    max_delay: float = 5.0,
) -> None:
    """Write ``events`` (see the module contract)."""
    delay = first_delay
    attempt = 0
    while True:
        attempt += 1
        try:
            if len(events) == 1 and not isinstance(publisher, QueueingPublisher):
                await publisher.publish(events[0])
            else:
                await publisher.publish_message(events)
            return
        except RunwireError as e:
            kafka_trouble = isinstance(e.__cause__, KafkaError) and attempt < KAFKA_ATTEMPTS
            if not (e.retriable or kafka_trouble):
                raise
            log.warning(
                "publishing %d event(s) for run %s failed, retrying in %.1fs: %s",
                len(events),
                events[0].run_id,
                delay,
                e,
            )
            await asyncio.sleep(delay)
            delay = min(max_delay, delay * 2)
