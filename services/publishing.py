"""How the services publish: the seam to :class:`runwire.publisher.Publisher`, with retries.

Contract:
- :class:`EventPublisher` is the part of the publisher the services use;
  :class:`runwire.publisher.Publisher` implements it.
- :func:`publish_retrying` writes events (one atomic record batch when there
  are several: they are one answer) and retries *retriable* failures with
  capped backoff until they are written or the task is cancelled. Retrying
  is safe because every event the services publish has a deterministic id:
  a copy that did reach the log is dropped by every consumer. Final
  failures (an event too large, a closed publisher) are raised.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from runwire.contract.events import Event
from runwire.errors import RunwireError

__all__ = ["EventPublisher", "publish_retrying"]

log = logging.getLogger(__name__)


class EventPublisher(Protocol):
    async def publish(self, event: Event) -> Any:
        """Write one event; return once the broker has it."""
        ...

    async def publish_message(self, events: Sequence[Event]) -> Any:
        """Write the run events of one run as one atomic, contiguous batch."""
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
    while True:
        try:
            if len(events) == 1:
                await publisher.publish(events[0])
            else:
                await publisher.publish_message(events)
            return
        except RunwireError as e:
            if not e.retriable:
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
