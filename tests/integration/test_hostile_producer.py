"""A hostile producer (aiokafka with raw bytes; bodies from the .avsc files with
fastavro) writes random schema-valid records, repaired or not, and every malformed
kind, while every consumer runs. Property, for each record: every consumer that
reads its topic applies it, or all of them dead-letter it with the same reason (the
expected one for a malformed kind); no consumer dies or stalls (every projection's
lag returns to 0, a barrier of sentinel records is reached by every follower); and
a normal run afterwards completes. Bounded: a fixed number of derandomized examples.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import hypothesis
import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import strategies as st

from runwire.contract.codec import REASONS
from runwire.contract.events import RunStatus
from runwire.projections.runtime.pg import Pool
from runwire.projections.transcripts.reader import TranscriptCache
from runwire.services.orchestrator.watchdog import Watchdog
from runwire.settings import Settings
from tests.helpers import assert_eventually, on_the_stack
from tests.integration.projection_support import table
from tests.support.every_consumer import (
    SERVICES,
    Consumers,
    Where,
    every_consumer,
)
from tests.support.hostile import (
    Hostile,
    event_schemas,
    good_record,
    hostile_batches,
    placed,
    plausible_run_event,
)

EXAMPLES = 12
EXTRA = 8  # draws of any category per example, besides one of each
MB = 1_000_000
COMPRESSION = (None, "gzip", "lz4", "zstd", "snappy")


def topics(settings: Settings) -> dict[str, str]:
    return {
        "run": settings.run_events,
        "session": settings.session_events,
        "memory": settings.memory,
    }


async def write(
    settings: Settings, records: Sequence[Hostile], compression: str | None
) -> list[Where]:
    """Write ``records`` in order with a plain aiokafka producer; where each landed."""
    names = topics(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        compression_type=compression,
        max_request_size=8 * MB,
    )
    await producer.start()
    try:
        sent = [
            await producer.send(
                names[h.stream], h.value, key=h.key, partition=h.partition, headers=h.headers
            )
            for h in records
        ]
        landed = [await s for s in sent]
    finally:
        await producer.stop()
    return [(m.topic, m.partition, m.offset) for m in landed]


def sentinels(partitions: Mapping[str, Sequence[int]]) -> list[Hostile]:
    """A record no consumer can read on every partition: once each consumer has
    dead-lettered all of them, it has read everything written before them."""
    return [
        Hostile("sentinel", stream, f"sentinel-{p}".encode(), b"\x7fsentinel", p, [], "bad_magic")
        for stream, ps in partitions.items()
        for p in ps
    ]


def outcomes(
    consumers: Consumers, letters: Mapping[Where, Mapping[str, str]], where: Where
) -> dict[str, str | None]:
    """What each consumer reading the record's topic did: its reason, or None (applied)."""
    topic = where[0]
    found = dict(letters.get(where, {}))
    out: dict[str, str | None] = {c: found.get(c) for c in consumers.readers_of(topic)}
    out["subscriber"] = consumers.undecodable.get(where)
    return out


async def settle(consumers: Consumers, barrier: Sequence[Where]) -> dict[Where, dict[str, str]]:
    """Wait until every consumer dead-lettered every sentinel; the dead letters then."""
    await consumers.wait_caught_up()
    letters: dict[Where, dict[str, str]] = {}

    async def barrier_reached() -> bool:
        nonlocal letters
        consumers.assert_alive()
        letters = await consumers.dead_letters()
        for where in barrier:
            got = outcomes(consumers, letters, where)
            assert all(r == "bad_magic" for r in got.values()), (where, got)
        return True

    await assert_eventually(barrier_reached, timeout=90, interval=0.5)
    return letters


IDENTITY = "conflicting_duplicate_event"
"""An id reused with another body in its stream: the projections dead-letter it and
the subscriber refuses it; the orchestrator fails the run instead and the tool runner
never runs a call twice (their way of refusing it, shown by the test of it below and
by the tool runner's)."""


def judge_identity(h: Hostile, got: Mapping[str, str | None]) -> str | None:
    """What is wrong with the outcome of a record refused as a reused id, if anything."""
    if h.expect not in (None, IDENTITY):
        return f"expected {h.expect}, refused as a reused id: {got}"
    readers = {c: r for c, r in got.items() if c not in SERVICES}
    services = {c: r for c, r in got.items() if c in SERVICES}
    if set(readers.values()) != {IDENTITY} or set(services.values()) - {None, IDENTITY}:
        return f"not refused alike as a reused id: {got}"
    return None


def judge(
    consumers: Consumers,
    letters: Mapping[Where, Mapping[str, str]],
    records: Sequence[Hostile],
    landed: Sequence[Where],
    counts: Counter[str],
) -> list[str]:
    """Every way the records' outcomes break the property, one line each."""
    problems: list[str] = []
    for h, where in zip(records, landed, strict=True):
        got = outcomes(consumers, letters, where)
        counts[h.category] += 1
        decode = {c: r for c, r in got.items() if r in REASONS}
        # Besides the envelope and decode reasons, only the read models with transcript
        # rules of their own refuse a record (the transcripts' ledger; the run-status
        # store's tool-call rules), and when both do, for the same rule.
        rules = {c: r for c, r in got.items() if r is not None and r not in REASONS}
        if IDENTITY in got.values():
            wrong = judge_identity(h, got)
            if wrong is not None:
                problems.append(f"{h.category} at {where}: {wrong}")
            else:
                counts[f"refused alike ({IDENTITY})"] += 1
        elif set(rules) - {"transcripts", "runs"} or len(set(rules.values())) > 1:
            why = {c: consumers.messages.get((*where, c)) for c in rules}
            problems.append(f"{h.category} at {where}: a reason outside the vocabulary: {why}")
        elif h.expect is not None:
            if set(got.values()) != {h.expect}:
                problems.append(f"{h.category} at {where}: expected {h.expect} from all, got {got}")
            else:
                counts[f"dead-lettered alike ({h.expect})"] += 1
        elif decode or h.refused:
            if set(decode) != set(got) or len(set(decode.values())) != 1:
                problems.append(f"{h.category} at {where}: consumers disagree: {got}")
            else:
                counts[f"dead-lettered alike ({next(iter(decode.values()))})"] += 1
        else:
            counts["applied by all" if not rules else "applied; the ledger refused it"] += 1
            for consumer, rule in rules.items():
                counts[f"rule {rule} ({consumer})"] += 1
    return problems


# The consumers on the event loop's thread draw from `random` (backoff jitter) while
# hypothesis draws in another thread; only that notice is let through.
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)
async def test_every_consumer_agrees_on_a_hostile_producers_records(settings: Settings) -> None:
    later = Watchdog(settings, now=lambda: datetime.now(UTC) + timedelta(days=1))
    async with every_consumer(
        settings, sessions=["h-sess-1", "h-sess-2"], watchdog=later
    ) as consumers:
        partitions = await partitions_of(settings)
        loop = asyncio.get_running_loop()
        counts: Counter[str] = Counter()
        problems: list[str] = []
        bad_event_ids: set[str] = set()
        good_event_ids: set[str] = set()  # drawn ids repeat: an id of both says nothing

        async def example(records: list[Hostile], compression: str | None) -> None:
            fence = sentinels(partitions)
            landed = await write(settings, [*records, *fence], compression)
            letters = await settle(consumers, landed[len(records) :])
            problems.extend(judge(consumers, letters, records, landed[: len(records)], counts))
            for h in records:
                refused = h.expect is not None or h.refused
                (bad_event_ids if refused else good_event_ids).add(h.event_id or "")
            # The watchdog folds every stalled run from the log (a day later: all of them).
            await consumers.watchdog.sweep()
            counts["examples"] += 1

        @hypothesis.given(
            records=hostile_batches(partitions, EXTRA), compression=st.sampled_from(COMPRESSION)
        )
        @on_the_stack(EXAMPLES)
        def prop(records: list[Hostile], compression: str | None) -> None:
            asyncio.run_coroutine_threadsafe(example(records, compression), loop).result(300)

        await asyncio.to_thread(prop)
        consumers.assert_alive()

        # The session watcher never handed on an event of a refused record.
        heard = {e.event_id for c in consumers.changes.values() for ch in c for e in ch.events}
        assert not heard & (bad_event_ids - good_event_ids)

        # A normal run afterwards completes: nothing stalled behind the hostile records.
        run = await consumers.client.run("assistant", "what is 6 * 7?", session_id="s-after")
        outcome = await run.wait(timeout=90)
        assert outcome.status is RunStatus.COMPLETED, outcome.events
        assert "42" in outcome.text

    print("\nhostile producer, records per category and outcome:")
    for name, n in sorted(counts.items()):
        print(f"  {name}: {n}")
    assert counts["examples"] == EXAMPLES
    assert not problems, "\n".join(problems)


async def partitions_of(settings: Settings) -> dict[str, list[int]]:
    probe = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await probe.start()
    try:
        return {
            stream: sorted(await probe.partitions_for(topic))
            for stream, topic in topics(settings).items()
        }
    finally:
        await probe.stop()


async def outcomes_of(
    settings: Settings, records: Sequence[Hostile]
) -> list[dict[str, str | None]]:
    """What every consumer did with each of ``records``, written with every consumer running."""
    async with every_consumer(settings) as consumers:
        fence = sentinels(await partitions_of(settings))
        landed = await write(settings, [*records, *fence], None)
        letters = await settle(consumers, landed[len(records) :])
        return [outcomes(consumers, letters, where) for where in landed[: len(records)]]


async def test_a_run_stamped_before_1970_is_projected_by_the_transcripts(
    settings: Settings,
) -> None:
    """``occurred_at`` is any Avro long: a foreign event stamped before 1970 decodes,
    and the transcript cache's script takes the run's negative first time (its header
    pattern had no sign: the script compared nil and the projector died)."""
    parts = await partitions_of(settings)
    es, said = plausible_run_event("before-1970", "hello", uuid.uuid4())
    said["occurred_at"] = -1
    async with every_consumer(settings) as consumers:
        landed = await write(settings, [good_record(es, said, parts, "x"), *sentinels(parts)], None)
        await settle(consumers, landed[1:])
    async with TranscriptCache(settings) as cache:
        assert await cache.start_of("before-1970") is not None


async def test_a_reused_event_id_with_another_body_is_refused_by_every_consumer(
    settings: Settings, pool: Pool
) -> None:
    """The same event id with another body in a run is a conflict, not a duplicate:
    the projections and the subscriber refuse the copy, the orchestrator fails the run."""
    parts = await partitions_of(settings)
    run_id = f"reused-{uuid.uuid4().hex[:8]}"
    es, started = plausible_run_event(run_id, "", uuid.uuid4(), kind="run_started")
    _, said = plausible_run_event(run_id, "hello", uuid.uuid4(), causation_id=started["event_id"])
    _, copy = plausible_run_event(run_id, "another body", uuid.UUID(said["event_id"]))
    records = [good_record(es, started, parts, "run_started")]
    records += [good_record(event_schemas()["user_message"], r, parts, "x") for r in (said, copy)]
    got = await outcomes_of(settings, records)
    assert [set(g.values()) for g in got[:2]] == [{None}, {None}], got
    refused = {c: r for c, r in got[2].items() if c not in SERVICES}
    assert set(refused.values()) == {IDENTITY}, got[2]
    rows = await table(pool, f"SELECT status, last_error FROM run_status WHERE run_id = '{run_id}'")
    assert rows[0]["status"] == "failed", rows
    assert IDENTITY in json.dumps(rows[0]["last_error"]), rows


async def test_a_null_value_outside_the_memory_topic_is_refused_as_truncated(
    settings: Settings,
) -> None:
    """A null value is a tombstone on the memory topic only: on the run and session
    topics every consumer reading them (the memory projection reads the session
    topic too) refuses it as ``truncated``."""
    parts = await partitions_of(settings)
    run_key, session_key = b"null-run", b"null-session"
    nulls = [
        Hostile("null_value", "run", run_key, None, placed(run_key, parts["run"])),
        Hostile("null_value", "session", session_key, None, placed(session_key, parts["session"])),
    ]
    got = await outcomes_of(settings, nulls)
    assert [set(g.values()) for g in got] == [{"truncated"}, {"truncated"}], got


async def test_an_event_over_the_limits_is_refused_alike_and_the_watchdog_goes_on(
    settings: Settings,
) -> None:
    """An event whose labels break the README's limits (an empty key) is refused by
    every consumer (``invalid_event``), so no service holds an envelope it cannot
    write back: the watchdog's sweep fails the stalled run beside it and goes on."""
    parts = await partitions_of(settings)
    es, record = plausible_run_event("over-the-limits", "hello", uuid.uuid4())
    record["labels"] = {"": "empty key"}
    over = good_record(es, record, parts, "repaired")
    _, other = plausible_run_event("stalled-beside-it", "hello", uuid.uuid4())
    stalled = good_record(es, other, parts, "repaired")
    later = Watchdog(settings, now=lambda: datetime.now(UTC) + timedelta(days=1))
    async with every_consumer(settings, watchdog=later) as consumers:
        landed = await write(settings, [over, stalled, *sentinels(parts)], None)
        letters = await settle(consumers, landed[2:])
        refused = outcomes(consumers, letters, landed[0])
        failed = await consumers.watchdog.sweep()
    assert set(refused.values()) == {"invalid_event"}, refused
    assert [s.run_id for s in failed] == ["stalled-beside-it"]


async def test_token_counts_past_what_a_model_reports_are_refused_alike(
    settings: Settings,
) -> None:
    """Usage counts are Avro longs; the run-status store adds a run's counts up in a
    ``bigint``. A count beyond what any model call reports (over 2**31 - 1, or
    negative) is refused by every consumer (``invalid_event``), so no sum can
    overflow in one store while the others apply it."""
    parts = await partitions_of(settings)
    usage = event_schemas()["usage"]
    records = []
    for tokens in (2**63 - 1, -1, 2**31 - 1):
        _, record = plausible_run_event("many-tokens", "", uuid.uuid4(), kind="run_started")
        record["type"] = "usage"
        record["payload"] = {"model": "m", "provider": "p", "input_tokens": tokens}
        records.append(good_record(usage, record, parts, "repaired"))
    got = await outcomes_of(settings, records)
    assert [set(g.values()) for g in got] == [{"invalid_event"}, {"invalid_event"}, {None}], got
