"""The projectors under faults: kill -9, malformed records, rebalances, rebuilds under load."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import subprocess
import sys
from collections.abc import Collection, Sequence
from pathlib import Path

import psycopg
import pytest
from aiokafka import AIOKafkaProducer

from runwire.contract.codec import REASONS, default_codec
from runwire.contract.events import Event, SessionDeleted, ToolResult, Usage
from runwire.errors import DecodeError
from runwire.log.records import SourceRecord, TopicPartition
from runwire.projections.runs.projection import RunsProjection
from runwire.projections.runs.reader import RunStore
from runwire.projections.runtime.dead_letters import list_dead_letters
from runwire.projections.runtime.lag import projection_lag
from runwire.projections.runtime.pg import Pool
from runwire.projections.runtime.pg_projection import PostgresProjection
from runwire.projections.runtime.protocol import ApplyResult, Batch, DeadLetterSink
from runwire.projections.runtime.rebuild import rebuild
from runwire.projections.sessions.projection import SessionsProjection
from runwire.settings import Settings
from tests.helpers import assert_eventually
from tests.integration.projection_support import (
    as_records,
    assert_runs_match,
    assert_sessions_match,
    caught_up,
    checksums,
    projections,
    running,
    table,
)
from tests.support.reference import fold_runs
from tests.support.workload import Placed, bulk_publish, synthetic_events

REPO = Path(__file__).resolve().parents[2]


async def publish_slowly(
    settings: Settings, events: Sequence[Event], chunks: int, pause: float
) -> list[Placed]:
    placed: list[Placed] = []
    size = -(-len(events) // chunks)
    for i in range(0, len(events), size):
        placed.extend(await bulk_publish(settings, events[i : i + size]))
        await asyncio.sleep(pause)
    return placed


# -- kill -9 ------------------------------------------------------------------


def settings_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWIRE_")}
    env.update(
        RUNWIRE_KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
        RUNWIRE_POSTGRES_DSN=settings.postgres_dsn,
        RUNWIRE_REDIS_URL=settings.redis_url,
        RUNWIRE_TOPIC_PREFIX=settings.topic_prefix,
        RUNWIRE_REDIS_KEY_PREFIX=settings.redis_key_prefix,
        RUNWIRE_HOME=str(settings.home),
    )
    return env


class Incarnations:
    """``runwire serve projector-NAME`` processes, one after the other, each with its own log."""

    def __init__(self, name: str, settings: Settings, logs: Path) -> None:
        self.name = name
        self.settings = settings
        self.logs = logs
        self.kills = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: Path = logs

    def start(self) -> None:
        self.log = self.logs / f"{self.name}-{self.kills}.log"
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "runwire.cli.main",
                    "serve",
                    f"projector-{self.name}",
                    "--instance-id",
                    f"{self.name}-0",
                    "--max-records",
                    "500",
                ],
                env=settings_env(self.settings),
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=REPO,
            )

    async def working(self) -> None:
        """Wait until this incarnation has its partitions (it is applying)."""
        await assert_eventually(
            lambda: "assigned" in self.log.read_text(), timeout=60, interval=0.05
        )

    def stored_at_start(self, incarnation: int) -> int:
        """Sum of the positions incarnation ``n`` loaded when it was assigned its partitions."""
        text = (self.logs / f"{self.name}-{incarnation}.log").read_text()
        line = next(line for line in text.splitlines() if "assigned" in line)
        return sum(int(n) for n in re.findall(r"@(\d+)", line))

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.kills += 1

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


async def kill_repeatedly(proc: Incarnations, times: int, rng: random.Random) -> None:
    """Kill -9 at a random instant while it applies, restart, ``times`` times."""
    for _ in range(times):
        await proc.working()
        await asyncio.sleep(rng.uniform(0.05, 1.0))
        proc.kill()
        proc.start()
    await proc.working()


async def test_kill_9_at_random_instants_then_restart_equals_a_clean_rebuild(
    settings: Settings, pool: Pool, tmp_path: Path
) -> None:
    workload = synthetic_events(runs=800, sessions=120, events=20_000, seed=2)
    runs, sessions = projections(pool, settings)
    await runs.prepare()
    await sessions.prepare()
    procs = [Incarnations(name, settings, tmp_path) for name in ("runs", "sessions")]
    for proc in procs:
        proc.start()
    try:
        load = asyncio.create_task(publish_slowly(settings, workload.events, chunks=24, pause=0.2))
        await asyncio.gather(
            *(kill_repeatedly(proc, 5, random.Random(n)) for n, proc in enumerate(procs))
        )
        placed = await load
        await caught_up(runs, settings)
        await caught_up(sessions, settings)
    finally:
        for proc in procs:
            proc.terminate()
    assert [proc.kills for proc in procs] == [5, 5]
    # The kills hit working projectors: each incarnation found more applied than the last.
    for proc in procs:
        found = [proc.stored_at_start(n) for n in range(proc.kills + 1)]
        assert found == sorted(found), found
        assert len(set(found)) >= 3, found  # most incarnations applied before the kill
    survived = await checksums(pool)
    records = as_records(workload.events, placed)
    await assert_runs_match(pool, records, settings.run_events, settings.session_events)
    await assert_sessions_match(pool, records, settings.session_events)
    # A clean rebuild of both from offset 0 gives the same tables.
    await asyncio.gather(rebuild(runs, settings), rebuild(sessions, settings))
    assert (await runs.generations()).live == 2
    assert (await sessions.generations()).live == 2
    assert await checksums(pool) == survived


# -- malformed records --------------------------------------------------------


def malformed(rng: random.Random, good: Event, kind: str) -> bytes:
    """Bytes of the given kind that do not decode to an event."""
    codec = default_codec()
    value = codec.encode(good)
    if kind == "bad_magic":
        data = b"\x07\x07" + value[2:]
    elif kind == "unknown_fingerprint":
        data = value[:2] + rng.randbytes(8) + value[10:]
    elif kind == "truncated":
        data = value[: max(11, len(value) // 2)]
    else:  # wrong types: the body of another type behind this type's header
        for other in (
            Event.create(Usage(model="m" * 30, provider="p", input_tokens=2**31 - 1), run_id="r"),
            Event.create(ToolResult(tool_use_id="x", content={"k": [1.5, "v"]}), run_id="r"),
        ):
            data = value[:10] + codec.encode(other)[10:]
            if other.type is not good.type:
                break
    with pytest.raises(DecodeError):
        codec.decode(data)
    return data


async def test_malformed_records_are_dead_lettered_and_good_ones_applied(
    settings: Settings, pool: Pool
) -> None:
    rng = random.Random(5)
    workload = synthetic_events(runs=150, sessions=30, events=4_000, seed=4)
    runs, sessions = projections(pool, settings)
    await runs.prepare()
    await sessions.prepare()
    run_events = [e for e in workload.events if e.run_id is not None]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    placed: list[Placed] = []
    bad: dict[tuple[str, int, int], str] = {}
    orphans: list[tuple[Event, Placed]] = []
    try:
        chunk = -(-len(workload.events) // 20)
        for n, start in enumerate(range(0, len(workload.events), chunk)):
            placed.extend(await bulk_publish(settings, workload.events[start : start + chunk]))
            for i in range(10):
                victim = rng.choice(run_events)
                kind = ["bad_magic", "unknown_fingerprint", "truncated", "wrong_types", "orphan"][
                    (n * 10 + i) % 5
                ]
                if kind == "orphan":
                    # Decodes fine, but answers a tool_use that never happened.
                    event = Event.create(
                        ToolResult(tool_use_id=f"nope-{n}-{i}"),
                        run_id=victim.run_id,
                        session_id=victim.session_id,
                    )
                    meta = await producer.send_and_wait(
                        settings.run_events,
                        default_codec().encode(event),
                        key=(victim.run_id or "").encode(),
                    )
                    orphans.append((event, Placed(meta.topic, meta.partition, meta.offset)))
                else:
                    topic = settings.session_events if i == 9 else settings.run_events
                    key = (victim.session_id if i == 9 else victim.run_id) or ""
                    meta = await producer.send_and_wait(
                        topic, malformed(rng, victim, kind), key=key.encode()
                    )
                    bad[(meta.topic, meta.partition, meta.offset)] = kind
    finally:
        await producer.stop()
    assert len(bad) + len(orphans) == 200
    async with running(runs, settings) as run_projector, running(sessions, settings) as s_proj:
        await caught_up(runs, settings)
        await caught_up(sessions, settings)
    letters = await list_dead_letters(settings)
    by_consumer: dict[str, dict[tuple[str, int, int], str]] = {"runs": {}, "sessions": {}}
    for letter in letters:
        source = (letter.source_topic, letter.source_partition, letter.source_offset)
        by_consumer[letter.consumer][source] = letter.reason
        assert letter.error_class
        assert letter.message
    records = as_records(workload.events, placed) + as_records(
        [e for e, _ in orphans], [p for _, p in orphans]
    )
    # Every undecodable record is dead-lettered by each consumer that reads its topic
    # (both read both); the runs projection also rejects the orphans, except the
    # orphans of erased runs that come after the erasure (those are dropped).
    expected = fold_runs(records, settings.run_events, settings.session_events)
    orphan_sources = {(p.topic, p.partition, p.offset) for _, p in orphans}
    assert set(expected.rejected) | set(expected.erased_rejected) == orphan_sources
    assert expected.rejected, "some orphans are of runs that stay"
    assert set(by_consumer["sessions"]) == set(bad)
    assert set(bad) <= set(by_consumer["runs"])
    rejected = {k: v for k, v in by_consumer["runs"].items() if k not in bad}
    assert expected.rejected.items() <= rejected.items()
    assert rejected.items() <= (expected.rejected | expected.erased_rejected).items()
    assert set(rejected.values()) == {"unknown_tool_use"}
    for source, kind in bad.items():
        reason = by_consumer["sessions"][source]
        assert reason == kind or kind in ("truncated", "wrong_types"), (source, kind, reason)
        assert reason in REASONS
    # Counted per decode: a fetch read again (the consumer sought back under load)
    # counts its bad records again; the dead letters above are exact, by source.
    assert run_projector.stats.undecodable >= len(bad)
    assert s_proj.stats.undecodable >= len(bad)
    # Every good event is applied as the pure fold says; the orphans change nothing.
    await assert_runs_match(pool, records, settings.run_events, settings.session_events)
    await assert_sessions_match(pool, records, settings.session_events)


# -- rebalances ---------------------------------------------------------------


async def test_two_instances_and_rebalances_lose_nothing_and_apply_nothing_twice(
    settings: Settings, pool: Pool
) -> None:
    workload = synthetic_events(runs=400, sessions=60, events=10_000, seed=6)
    half = len(workload.events) // 2
    runs, sessions = projections(pool, settings)
    await runs.prepare()
    await sessions.prepare()
    async with contextlib.AsyncExitStack() as stack:
        first_runs = await stack.enter_async_context(running(runs, settings))
        first_sessions = await stack.enter_async_context(running(sessions, settings))
        placed = await bulk_publish(settings, workload.events[:half])
        await asyncio.sleep(0.5)
        # A second instance of each joins in the middle of the load: a rebalance.
        second_runs = await stack.enter_async_context(
            running(RunsProjection(pool, settings), settings)
        )
        second_sessions = await stack.enter_async_context(
            running(SessionsProjection(pool, settings), settings)
        )
        placed += await publish_slowly(settings, workload.events[half:], chunks=5, pause=0.2)
        await assert_eventually(lambda: second_runs.assigned() and second_sessions.assigned())
        # ... and the first ones leave: another rebalance.
        await first_runs.stop()
        await first_sessions.stop()
        await caught_up(runs, settings)
        await caught_up(sessions, settings)
    records = as_records(workload.events, placed)
    await assert_runs_match(pool, records, settings.run_events, settings.session_events)
    await assert_sessions_match(pool, records, settings.session_events)
    assert first_runs.stats.applied > 0
    assert second_runs.stats.applied > 0
    # Nothing applied twice: every event of either topic it reads applied exactly once
    # (the workload has nothing to reject; the runs of deleted sessions are dropped,
    # so their events are not all counted in rows).
    read = (settings.run_events, settings.session_events)
    assert first_runs.stats.applied + second_runs.stats.applied == len(
        {r.event.event_id for r in records if r.topic in read}
    )


# -- commits Postgres took back ----------------------------------------------------


async def _snapshot(pool: Pool, projection: PostgresProjection) -> list[tuple[str, str]]:
    """Copy the live copy's tables and positions aside: (table, its copy) pairs."""
    live = (await projection.generations()).live
    tables = [projection.tables.table(base, live) for base in projection.tables.tables]
    pairs = [(t, f"snap_{t}") for t in tables]
    async with pool.connection() as conn, conn.transaction():
        for table_name, snap in pairs:
            await conn.execute(f"CREATE TABLE {snap} AS TABLE {table_name}".encode())
        await conn.execute(
            "CREATE TABLE snap_positions AS SELECT * FROM runwire_projection_positions "
            "WHERE projection = %s AND generation = %s",
            (projection.name, live),
        )
    return pairs


async def _take_back(
    pool: Pool, projection: PostgresProjection, pairs: list[tuple[str, str]]
) -> None:
    """What a crash of Postgres does to commits it had not flushed: rows and
    positions back, together, to the snapshot."""
    async with pool.connection() as conn, conn.transaction():
        for table_name, snap in pairs:
            await conn.execute(f"DELETE FROM {table_name}".encode())
            await conn.execute(f"INSERT INTO {table_name} SELECT * FROM {snap}".encode())
        await conn.execute(
            "DELETE FROM runwire_projection_positions WHERE projection = %s",
            (projection.name,),
        )
        await conn.execute("INSERT INTO runwire_projection_positions SELECT * FROM snap_positions")


class _Outage:
    """A projection whose next applies and position loads fail as if its server were down."""

    def __init__(self, projection: PostgresProjection) -> None:
        self.applies = self.loads = 0
        apply, load_positions = projection.apply, projection.load_positions

        async def failing_apply(batch: Batch, sink: DeadLetterSink) -> ApplyResult:
            if self.applies:
                self.applies -= 1
                raise psycopg.OperationalError("server closed the connection unexpectedly")
            return await apply(batch, sink)

        async def failing_load(
            partitions: Collection[TopicPartition],
        ) -> dict[TopicPartition, int]:
            if self.loads:
                self.loads -= 1
                raise psycopg.OperationalError("connection refused")
            return await load_positions(partitions)

        projection.apply = failing_apply  # type: ignore[method-assign,assignment]
        projection.load_positions = failing_load  # type: ignore[method-assign]


@pytest.mark.parametrize("later", ["records_to_one_partition", "nothing"])
async def test_commits_a_postgres_crash_took_back_are_applied_again_on_every_partition(
    settings: Settings, pool: Pool, later: str
) -> None:
    """The projector commits asynchronously (``synchronous_commit`` off): a crash
    of Postgres may take back its last commits, rows and positions together,
    while the projector has gone past them. Here they are taken back under a
    running projector. Then either the store is down for the next apply and
    the reload after it while records come to one partition only, or nothing
    comes at all: either way every partition is read again from what is
    stored (before, a partition stayed behind until records came to it)."""
    workload = synthetic_events(runs=200, sessions=30, events=4_000, seed=11, duplicate_rate=0)
    first, taken_back = workload.events[:2_000], workload.events[2_000:]
    runs = RunsProjection(pool, settings)
    await runs.prepare()
    observer = RunsProjection(pool, settings)  # its lag reads are not the projector's
    outage = _Outage(runs)
    placed = await bulk_publish(settings, first)
    late: list[Event] = []
    async with running(runs, settings) as projector:
        await caught_up(observer, settings)
        pairs = await _snapshot(pool, runs)
        placed += await bulk_publish(settings, taken_back)
        await caught_up(observer, settings)
        await _take_back(pool, runs, pairs)
        assert (await projection_lag(observer, settings)).lag > 0
        if later == "records_to_one_partition":
            outage.applies = outage.loads = 1
            extra = synthetic_events(runs=4, sessions=20, events=80, seed=12).events
            one = next(e.run_id for e in extra if e.run_id)
            late = [e for e in extra if e.run_id == one]
            assert late
            placed += await bulk_publish(settings, late)
        await caught_up(observer, settings, within=60)
        assert (outage.applies, outage.loads) == (0, 0)
        if later == "records_to_one_partition":
            assert projector.stats.retries >= 1
            assert len({(p.topic, p.partition) for p in placed[-len(late) :]}) == 1
    taken = {(p.topic, p.partition) for p in placed[len(first) : len(first) + len(taken_back)]}
    assert len(taken) > 1  # the commits taken back were on several partitions
    records = as_records([*workload.events, *late], placed)
    await assert_runs_match(pool, records, settings.run_events, settings.session_events)


# -- rebuild under load ---------------------------------------------------------


async def test_a_rebuild_while_writes_continue_ends_identical_to_the_live_projection(
    settings: Settings, pool: Pool
) -> None:
    workload = synthetic_events(runs=500, sessions=80, events=12_000, seed=8)
    first, rest = workload.events[:6_000], workload.events[6_000:]
    runs, sessions = projections(pool, settings)
    await runs.prepare()
    await sessions.prepare()
    store = RunStore(pool, settings, admin=True)  # the workload's tenants' runs
    seen: list[int] = []
    # Runs of sessions the workload deletes leave the table when a copy applies
    # the deletion (forward in time): counted apart, the rest only ever grows.
    deleted = sorted(
        e.session_id
        for e in workload.events
        if isinstance(e.payload, SessionDeleted) and e.session_id is not None
    )
    kept_runs = (
        "SELECT count(*)::int AS n FROM run_status WHERE session_id IS NULL"
        f" OR NOT session_id = ANY('{{{','.join(deleted)}}}'::text[])"
    )

    async def read_all_the_time() -> None:
        while True:
            (row,) = await table(pool, kept_runs)
            seen.append(row["n"])
            await store.list(limit=5)
            await asyncio.sleep(0.01)

    async with running(runs, settings) as live_runs, running(sessions, settings) as live_sessions:
        placed = await bulk_publish(settings, first)
        await caught_up(runs, settings)
        reader = asyncio.create_task(read_all_the_time())
        load = asyncio.create_task(publish_slowly(settings, rest, chunks=12, pause=0.25))
        reports = await asyncio.gather(rebuild(runs, settings), rebuild(sessions, settings))
        placed += await load
        await caught_up(runs, settings)
        await caught_up(sessions, settings)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    assert [r.generation for r in reports] == [2, 2]
    assert all(r.records > 0 for r in reports)
    # The live projectors went over to the new copies without a failed batch
    # (the copy a batch guesses it writes to was dropped by the switch).
    assert (live_runs.stats.retries, live_sessions.stats.retries) == (0, 0)
    # Readers never saw the copy before it caught up, nor an error at the switch.
    assert seen == sorted(seen)
    assert len(seen) > 10
    records: list[SourceRecord] = as_records(workload.events, placed)
    await assert_runs_match(pool, records, settings.run_events, settings.session_events)
    await assert_sessions_match(pool, records, settings.session_events)
    # The old copies are gone.
    left = await table(
        pool,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
        "AND table_name LIKE '%\\_\\_g1'",
    )
    assert left == []
