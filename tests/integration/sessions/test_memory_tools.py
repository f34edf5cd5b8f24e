"""The tool runner's memory (remember / recall) and the Memory API share entries:
both are the compacted memory topic."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from runwire.contract.events import Event, MemorySet
from runwire.log import Publisher
from runwire.log.partitioner import partition_for
from runwire.memory import AsyncMemory, ServiceMemory
from runwire.services.tools.memory import LogMemory
from runwire.sessions import AsyncSession
from runwire.sessions.log_backend import LogBackend
from runwire.settings import Settings
from tests.helpers import assert_eventually


async def test_what_a_tool_remembers_the_api_recalls_and_back(
    log_backend: LogBackend, settings: Settings
) -> None:
    async with Publisher(settings) as publisher, LogMemory(settings, publisher) as tools:
        # remember() during a run of alice's (the tool writes, nothing waits for the projection)...
        await tools.set("user", "alice", "favourite_colour", "green")
        # ...and a later session of alice's recalls it through the API.
        async with AsyncSession(user_id="alice", backend=log_backend) as later:

            async def recalled() -> bool:
                value = await later.get_memory("favourite_colour", scope="user")
                return bool(value == "green")

            await assert_eventually(recalled, timeout=15)
        bob = AsyncMemory(user_id="bob", backend=log_backend)
        assert await bob.get_memory("favourite_colour") is None
        # What the API stores, recall() finds.
        alice = AsyncMemory(user_id="alice", backend=log_backend)
        await alice.store_memory("favourite_food", "ramen")
        assert await tools.get("user", "alice", "favourite_food") == "ramen"
        # The trusted adapter the tool runner can use instead of its own reader.
        service = ServiceMemory(log_backend)
        await service.set("user", "alice", "city", "Lyon")
        assert await alice.get_memory("city") == "Lyon"
        assert await service.get("user", "alice", "favourite_food") == "ramen"


async def test_the_tool_memory_reader_refuses_what_every_consumer_refuses(
    settings: Settings,
) -> None:
    first = Event.create(MemorySet(scope="user", owner="carol", key="pet", value="cat"))
    rewritten = first.model_copy(
        update={"payload": MemorySet(scope="user", owner="carol", key="pet", value="dog")}
    )
    elsewhere = Event.create(MemorySet(scope="user", owner="carol", key="car", value="red"))
    async with Publisher(settings) as publisher:
        partitions = await publisher.prepare_topic(settings.memory)
        await publisher.publish_many([first, rewritten])  # the same id with another body
        # A record on another partition than the contract's (another partitioner).
        misplaced = publisher.record_for(elsewhere)
        right = partition_for(misplaced.key or b"", partitions)
        raw = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
        await raw.start()
        try:
            await raw.send_and_wait(
                settings.memory,
                misplaced.value,
                key=misplaced.key,
                headers=misplaced.headers,
                partition=(right + 1) % len(partitions),
            )
        finally:
            await raw.stop()
        async with LogMemory(settings, publisher) as tools:
            assert await tools.get("user", "carol", "pet") == "cat", "the first body is kept"
            assert await tools.get("user", "carol", "car") is None, "not part of its stream"
