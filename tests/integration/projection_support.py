"""What the projection tests share: publishing a workload, running projectors, comparing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from psycopg.rows import dict_row

from runwire.contract.events import Event
from runwire.contract.routing import record_key
from runwire.log import Position, Publisher
from runwire.log.records import LogPosition, SourceRecord, TopicPartition
from runwire.projections.runs.projection import RunsProjection
from runwire.projections.runtime.consumer import Projector, ProjectorOptions
from runwire.projections.runtime.lag import projection_lag
from runwire.projections.runtime.pg import Pool
from runwire.projections.runtime.pg_projection import PostgresProjection
from runwire.projections.runtime.protocol import Batch
from runwire.projections.sessions.projection import SessionsProjection
from runwire.settings import Settings
from tests.helpers import assert_eventually
from tests.support.reference import Folded, fold_runs, fold_sessions

FAST = ProjectorOptions(session_timeout_ms=6000, heartbeat_interval_ms=500, poll_timeout_ms=100)


async def publish(settings: Settings, events: Sequence[Event], chunk: int = 5000) -> list[Position]:
    positions: list[Position] = []
    async with Publisher(settings) as publisher:
        for i in range(0, len(events), chunk):
            positions.extend(await publisher.publish_many(events[i : i + chunk]))
    return positions


@contextlib.asynccontextmanager
async def running(
    projection: PostgresProjection,
    settings: Settings,
    options: ProjectorOptions = FAST,
) -> AsyncIterator[Projector]:
    """A projector applying in the background for the duration of the block."""
    async with Projector(projection, settings, options=options) as projector:
        task = asyncio.create_task(projector.run())
        try:
            yield projector
        finally:
            await projector.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=30)


async def caught_up(
    projection: PostgresProjection, settings: Settings, within: float = 120
) -> None:
    """Wait until the projection's stored positions reach the log end everywhere."""

    async def no_lag() -> bool:
        lag = await projection_lag(projection, settings)
        assert lag.lag == 0, f"{projection.name} lag {lag.lag}"
        return True

    await assert_eventually(no_lag, timeout=within, interval=0.3)


def as_records(events: Sequence[Event], positions: Sequence[LogPosition]) -> list[SourceRecord]:
    """The records the log now holds for ``events`` (from where ``publish`` put them)."""
    return [
        SourceRecord(p.topic, p.partition, p.offset, 0, record_key(e), b"", (), e)
        for e, p in zip(events, positions, strict=True)
    ]


def batch(tp: TopicPartition, offset: int, events: Sequence[Event]) -> Batch:
    """``events`` as the batch of one partition's records from ``offset`` on."""
    records = [
        SourceRecord(tp.topic, tp.partition, offset + n, 0, record_key(e), b"", (), e)
        for n, e in enumerate(events)
    ]
    return Batch(records, {tp: offset + len(events)}, {tp: offset})


async def table(pool: Pool, query: str) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(query.encode())
        return await cur.fetchall()


async def checksum(pool: Pool, relation: str, key: str) -> str:
    """A digest of every row of ``relation`` (a view or table) in key order."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY {key})), '') "
            f"FROM {relation} t".encode()
        )
        row = await cur.fetchone()
        assert row is not None
        return str(row[0])


async def checksums(pool: Pool) -> dict[str, str]:
    return {
        "runs": await checksum(pool, "run_status", "run_id"),
        "sessions": await checksum(pool, "session_index", "session_id"),
        "tombstones": await checksum(pool, "session_tombstones", "session_id"),
    }


def _diff(actual: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    for key in sorted(set(actual) | set(expected)):
        a, e = actual.get(key), expected.get(key)
        if a is None or e is None:
            problems.append(f"{key}: {'missing' if a is None else 'unexpected'}")
            continue
        for column, value in e.items():
            if a[column] != value:
                problems.append(f"{key}.{column}: {a[column]!r} != expected {value!r}")
    return problems


async def assert_runs_match(
    pool: Pool, records: Sequence[SourceRecord], run_topic: str, session_topic: str
) -> Folded:
    """``run_status`` is the reference fold; the erasure tables list its deleted sessions and
    exactly the runs they took away."""
    expected = fold_runs(records, run_topic, session_topic)
    actual = {r["run_id"]: r for r in await table(pool, "SELECT * FROM run_status")}
    problems = _diff(actual, expected.rows)
    assert not problems, f"{len(problems)} differences, first: {problems[:10]}"
    (live,) = await table(
        pool, "SELECT live FROM runwire_projection_generations WHERE projection = 'runs'"
    )
    gen = live["live"]
    deleted = await table(pool, f"SELECT session_id FROM run_status_deleted_sessions__g{gen}")
    assert {r["session_id"] for r in deleted} == expected.tombstones
    erased = await table(pool, f"SELECT run_id, session_id FROM run_status_erased_runs__g{gen}")
    everything = fold_runs(records, run_topic).rows
    assert {r["run_id"]: r["session_id"] for r in erased} == {
        k: row["session_id"] for k, row in everything.items() if k not in expected.rows
    }
    return expected


async def assert_sessions_match(
    pool: Pool, records: Sequence[SourceRecord], session_topic: str
) -> Folded:
    expected = fold_sessions(records, session_topic)
    actual = {r["session_id"]: r for r in await table(pool, "SELECT * FROM session_index")}
    problems = _diff(actual, expected.rows)
    assert not problems, f"{len(problems)} differences, first: {problems[:10]}"
    tombstones = {r["session_id"] for r in await table(pool, "SELECT * FROM session_tombstones")}
    assert tombstones == expected.tombstones
    return expected


def projections(pool: Pool, settings: Settings) -> tuple[RunsProjection, SessionsProjection]:
    return RunsProjection(pool, settings), SessionsProjection(pool, settings)
