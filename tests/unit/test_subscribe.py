"""Typed subscribers, in memory (faststream's TestKafkaBroker), and the docs' worked example."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker, TestKafkaBroker

from runwire.contract.codec import default_codec
from runwire.contract.events import (
    AssistantText,
    Event,
    EventPayload,
    MemoryDeleted,
    MemorySet,
    SessionCreated,
    ToolResult,
    ToolUse,
)
from runwire.contract.routing import record_headers, record_key, topic_for
from runwire.errors import ConfigurationError, DecodeError
from runwire.settings import Settings
from runwire.subscribe import Subscription
from tests.unit.docs_examples import python_block

SETTINGS = Settings().model_copy(update={"topic_prefix": "unit."})


async def publish(broker: KafkaBroker, event: Event) -> None:
    """What the Publisher writes, through the in-memory broker."""
    value = None if isinstance(event.payload, MemoryDeleted) else default_codec().encode(event)
    fingerprint = None if value is None else default_codec().writer_schema(event.type).fingerprint
    await broker.publish(
        value,
        topic_for(event.stream, SETTINGS),
        key=record_key(event),
        headers={k: v.decode() for k, v in record_headers(event, fingerprint)},
    )


def tool_run(run_id: str, results: dict[str, bool]) -> list[Event]:
    """A tool_use per (tool, is_error) item, then its result; tools named by prefix."""
    events = []
    for i, (tool, failed) in enumerate(results.items()):
        use_id = f"toolu_{i}"
        name = tool.split("#")[0]
        events.append(Event.create(ToolUse(id=use_id, name=name), run_id=run_id))
        events.append(Event.create(ToolResult(tool_use_id=use_id, is_error=failed), run_id=run_id))
    return events


async def test_the_docs_tool_stats_consumer_counts_calls_and_errors() -> None:
    example = python_block("subscribers.md")
    broker, stats = example.tool_stats_consumer(SETTINGS)
    events = [
        *tool_run("run-a", {"search#1": False, "search#2": True, "fetch#1": False}),
        *tool_run("run-b", {"search#1": False, "fetch#1": True, "fetch#2": True}),
    ]
    async with TestKafkaBroker(broker):
        for event in events:
            await publish(broker, event)
        await publish(broker, events[0])  # a redelivered tool_use: counted once
        await publish(broker, Event.create(AssistantText(text="noise"), run_id="run-a"))
        await broker.publish(b"\x00garbage", SETTINGS.run_events, key=b"run-a")

    summary = {
        name: (c.calls, c.answered, c.errors, round(c.error_rate, 3))
        for name, c in stats.per_tool.items()
    }
    assert summary == {"search": (3, 3, 1, 0.333), "fetch": (3, 3, 2, 0.667)}
    assert stats.pending == {}


async def test_handlers_are_typed_ordered_and_skip_what_they_do_not_want() -> None:
    seen: list[tuple[str, Any]] = []
    subscription = Subscription(SETTINGS, group_id="g")

    @subscription.on(ToolUse)
    async def first(payload: ToolUse, event: Event) -> None:
        seen.append(("first", payload.name))

    @subscription.on(ToolUse)
    async def second(payload: ToolUse, event: Event) -> None:
        seen.append(("second", event.run_id))

    @subscription.on(MemoryDeleted)
    async def forgotten(payload: MemoryDeleted, event: Event) -> None:
        seen.append(("deleted", (payload.scope, payload.owner, payload.key)))

    assert subscription.group_id == "unit.g"
    assert subscription.topics() == [SETTINGS.run_events, SETTINGS.memory]

    broker = KafkaBroker()
    subscription.attach(broker)
    async with TestKafkaBroker(broker):
        await publish(broker, Event.create(ToolUse(id="t", name="calc"), run_id="r1"))
        await publish(broker, Event.create(AssistantText(text="not wanted"), run_id="r1"))
        await publish(broker, Event.create(MemorySet(scope="user", owner="u", key="k", value=1)))
        await publish(broker, Event.create(MemoryDeleted(scope="user", owner="u", key="k")))
    assert seen == [("first", "calc"), ("second", "r1"), ("deleted", ("user", "u", "k"))]


async def test_undecodable_records_reach_the_hook_and_are_skipped() -> None:
    bad: list[tuple[int, str]] = []
    good: list[str] = []
    subscription = Subscription(SETTINGS, group_id="g")

    @subscription.on(SessionCreated)
    async def created(payload: SessionCreated, event: Event) -> None:
        good.append(event.session_id or "")

    @subscription.on_undecodable
    async def record_bad(record: ConsumerRecord[bytes, bytes], error: DecodeError) -> None:
        bad.append((record.offset, error.reason))

    broker = KafkaBroker()
    subscription.attach(broker)
    data = default_codec().encode(Event.create(SessionCreated(), session_id="s1"))
    async with TestKafkaBroker(broker):
        await broker.publish(b"{}", SETTINGS.session_events, key=b"s0")
        await broker.publish(data[:-1], SETTINGS.session_events, key=b"s0")
        await broker.publish(data, SETTINGS.session_events, key=b"s1")
    assert [reason for _, reason in bad] == ["bad_magic", "truncated"]
    assert good == ["s1"]


async def test_repeats_are_dropped_and_reused_ids_refused_as_everywhere() -> None:
    bad: list[str] = []
    said: list[str] = []
    subscription = Subscription(SETTINGS, group_id="g")

    @subscription.on(SessionCreated)
    async def created(payload: SessionCreated, event: Event) -> None:
        said.append(str(payload.metadata))

    @subscription.on_undecodable
    async def record_bad(record: ConsumerRecord[bytes, bytes], error: DecodeError) -> None:
        bad.append(error.reason)

    first = Event.create(SessionCreated(metadata={"v": 1}), session_id="s1")
    rewritten = first.model_copy(update={"payload": SessionCreated(metadata={"v": 2})})
    broker = KafkaBroker()
    subscription.attach(broker)
    async with TestKafkaBroker(broker):
        for event in (first, first, rewritten):
            await publish(broker, event)
    assert said == ["{'v': 1}"]
    assert bad == ["conflicting_duplicate_event"]


async def test_dispatch_runs_handlers_without_kafka() -> None:
    subscription = Subscription(SETTINGS, group_id="g")
    texts: list[str] = []

    @subscription.on(AssistantText)
    async def on_text(payload: AssistantText, event: Event) -> None:
        texts.append(payload.text)

    await subscription.dispatch(Event.create(AssistantText(text="hi"), run_id="r"))
    await subscription.dispatch(Event.create(ToolUse(id="t", name="n"), run_id="r"))
    assert texts == ["hi"]


def test_only_payload_models_can_be_subscribed() -> None:
    subscription = Subscription(SETTINGS, group_id="g")
    with pytest.raises(TypeError, match="not a runwire event payload"):
        subscription.on(EventPayload)
    with pytest.raises(ConfigurationError, match="has no handlers"):
        subscription.attach(KafkaBroker())
