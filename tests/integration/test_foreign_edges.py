"""A foreign producer at the edges of the contract (raw aiokafka + fastavro, not
runwire's writer): what test_hostile_producer.py's random draws do not reach.

- JSON text nested deeper than runwire can write back (or than Python can parse),
  in a run's tool input and in a memory value, is refused alike (``invalid_event``,
  naming the depth), never an exception that ends a consumer.
- A ``user`` memory entry with the empty key (the record key of the user's
  erasure receipt, ``["user", owner, ""]``) is refused alike (``invalid_event``).
- ``occurred_at`` outside the years a timestamp holds (1-9999; e.g. microseconds
  written as milliseconds) is refused alike as ``invalid_event`` naming the field.
- A memory tombstone is read from its key and headers only, so both are held to
  the contract: a key that is not the compact JSON address (spaces, another JSON
  shape, nesting past any parser) is ``key_mismatch``; ``runwire-occurred-at``
  that is not decimal milliseconds in range, or a producer an id cannot be, is
  ``invalid_event``. None of them deletes an entry.
- A typed subscriber skips the types it has no handler for by what the record
  holds (its frame's schema), not by a ``runwire-type`` header that may say
  otherwise, and reads records with header values that are not UTF-8: an event
  is never lost to a header.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiokafka import ConsumerRecord

from runwire.contract.events import Event, UserMessage
from runwire.errors import DecodeError
from runwire.projections.memory.reader import MemoryEntries
from runwire.settings import Settings
from runwire.subscribe import Subscription, runwire_broker
from tests.helpers import assert_eventually
from tests.integration.test_hostile_producer import outcomes_of, partitions_of, write
from tests.support.hostile import (
    Hostile,
    event_schemas,
    good_record,
    placed,
    plausible_run_event,
    routing_key,
)

DEEP = 300  # past the 254 levels runwire's JSON writer (orjson) can write back
DEEPER = 5000  # past what Python's json module parses without a RecursionError


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def memory_set(owner: str, key: str, value_text: str) -> dict[str, Any]:
    _, record = plausible_run_event("unused", "", uuid.uuid4())
    record.update(run_id=None, type="memory_set")
    record["payload"] = {"scope": "session", "owner": owner, "key": key, "value": value_text}
    return record


def tombstone(parts: dict[str, list[int]], key: bytes, **overrides: bytes) -> Hostile:
    """A ``memory_deleted`` tombstone of ``key`` with runwire's headers, some overridden."""
    headers = {
        "runwire-type": b"memory_deleted",
        "runwire-event-id": str(uuid.uuid4()).encode(),
        "runwire-occurred-at": b"1780000000000",
        "runwire-producer": b"foreign",
        **{k.replace("_", "-"): v for k, v in overrides.items()},
    }
    return Hostile(
        "tombstone", "memory", key, None, placed(key, parts["memory"]), list(headers.items())
    )


async def test_edge_records_are_refused_alike_and_delete_nothing(settings: Settings) -> None:
    parts = await partitions_of(settings)
    tag = uuid.uuid4().hex[:8]
    owner = f"edge-{tag}"
    mem = event_schemas()["memory_set"]
    kept = memory_set(owner, "kept", '{"still":"here"}')
    records: list[Hostile] = [good_record(mem, kept, parts, "kept")]
    expect: list[str | None] = [None]

    # JSON nested deeper than the writer can write (tool input), or than Python parses.
    es, deep_tool = plausible_run_event(f"edge-deep-{tag}", "", uuid.uuid4())
    deep_tool.update(type="tool_use")
    deep_tool["payload"] = {"id": "t1", "name": "calculator", "input": f'{{"a":{nested(DEEP)}}}'}
    records.append(good_record(event_schemas()["tool_use"], deep_tool, parts, "deep"))
    expect.append("invalid_event")
    deepest = memory_set(owner, "deepest", nested(DEEPER))
    records.append(good_record(mem, deepest, parts, "deeper"))
    expect.append("invalid_event")

    # A user entry with the empty key: the record key of the user's erasure receipt,
    # which compaction would then drop.
    receipt_key = memory_set(owner, "", "1")
    receipt_key["payload"]["scope"] = "user"
    records.append(good_record(mem, receipt_key, parts, "receipt key"))
    expect.append("invalid_event")

    # Microseconds written as milliseconds: the year 58000.
    _, micros = plausible_run_event(f"edge-micros-{tag}", "hi", uuid.uuid4())
    micros["occurred_at"] = 1_780_000_000_000_000
    records.append(good_record(es, micros, parts, "micros"))
    expect.append("invalid_event")

    # Tombstones of the kept entry, each breaking the contract one way.
    canonical = routing_key("memory", kept)
    spaced = canonical.replace(b",", b", ")
    as_object = f'{{"session":0,"{owner}":0,"kept":0}}'.encode()
    for h, reason in [
        (tombstone(parts, spaced), "key_mismatch"),
        (tombstone(parts, as_object), "key_mismatch"),
        (tombstone(parts, b"[" * DEEPER), "key_mismatch"),
        (tombstone(parts, canonical, runwire_occurred_at=b"9" * 20), "invalid_event"),
        (tombstone(parts, canonical, runwire_occurred_at=b"1_780"), "invalid_event"),
        (tombstone(parts, canonical, runwire_producer=b"a\x00b"), "invalid_event"),
    ]:
        records.append(h)
        expect.append(reason)

    got = await outcomes_of(settings, records)
    wrong = [
        (r.category, want, g)
        for r, want, g in zip(records, expect, got, strict=True)
        if set(g.values()) != {want}
    ]
    assert not wrong, wrong
    async with await MemoryEntries.connect(settings) as memory:
        entry = await memory.get("session", owner, "kept")
    assert entry is not None
    assert entry.value == {"still": "here"}


async def test_a_subscriber_skips_by_the_body_not_a_lying_type_header(
    settings: Settings,
) -> None:
    """A user message whose ``runwire-type`` header says ``planner_note`` reaches a
    subscriber of user messages; a record whose header says ``planner_note`` but
    that no one can read reaches its undecodable hook; a user message with a
    header value that is not UTF-8 reaches the handler too."""
    parts = await partitions_of(settings)
    run_id = f"lying-{uuid.uuid4().hex[:8]}"
    es, said = plausible_run_event(run_id, "hello", uuid.uuid4())
    lying = good_record(es, said, parts, "lying")
    lying.headers = [("runwire-type", b"planner_note"), *lying.headers[1:]]
    broken = good_record(es, {**said, "event_id": str(uuid.uuid4())}, parts, "broken")
    broken.value = b"\x7f" + (broken.value or b"")[1:]
    broken.headers = [("runwire-type", b"planner_note"), *broken.headers[1:]]
    # Kafka header values are bytes: one that is not UTF-8 (a binary trace id).
    _, traced_record = plausible_run_event(run_id, "traced", uuid.uuid4())
    traced = good_record(es, traced_record, parts, "traced")
    traced.headers = [*traced.headers, ("x-trace", b"\xff\xfe\x00")]

    seen: list[Event] = []
    refused: dict[int, str] = {}
    subscription = Subscription(settings, group_id=f"lying-{run_id}")

    @subscription.on(UserMessage)
    async def on_message(payload: UserMessage, event: Event) -> None:
        seen.append(event)

    @subscription.on_undecodable
    async def on_bad(record: ConsumerRecord[bytes, bytes], error: DecodeError) -> None:
        if record.key == run_id.encode():
            refused[record.offset] = error.reason

    broker = runwire_broker(settings)
    subscription.attach(broker)
    async with broker:
        await broker.start()
        landed = await write(settings, [lying, broken, traced], None)

        async def arrived() -> bool:
            assert [e.event_id for e in seen] == [said["event_id"], traced_record["event_id"]]
            # A record of no known frame, whatever its header says, is not one to skip.
            assert refused == {landed[1][2]: "bad_magic"}, refused
            return True

        await assert_eventually(arrived, timeout=60, interval=0.3)
