"""Publisher messages: many runs' messages share record batches, each stays whole and
contiguous; queued messages keep their order."""

from __future__ import annotations

import asyncio

import pytest

from runwire.contract.events import AssistantText, Event, Thinking, ToolUse
from runwire.errors import PublishError
from runwire.log import Publisher
from runwire.settings import Settings
from tests.integration.orchestration_support import read_run_log


def message(run: int, size: int = 4) -> list[Event]:
    run_id = f"run-{run:04d}"
    parts = [
        Thinking(text=f"thinking {run}", signature="sig"),
        *(AssistantText(text=f"part {i} of {run}") for i in range(size - 2)),
        ToolUse(id=f"tool-{run}", name="calculator", input={"expression": "1+1"}),
    ]
    return [
        Event.create(p, run_id=run_id, causation_id=f"cause-{run}", index=i)
        for i, p in enumerate(parts)
    ]


async def test_concurrent_messages_are_contiguous_and_get_their_positions(
    settings: Settings,
) -> None:
    messages = [message(i) for i in range(300)]
    async with Publisher(settings) as batcher:
        positions = await asyncio.gather(*(batcher.publish_message(m) for m in messages))
    records = await read_run_log(settings)
    assert len(records) == 300 * 4
    by_position = {(r.partition, r.offset): r.event for r in records}
    for events, where in zip(messages, positions, strict=True):
        assert [by_position[(p.partition, p.offset)] for p in where] == events
        offsets = [p.offset for p in where]
        assert offsets == list(range(offsets[0], offsets[0] + len(events)))  # contiguous
    assert batcher.batches < len(messages) / 2  # messages shared record batches


async def test_a_message_larger_than_a_batch_is_refused_whole(settings: Settings) -> None:
    small = settings.model_copy(update={"producer_max_batch_bytes": 2_000})
    big = message(1, size=60)
    async with Publisher(small) as batcher:
        with pytest.raises(PublishError, match="do not fit one record batch") as error:
            await batcher.publish_message(big)
        assert not error.value.retriable
        ok = await batcher.publish_message(message(2))
    records = await read_run_log(settings)
    assert [r.event.run_id for r in records] == ["run-0002"] * 4
    assert len(ok) == 4


async def test_queued_messages_keep_their_order_without_waiting(settings: Settings) -> None:
    acknowledgement, answer = message(7, size=3)[:1], message(7, size=3)[1:]
    async with Publisher(settings) as publisher:
        with pytest.raises(PublishError, match="prepare_topic"):
            publisher.enqueue_message(acknowledgement)
        await publisher.prepare_topic(settings.run_events)
        first = publisher.enqueue_message(acknowledgement)  # queued now, not awaited
        second = publisher.enqueue_message(answer)
        (ack_at,), answer_at = await first, await second
    assert [p.offset for p in answer_at] == [ack_at.offset + 1, ack_at.offset + 2]
    records = await read_run_log(settings)
    assert [r.event for r in records] == [*acknowledgement, *answer]
