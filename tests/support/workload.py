"""A synthetic, deterministic log of sessions and runs, and reading a log back.

Used by the projection tests and benchmarks: ``synthetic_events`` gives
realistic run lifecycles (messages, thinking, tool calls and results, usage,
status changes, every kind of ending), sessions that are declared or not,
ended, cleared, deleted mid-way (with runs after the deletion), and
re-published duplicates. ``read_log`` reads topics back with positions.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import TopicPartition as KafkaTopicPartition

from runwire.contract.codec import Codec, default_codec
from runwire.contract.events import (
    AssistantText,
    Event,
    EventPayload,
    RunCanceled,
    RunCompleted,
    RunFailed,
    RunPhase,
    RunStarted,
    RunStatus,
    RunStatusChanged,
    SessionCleared,
    SessionCreated,
    SessionDeleted,
    SessionEnded,
    SessionForked,
    SessionMetadataSet,
    Thinking,
    ToolResult,
    ToolUse,
    Usage,
    UserMessage,
)
from runwire.contract.ids import new_event_id
from runwire.contract.routing import record_headers, record_key, topic_for
from runwire.errors import DecodeError
from runwire.log.records import SourceRecord
from runwire.settings import Settings

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Workload:
    """Events in publish order (each run's and each session's in their own order)."""

    events: list[Event]
    runs: int
    sessions: int
    duplicates: int


class _Clock:
    def __init__(self) -> None:
        self.ms = 0

    def tick(self, rng: random.Random) -> datetime:
        self.ms += rng.randint(1, 40)
        return EPOCH + timedelta(milliseconds=self.ms)


def _event(
    payload: EventPayload, at: datetime, *, run_id: str | None, session_id: str, **kw: Any
) -> Event:
    # Built without validation (the values are valid by construction): a
    # large workload is made in a fraction of the time. Encoding checks them.
    fields: dict[str, Any] = {
        "event_id": new_event_id(),
        "run_id": run_id,
        "session_id": session_id,
        "agent_id": None,
        "turn_id": None,
        "user_id": None,
        "tenant": None,
        "type": payload.event_type,
        "occurred_at": at,
        "producer": "workload",
        "causation_id": None,
        "labels": {},
        "payload": payload,
    }
    fields.update(kw)
    return Event.model_construct(**fields)


def _run_events(
    rng: random.Random,
    clock: _Clock,
    run_id: str,
    session_id: str,
    user: str,
    tenant: str,
    size: int,
) -> list[Event]:
    """One run's lifecycle in about ``size`` events."""
    env = {"user_id": user, "tenant": tenant, "agent_id": f"agent-{rng.randint(1, 5)}"}
    out: list[Event] = []

    def add(payload: EventPayload, **extra: Any) -> None:
        out.append(
            _event(
                payload,
                clock.tick(rng),
                run_id=run_id,
                session_id=session_id,
                **env,
                **extra,
            )
        )

    add(
        RunStarted(agent_id=env["agent_id"], labels={"priority": rng.choice(["low", "high"])}),
        labels={"tenant": tenant},
    )
    add(RunStatusChanged(status=RunStatus.RUNNING, phase=RunPhase.PROMPTED))
    turn = 0
    while len(out) < size - 2:
        turn += 1
        tid = f"{run_id}-t{turn}"
        add(UserMessage(parts=[f"question {turn}"]), turn_id=tid)
        add(Thinking(text=f"thinking {turn}", signature=f"sig{turn}"), turn_id=tid)
        add(AssistantText(text=f"answer {turn}"), turn_id=tid)
        if rng.random() < 0.6:
            ids = [f"tu-{run_id}-{turn}-{i}" for i in range(rng.randint(1, 3))]
            for i, tool_id in enumerate(ids):
                add(ToolUse(id=tool_id, name="lookup", input={"q": i}), turn_id=tid)
            add(RunStatusChanged(status=RunStatus.AWAITING_TOOLS, phase=RunPhase.EXECUTING_TOOLS))
            for tool_id in ids:
                add(
                    ToolResult(
                        tool_use_id=tool_id, content={"ok": True}, is_error=rng.random() < 0.1
                    ),
                    turn_id=tid,
                )
            add(RunStatusChanged(status=RunStatus.RUNNING, phase=RunPhase.SYNTHESIZING))
        add(
            Usage(
                model="m",
                provider="local",
                input_tokens=rng.randint(10, 500),
                output_tokens=rng.randint(10, 500),
                cache_read_tokens=rng.randint(0, 50),
            )
        )
    ending = rng.random()
    if ending < 0.75:
        add(RunCompleted(stop_reason="end_turn"))
    elif ending < 0.85:
        add(RunFailed(error_kind="provider_error", message="model said no", retryable=False))
    elif ending < 0.93:
        add(RunCanceled(reason="user"))
    if ending < 0.05:
        add(RunCanceled(reason="late cancel"))  # after the ending: changes no status
    return out


def synthetic_events(
    *,
    runs: int = 2000,
    sessions: int = 300,
    events: int = 50_000,
    seed: int = 0,
    duplicate_rate: float = 0.01,
    concurrency: int = 64,
) -> Workload:
    """A deterministic log of about ``events`` events (see the module docstring).

    At most ``concurrency`` runs are in flight at any point of the log.
    """
    rng = random.Random(seed)
    clock = _Clock()
    session_ids = [f"s-{seed}-{i:05d}" for i in range(sessions)]
    users = {s: f"u-{rng.randint(1, max(1, sessions // 5))}" for s in session_ids}
    tenants = {s: rng.choice(["acme", "globex", "initech"]) for s in session_ids}
    undeclared = set(rng.sample(session_ids, k=max(1, sessions // 20)))
    doomed = set(rng.sample(sorted(set(session_ids) - undeclared), k=max(1, sessions // 20)))

    def session_event(sid: str, payload: EventPayload, **kw: Any) -> Event:
        return _event(payload, clock.tick(rng), run_id=None, session_id=sid, **kw)

    streams: list[list[Event]] = []
    per_run = max(4, events // max(1, runs))
    for sid in session_ids:
        if sid not in undeclared:
            streams.append(
                [
                    session_event(
                        sid,
                        SessionCreated(user_id=users[sid], metadata={"title": f"chat {sid}"}),
                        tenant=tenants[sid],
                        labels={"tenant": tenants[sid]},
                    )
                ]
            )
    for n in range(runs):
        sid = session_ids[n % sessions]
        size = max(4, int(rng.gauss(per_run, per_run / 4)))
        streams.append(
            _run_events(rng, clock, f"r-{seed}-{n:06d}", sid, users[sid], tenants[sid], size)
        )
    # Session changes after their first runs: metadata, clears, ends, deletions.
    later: list[list[Event]] = []
    for sid in session_ids:
        stream = [session_event(sid, SessionMetadataSet(key="topic", value=rng.choice(["a", "b"])))]
        if rng.random() < 0.2:
            stream.append(session_event(sid, SessionMetadataSet(key="title", value=None)))
        if rng.random() < 0.1:
            stream.append(session_event(sid, SessionCleared()))
        if rng.random() < 0.3:
            stream.append(session_event(sid, SessionEnded(reason="idle")))
        k = session_ids.index(sid)
        if k % 7 == 3:  # some sessions are forks of the one before (no draw: same rng path)
            fork = SessionForked(
                parent_session_id=session_ids[k - 1],
                turn=1,
                run_ids=[f"r-{seed}-{k - 1:06d}"],
                through_offset=k,
            )
            stream.append(session_event(sid, fork))
            # A second fork event of the same session changes nothing: the first holds.
            second = fork.model_copy(update={"turn": 2})
            stream.append(session_event(sid, second))
        if sid in doomed:
            stream.append(session_event(sid, SessionDeleted()))
        later.append(stream)
    ordered = _interleave(rng, streams, later, concurrency)
    # Re-published duplicates land a little after their original.
    keyed = [(float(i), e) for i, e in enumerate(ordered)]
    dupes = [(i + rng.randint(1, 500) + 0.5, e) for i, e in keyed if rng.random() < duplicate_rate]
    final = [e for _, e in sorted(keyed + dupes, key=lambda pair: pair[0])]
    return Workload(events=final, runs=runs, sessions=sessions, duplicates=len(dupes))


def _interleave(
    rng: random.Random,
    first: Sequence[Sequence[Event]],
    then: Sequence[Sequence[Event]],
    concurrency: int,
) -> list[Event]:
    """Merge streams keeping each one's order, at most ``concurrency`` in flight at once.

    Streams start in the given order as others finish (runs last a while,
    then end); ``then`` streams join once half of ``first`` is out.
    """
    out: list[Event] = []
    waiting = [s for s in first if s][::-1]
    pending = [s for s in then if s]
    total = sum(len(s) for s in first)
    active: list[Sequence[Event]] = []
    cursors: list[int] = []
    while waiting or active:
        while waiting and len(active) < concurrency:
            active.append(waiting.pop())
            cursors.append(0)
        i = rng.randrange(len(active))
        out.append(active[i][cursors[i]])
        cursors[i] += 1
        if cursors[i] == len(active[i]):
            active[i], cursors[i] = active[-1], cursors[-1]
            active.pop()
            cursors.pop()
        if pending and len(out) >= total // 2:
            active.extend(pending)
            cursors.extend([0] * len(pending))
            pending = []
    return out


@dataclass(frozen=True, slots=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


async def read_raw(settings: Settings, topics: Sequence[str]) -> list[RawRecord]:
    """Every record of ``topics`` from offset 0 to the current end."""
    kafka = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1_048_576,
    )
    await kafka.start()
    out: list[RawRecord] = []
    try:
        await kafka._client.force_metadata_update()
        tps = [
            KafkaTopicPartition(t, p)
            for t in topics
            for p in sorted(kafka.partitions_for_topic(t) or ())
        ]
        kafka.assign(tps)
        await kafka.seek_to_beginning(*tps)
        ends = await kafka.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await kafka.getmany(*remaining, timeout_ms=1000, max_records=10_000)
            for tp, records in batch.items():
                out.extend(
                    RawRecord(tp.topic, tp.partition, r.offset, r.key, r.value or b"")
                    for r in records
                    if r.offset < ends[tp]
                )
            remaining = {tp for tp in remaining if await kafka.position(tp) < ends[tp]}
    finally:
        await kafka.stop()
    return out


def decode_all(
    raw: Sequence[RawRecord], codec: Codec | None = None
) -> tuple[list[SourceRecord], list[tuple[RawRecord, str]]]:
    """Decoded records, and the undecodable ones with their reasons."""
    codec = codec or default_codec()
    good: list[SourceRecord] = []
    bad: list[tuple[RawRecord, str]] = []
    for r in raw:
        try:
            event = codec.decode(r.value)
        except DecodeError as e:
            bad.append((r, e.reason))
            continue
        good.append(SourceRecord(r.topic, r.partition, r.offset, 0, r.key, r.value, (), event))
    return good, bad


async def read_log(
    settings: Settings, topics: Sequence[str]
) -> tuple[list[SourceRecord], list[tuple[RawRecord, str]]]:
    """:func:`read_raw` then :func:`decode_all`."""
    return decode_all(await read_raw(settings, topics))


@dataclass(frozen=True, slots=True)
class Placed:
    """Where a bulk-published event landed (``Publisher.publish``'s ``Position`` shape)."""

    topic: str
    partition: int
    offset: int


async def bulk_publish(
    settings: Settings, events: Sequence[Event], codec: Codec | None = None
) -> list[Placed]:
    """Write many events fast, as the publisher would route them; positions in input order.

    The same topics, keys, partitions (murmur2 of the key) and headers as
    ``Publisher``, but records are appended to batches directly, uncompressed:
    loading a test or benchmark log then takes a fraction of the time.
    """
    codec = codec or default_codec()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        max_batch_size=1_048_576,
    )
    partitioner = DefaultPartitioner()
    await producer.start()
    try:
        counts: dict[str, list[int]] = {}
        for topic in {topic_for(e.type.stream, settings) for e in events}:
            parts = await producer.partitions_for(topic)
            counts[topic] = sorted(parts)
        placed: list[tuple[str, int, int, int]] = []  # topic, partition, batch no, index
        batches: dict[tuple[str, int], Any] = {}
        sizes: dict[tuple[str, int], int] = {}
        flushed: dict[tuple[str, int], int] = {}
        futures: list[tuple[tuple[str, int], Any]] = []

        async def flush(where: tuple[str, int]) -> None:
            batch = batches.pop(where)
            futures.append((where, await producer.send_batch(batch, where[0], partition=where[1])))
            flushed[where] = flushed.get(where, 0) + 1

        for event in events:
            value = codec.encode(event)
            key = record_key(event)
            topic = topic_for(event.type.stream, settings)
            partition = partitioner(key, counts[topic], counts[topic])
            where = (topic, partition)
            headers = record_headers(event, value[2:10])
            for _ in range(2):
                batch = batches.get(where)
                if batch is None:
                    batch = batches[where] = producer.create_batch()
                    sizes[where] = 0
                if batch.append(key=key, value=value, timestamp=None, headers=headers):
                    break
                await flush(where)
            else:
                raise ValueError(f"event {event.event_id} does not fit in a batch")
            placed.append(
                (topic, partition, sum(1 for w, _ in futures if w == where), sizes[where])
            )
            sizes[where] += 1
        for where in list(batches):
            await flush(where)
        bases: dict[tuple[str, int], list[int]] = {}
        for where, future in futures:
            bases.setdefault(where, []).append((await future).offset)
        return [Placed(t, p, bases[(t, p)][n] + i) for t, p, n, i in placed]
    finally:
        await producer.stop()
