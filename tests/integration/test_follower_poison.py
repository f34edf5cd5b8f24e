"""A record the follower cannot read is dead-lettered and skipped: the services go on."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Collection

import pytest
from aiokafka import AIOKafkaProducer

from runwire.client import Client
from runwire.contract.events import Event, RunStatus, UserMessage
from runwire.errors import RunwireError
from runwire.log import Publisher
from runwire.projections.runtime.dead_letters import list_dead_letters
from runwire.services.follower import Follower, consumer_group
from runwire.services.lifecycle import ServiceDied, run_until_stopped
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.services.tools.wiring import tool_runner_service
from runwire.settings import Settings
from tests.helpers import assert_eventually


async def test_a_null_value_on_run_events_is_dead_lettered_and_runs_go_on(
    settings: Settings,
) -> None:
    # A foreign producer's tombstone (no value) on every partition, so
    # whichever partition the run lands on, its follower has read one first.
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(settings.run_events))
        placed = [
            await (
                await producer.send(
                    settings.run_events, value=None, key=b"foreign-run", partition=p
                )
            )
            for p in partitions
        ]
    finally:
        await producer.stop()

    async with (
        orchestrator_service(settings, history=False),
        tool_runner_service(settings),
        Client(settings) as rw,
    ):
        handle = await rw.run("helper", "what is 6 * 7?", session_id="s-poison")
        outcome = await handle.wait(timeout=30)
    assert outcome.status is RunStatus.COMPLETED, outcome.events
    assert "42" in outcome.text

    where = {(m.partition, m.offset) for m in placed}

    async def both_dead_lettered() -> bool:
        letters = await list_dead_letters(settings)
        seen = {
            (d.consumer, d.source_partition, d.source_offset)
            for d in letters
            if d.source_topic == settings.run_events and d.reason == "truncated"
        }
        return all(
            (consumer, p, o) in seen for consumer in ("orchestrator", "tools") for p, o in where
        )

    await assert_eventually(both_dead_lettered, timeout=30, interval=0.5)
    letters = await list_dead_letters(settings, consumer="orchestrator")
    assert letters
    assert all(d.key == b"foreign-run" and d.value == b"" for d in letters)
    assert all("empty value" in d.message for d in letters)


class _BrokenHandler:
    """A handler with a bug: its fold raises on the first event."""

    def assigned(self, partitions: Collection[int]) -> None: ...

    async def revoked(self, partitions: Collection[int]) -> None: ...

    def apply(self, partition: int, offset: int, event: Event) -> None:
        raise RuntimeError(f"handler bug at {partition}/{offset}")

    def batch_done(self) -> None: ...

    def caught_up(self, partition: int) -> None: ...

    def safe_offset(self, partition: int, position: int) -> int:
        return 0


async def test_a_follower_whose_loop_dies_ends_its_service(settings: Settings) -> None:
    async with Publisher(settings) as publisher:
        await publisher.publish(
            Event.create(UserMessage(parts=["hi"]), run_id="r-1", session_id="s-1")
        )
    follower = Follower(settings, _BrokenHandler(), group_id=consumer_group(settings, "broken"))

    async def service(stop: asyncio.Event) -> None:
        async with follower:
            with pytest.raises(RunwireError, match="ended before catching up: RuntimeError"):
                await follower.wait_caught_up(timeout=30)
            await stop.wait()

    async with asyncio.timeout(60):
        with pytest.raises(ServiceDied) as caught:
            await run_until_stopped("broken", service, signals=False)
    assert re.match(
        r"broken: follow \S+runwire-broken died: RuntimeError: handler bug at \d+/0 \(at ",
        str(caught.value),
    ), str(caught.value)
