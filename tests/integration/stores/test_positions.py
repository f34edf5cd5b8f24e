"""``load_run`` on the stack reads the run's own range of its partition, by its positions."""

from __future__ import annotations

import uuid

from runwire.contract.events import Event, UserMessage
from runwire.log import Publisher
from runwire.log.partitioner import partition_for
from runwire.projections.runtime.protocol import Projection
from runwire.settings import Settings
from runwire.stores import MemoryEvent, MemoryEventType
from runwire.stores.log_backend import LogStores
from tests.contract.stores import at, tool_turn


async def test_load_run_reads_its_range_and_only_its_events(
    settings: Settings, projectors: dict[str, Projection], log_stores: LogStores
) -> None:
    partitions = list(range(12))
    run = f"run-{uuid.uuid4().hex[:8]}"
    # Another run on the same partition, written before, between and after.
    other = next(
        f"other-{i}"
        for i in range(10_000)
        if partition_for(f"other-{i}".encode(), partitions)
        == partition_for(run.encode(), partitions)
    )

    async def noise(n: int) -> None:
        async with Publisher(settings) as publisher:
            for i in range(n):
                await publisher.publish(
                    Event.create(UserMessage(parts=[f"noise {i}"]), run_id=other, agent_id="x")
                )

    await noise(5)
    turn = tool_turn()
    await log_stores.memory.append_events("agent", run, *turn[:4])
    await noise(3)
    await log_stores.memory.append_events("agent", run, *turn[4:])
    await noise(2)
    snapshot = await log_stores.memory.load_run("agent", run)
    assert list(snapshot.events) == turn
    assert snapshot.meta["partition"] == partition_for(run.encode(), partitions)
    assert snapshot.meta["first_offset"] >= 5  # starts at the run, not at the partition's start
    span = snapshot.meta["last_offset"] - snapshot.meta["first_offset"] + 1
    assert span == len(turn) + 3  # its own events and what lies between them, nothing after
    late = MemoryEvent(MemoryEventType.ASSISTANT_MESSAGE, at(30), {"message": "more"})
    await log_stores.memory.append_events("agent", run, late)
    assert (await log_stores.memory.load_run("agent", run)).events[-1] == late
