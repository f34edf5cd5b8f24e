"""One retry posture for writes to the log.

Contract:
- :func:`kafka_error` turns a Kafka client failure into a
  :class:`~runwire.errors.PublishError` whose ``retriable`` is the verdict:
  what aiokafka marks retriable, a timeout (aiokafka's own
  ``KafkaTimeoutError`` included: no room in the accumulator or no metadata
  in time) and a lost connection are; anything else (authorization, a record
  the broker finds too large, a closed producer) will fail again and is not.
- :func:`publish_retrying` writes events and retries *retriable* failures
  with capped exponential backoff: until written or cancelled, or at most
  ``attempts`` times. Retrying is safe because a retried event keeps its
  ``event_id``: a copy that did reach the log is dropped by every consumer.
  Final failures (an event too large, a closed publisher) are raised at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiokafka.errors import KafkaTimeoutError

from runwire.errors import PublishError

if TYPE_CHECKING:
    from runwire.contract.events import Event
    from runwire.log.writer import EventWriter, Position

__all__ = ["kafka_error", "publish_retrying"]

log = logging.getLogger(__name__)


def kafka_error(what: str, cause: BaseException) -> PublishError:
    """A ``PublishError`` for ``what`` whose retry posture follows the client's verdict."""
    error = PublishError(f"{what}: {type(cause).__name__}: {cause}")
    error.retriable = bool(getattr(cause, "retriable", False)) or isinstance(
        cause, TimeoutError | ConnectionError | KafkaTimeoutError
    )
    return error


async def publish_retrying(
    writer: EventWriter,
    events: Sequence[Event],
    *,
    atomic: bool = True,
    attempts: int | None = None,
    first_delay: float = 0.1,
    max_delay: float = 5.0,
) -> list[Position]:
    """Write ``events`` (see the module contract); their positions in input order.

    ``atomic``: one record batch on the run's partition (the run events of one
    run); else each event on its own key's partition, in order per key.
    """
    delay = first_delay
    attempt = 0
    while True:
        attempt += 1
        try:
            if atomic:
                return await writer.publish_message(events)
            return await writer.publish_many(events)
        except PublishError as e:
            if not e.retriable or (attempts is not None and attempt >= attempts):
                raise
            log.warning(
                "writing %d event(s) (%s) failed, retrying in %.1fs: %s",
                len(events),
                events[0].type.value,
                delay,
                e,
            )
            await asyncio.sleep(delay)
            delay = min(max_delay, delay * 2)
