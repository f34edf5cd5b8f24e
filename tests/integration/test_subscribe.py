"""The docs' tool-stats consumer against the real broker, in its own consumer group."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient

from runwire.contract.events import AssistantText, Event, ToolResult, ToolUse
from runwire.log import Publisher
from runwire.settings import Settings
from tests.helpers import assert_eventually
from tests.unit.docs_examples import python_block


async def test_tool_stats_from_the_docs_count_a_real_log(settings: Settings) -> None:
    runs = {f"run-{i}": i % 3 for i in range(12)}  # run -> number of failing calls (of 3)
    events = []
    for run_id, failures in runs.items():
        for call in range(3):
            use_id = f"toolu_{call}"
            events.append(Event.create(ToolUse(id=use_id, name=f"tool{call % 2}"), run_id=run_id))
            events.append(Event.create(AssistantText(text="…"), run_id=run_id))
            events.append(
                Event.create(
                    ToolResult(tool_use_id=use_id, is_error=call < failures), run_id=run_id
                )
            )
    async with Publisher(settings) as publisher:
        await publisher.publish_many(events)

    example = python_block("subscribers.md")
    broker, stats = example.tool_stats_consumer(settings)
    async with broker:
        await broker.start()

        def counted() -> bool:
            answered: int = sum(c.answered for c in stats.per_tool.values())
            return answered == 36

        await assert_eventually(counted, timeout=60)

    # tool0 serves calls 0 and 2, tool1 call 1; call k fails in runs with failures > k.
    failing = list(runs.values())
    expected_errors = {
        "tool0": sum(f > 0 for f in failing) + sum(f > 2 for f in failing),
        "tool1": sum(f > 1 for f in failing),
    }
    assert {name: c.calls for name, c in stats.per_tool.items()} == {"tool0": 24, "tool1": 12}
    assert {name: c.errors for name, c in stats.per_tool.items()} == expected_errors
    assert stats.per_tool["tool1"].error_rate == expected_errors["tool1"] / 12

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        groups = {group[0] for group in await admin.list_consumer_groups()}
    finally:
        await admin.close()
    assert f"{settings.topic_prefix}analytics-tool-stats" in groups
