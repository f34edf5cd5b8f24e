"""Every consumer of runwire's topics, running in this process, and what each one did.

Contract:
- :func:`every_consumer` runs, for the block: the four projectors (runs,
  sessions, transcripts, memory), the orchestrator (deterministic local
  model) and the tool runner, a watchdog, a typed subscriber with a handler
  for every event type, the session watcher (listening to the sessions it
  is given) and a ``Client`` (the live reader of ``RunHandle.wait``).
- :class:`Consumers` holds what the side consumers saw: the subscriber's
  events in the order handed, and its undecodable records by (topic,
  partition, offset) with their reason; the session watcher's changes per session.
- :meth:`Consumers.dead_letters` reads the dead-letter topic: the reasons
  per source record and consumer. :meth:`Consumers.assert_alive` raises
  ``ConsumerDiedError`` when any consumer task ended (a consumer that died).
- :meth:`Consumers.wait_caught_up` waits until every projection's stored
  positions reach the log end (lag 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import traceback
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRecord

from runwire.client import Client
from runwire.contract.events import PAYLOAD_TYPES, Event, EventPayload
from runwire.errors import DecodeError
from runwire.projections.catalog import opener
from runwire.projections.runtime.consumer import ProjectorOptions
from runwire.projections.runtime.dead_letters import list_dead_letters
from runwire.projections.runtime.lag import projection_lag
from runwire.projections.serve import serve_projection
from runwire.services.orchestrator.watchdog import Watchdog
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.services.tools.wiring import tool_runner_service
from runwire.sessions.protocol import SessionChange
from runwire.sessions.watcher import LogWatcher
from runwire.settings import Settings
from runwire.subscribe import Subscription, runwire_broker
from tests.helpers import assert_eventually

PROJECTIONS = ("runs", "sessions", "transcripts", "memory")
SERVICES = ("orchestrator", "tools")
SUBSCRIBER = "subscriber"
# Quick to join and to notice records: the tests wait on them.
FAST = ProjectorOptions(session_timeout_ms=6000, heartbeat_interval_ms=500, poll_timeout_ms=100)

Where = tuple[str, int, int]
"""(topic, partition, offset) of a record."""


class ConsumerDiedError(Exception):
    """A consumer's task ended: waiting longer cannot help (not an AssertionError, which
    ``assert_eventually`` reads as "not yet")."""


@dataclass
class Consumers:
    settings: Settings
    client: Client
    watchdog: Watchdog
    topics: dict[str, tuple[str, ...]]
    """The topics each projection reads, by projection name."""
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    subscribed: list[Event] = field(default_factory=list)
    undecodable: dict[Where, str] = field(default_factory=dict)
    changes: dict[str, list[SessionChange]] = field(default_factory=lambda: defaultdict(list))
    messages: dict[tuple[str, int, int, str], str] = field(default_factory=dict)
    """The message of each dead letter read, by (topic, partition, offset, consumer)."""

    def readers_of(self, topic: str) -> set[str]:
        """The dead-lettering consumers that read ``topic``."""
        names = {name for name, topics in self.topics.items() if topic in topics}
        if topic == self.settings.run_events:
            names |= set(SERVICES)
        return names

    async def dead_letters(self) -> dict[Where, dict[str, str]]:
        """Reason by consumer, for every dead-lettered source record."""
        out: dict[Where, dict[str, str]] = defaultdict(dict)
        for d in await list_dead_letters(self.settings):
            where = (d.source_topic, d.source_partition, d.source_offset)
            out[where][d.consumer] = d.reason
            self.messages[(*where, d.consumer)] = d.message
        return out

    def assert_alive(self) -> None:
        for task in self.tasks:
            if task.done():
                error = task.exception()
                why = "".join(traceback.format_exception(error)) if error else "no error"
                raise ConsumerDiedError(f"{task.get_name()} ended: {why}")

    async def wait_caught_up(self, within: float = 90) -> None:
        async def no_lag() -> bool:
            self.assert_alive()
            for name in PROJECTIONS:
                async with opener(name)(self.settings) as projection:
                    lag = await projection_lag(projection, self.settings)
                assert lag.lag == 0, f"{name} lag {lag.lag}"
            return True

        await assert_eventually(no_lag, timeout=within, interval=0.5)


def _subscription(settings: Settings, seen: Consumers) -> Subscription:
    subscription = Subscription(settings, group_id="every-consumer")

    def handler_for(payload_type: type[EventPayload]) -> None:
        @subscription.on(payload_type)
        async def record(payload: EventPayload, event: Event) -> None:
            seen.subscribed.append(event)

    for payload_type in PAYLOAD_TYPES.values():
        handler_for(payload_type)

    @subscription.on_undecodable
    async def undecodable(record: ConsumerRecord[bytes, bytes], error: DecodeError) -> None:
        seen.undecodable[(record.topic, record.partition, record.offset)] = error.reason

    return subscription


@contextlib.asynccontextmanager
async def every_consumer(
    settings: Settings, sessions: Sequence[str] = (), *, watchdog: Watchdog | None = None
) -> AsyncIterator[Consumers]:
    """Every consumer running for the block; see the module contract."""
    stop = asyncio.Event()
    topics: dict[str, tuple[str, ...]] = {}
    for name in PROJECTIONS:
        async with opener(name)(settings) as projection:
            topics[name] = projection.topics
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(Client(settings))
        dog = watchdog or Watchdog(settings)
        await stack.enter_async_context(dog)
        seen = Consumers(settings, client, dog, topics)
        seen.tasks = [
            asyncio.create_task(
                serve_projection(name, settings, stop, options=FAST), name=f"projector-{name}"
            )
            for name in PROJECTIONS
        ]
        await stack.enter_async_context(orchestrator_service(settings, history=False))
        await stack.enter_async_context(tool_runner_service(settings))
        broker = runwire_broker(settings)
        _subscription(settings, seen).attach(broker)
        await stack.enter_async_context(broker)
        await broker.start()
        watcher = LogWatcher(settings)
        for session_id in sessions:
            watcher.add(session_id, seen.changes[session_id].append)
        stack.push_async_callback(watcher.stop)
        try:
            yield seen
        finally:
            stop.set()
            await asyncio.gather(*seen.tasks, return_exceptions=True)
