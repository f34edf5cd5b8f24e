"""The checkpoints projection: the checkpoints topic -> ``checkpoint_index``, ``checkpoint_values``
and ``checkpoint_pending_writes`` rows (Postgres).

Rules: :mod:`runwire.projections.checkpoints.fold`. Exactly-once in effect like every
Postgres projection (:class:`~runwire.projections.runtime.pg_projection.PostgresProjection`):
rows, applied event ids and partition positions change in one transaction.
Each event's statements are queued in log order in the batch's pipeline, so a
thread's prune or delete sees exactly the puts before it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from runwire.contract import jsonvalues
from runwire.contract.events import Stream
from runwire.log.records import SourceRecord
from runwire.projections.checkpoints.fold import (
    DeleteRuns,
    DeleteThread,
    InvalidCheckpointEvent,
    Op,
    Prune,
    Put,
    PutWrites,
    op_of,
)
from runwire.projections.runtime.generations import TableSet
from runwire.projections.runtime.pg import Conn, Pool
from runwire.projections.runtime.pg_projection import FoldContext, PostgresProjection
from runwire.projections.runtime.protocol import Projection, Rejection
from runwire.settings import Settings

NAME = "checkpoints"

TABLES = TableSet(
    projection=NAME,
    package="runwire.projections.migrations.checkpoints",
    tables=(
        "checkpoint_index",
        "checkpoint_values",
        "checkpoint_pending_writes",
        "checkpoint_applied",
    ),
    views=("checkpoint_index", "checkpoint_values", "checkpoint_pending_writes"),
)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class CheckpointsProjection(PostgresProjection):
    """Folds the checkpoints topic into its three tables (rules: :mod:`.fold`)."""

    tables = TABLES
    applied_table = "checkpoint_applied"

    def __init__(self, pool: Pool, settings: Settings, *, generation: int | None = None) -> None:
        super().__init__(pool, (settings.checkpoints,), generation=generation)
        self._settings = settings

    def pinned(self, generation: int) -> CheckpointsProjection:
        return CheckpointsProjection(self._pool, self._settings, generation=generation)

    def remember(self, record: SourceRecord) -> bool:
        return True

    async def fold(self, ctx: FoldContext, records: Sequence[SourceRecord]) -> list[Rejection]:
        tables = _Tables(
            ctx.table("checkpoint_index"),
            ctx.table("checkpoint_values"),
            ctx.table("checkpoint_pending_writes"),
        )
        rejections: list[Rejection] = []
        for record in records:
            event = record.event
            if event.type.stream is not Stream.CHECKPOINT:
                rejections.append(
                    Rejection.of(
                        record, "wrong_topic", f"{event.type.value} event on the checkpoints topic"
                    )
                )
                continue
            try:
                op = op_of(event)
            except InvalidCheckpointEvent as e:
                rejections.append(
                    Rejection.of(record, InvalidCheckpointEvent.reason, f"{event.event_id}: {e}")
                )
                continue
            await _apply(ctx.conn, tables, op, event.tenant)
        return rejections


class _Tables:
    def __init__(self, checkpoints: str, values: str, writes: str) -> None:
        self.checkpoints, self.values, self.writes = checkpoints, values, writes


async def _apply(conn: Conn, t: _Tables, op: Op, tenant: str | None) -> None:
    # Every row carries its event's tenant (row-level security, docs/tenants.md), and
    # the tenant is part of every key: it picks the rows an event changes.
    if isinstance(op, Put):
        c = op.checkpoint
        await conn.execute(
            f"INSERT INTO {t.checkpoints} (thread_id, checkpoint_ns, checkpoint_id, "
            "parent_checkpoint_id, checkpoint, metadata, run_id, tenant) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (tenant, thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET "
            "parent_checkpoint_id = EXCLUDED.parent_checkpoint_id, "
            "checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata, "
            "run_id = EXCLUDED.run_id",
            (
                c.thread_id,
                c.checkpoint_ns,
                c.checkpoint_id,
                c.parent_checkpoint_id,
                # jsonb's numeric drops exponents: 1e308 would read back as an int.
                jsonvalues.jsonb_text(c.checkpoint, "checkpoint"),
                jsonvalues.jsonb_text(c.metadata, "metadata"),
                c.run_id,
                tenant,
            ),
        )
        if op.values:
            async with conn.cursor() as cur:
                await cur.executemany(
                    f"INSERT INTO {t.values} (thread_id, checkpoint_ns, channel, version, type, "
                    "data, base, keep, items, tenant) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    [
                        (
                            v.thread_id,
                            v.checkpoint_ns,
                            v.channel,
                            v.version,
                            v.type,
                            v.data,
                            v.base,
                            v.keep,
                            None if v.type is not None else _json([list(i) for i in v.items]),
                            tenant,
                        )
                        for v in op.values
                    ],
                )
    elif isinstance(op, PutWrites):
        async with conn.cursor() as cur:
            for last_wins in (False, True):
                rows = [w for w in op.writes if w.last_wins is last_wins]
                if not rows:
                    continue
                conflict = (
                    "DO UPDATE SET task_path = EXCLUDED.task_path, channel = EXCLUDED.channel, "
                    "type = EXCLUDED.type, data = EXCLUDED.data"
                    if last_wins
                    else "DO NOTHING"
                )
                await cur.executemany(
                    f"INSERT INTO {t.writes} (thread_id, checkpoint_ns, checkpoint_id, task_id, "
                    "idx, task_path, channel, type, data, tenant) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (tenant, thread_id, checkpoint_ns, checkpoint_id, task_id, idx) "
                    f"{conflict}",
                    [
                        (
                            w.thread_id,
                            w.checkpoint_ns,
                            w.checkpoint_id,
                            w.task_id,
                            w.idx,
                            w.task_path,
                            w.channel,
                            w.type,
                            w.data,
                            tenant,
                        )
                        for w in rows
                    ],
                )
    elif isinstance(op, DeleteThread) or (isinstance(op, Prune) and not op.keep_latest):
        params: dict[str, Any] = {"thread": op.thread_id, "tenant": tenant}
        for table in (t.writes, t.values, t.checkpoints):
            await conn.execute(
                f"DELETE FROM {table} WHERE {_owner(tenant)} AND thread_id = %(thread)s", params
            )
    elif isinstance(op, DeleteRuns):
        params = {"thread": op.thread_id, "tenant": tenant, "runs": list(op.run_ids)}
        await conn.execute(
            f"DELETE FROM {t.writes} w USING {t.checkpoints} c WHERE {_owner(tenant, 'c.')} "
            "AND c.thread_id = %(thread)s AND c.run_id = ANY(%(runs)s) "
            "AND w.tenant IS NOT DISTINCT FROM c.tenant AND w.thread_id = c.thread_id "
            "AND w.checkpoint_ns = c.checkpoint_ns AND w.checkpoint_id = c.checkpoint_id",
            params,
        )
        await conn.execute(
            f"DELETE FROM {t.checkpoints} WHERE {_owner(tenant)} AND thread_id = %(thread)s "
            "AND run_id = ANY(%(runs)s)",
            params,
        )
    else:
        await _keep_latest(conn, t, op.thread_id, tenant)


def _owner(tenant: str | None, alias: str = "") -> str:
    """The rows of the event's tenant: a thread is (tenant, thread id), and rows written
    without a tenant are one more owner. Two forms, as ``IS NOT DISTINCT FROM`` would
    not use the keys' index."""
    return f"{alias}tenant = %(tenant)s" if tenant is not None else f"{alias}tenant IS NULL"


async def _keep_latest(conn: Conn, t: _Tables, thread_id: str, tenant: str | None) -> None:
    mine = f"{_owner(tenant)} AND thread_id = %(thread)s"
    latest = (
        f"SELECT DISTINCT ON (checkpoint_ns) checkpoint_ns, checkpoint_id FROM {t.checkpoints} "
        f"WHERE {mine} ORDER BY checkpoint_ns, checkpoint_id DESC"
    )
    params = {"thread": thread_id, "tenant": tenant}
    await conn.execute(
        f"DELETE FROM {t.writes} WHERE {mine} AND (checkpoint_ns, checkpoint_id) NOT IN ({latest})",
        params,
    )
    await conn.execute(
        f"DELETE FROM {t.checkpoints} WHERE {mine} "
        f"AND (checkpoint_ns, checkpoint_id) NOT IN ({latest})",
        params,
    )
    # The values the kept checkpoints name, and the bases of those that are deltas.
    await conn.execute(
        f"DELETE FROM {t.values} WHERE {mine} "
        "AND (checkpoint_ns, channel, version) NOT IN ("
        "WITH RECURSIVE need(checkpoint_ns, channel, version) AS ("
        f"SELECT c.checkpoint_ns::text, e.key, e.value FROM {t.checkpoints} c, "
        f"jsonb_each_text(c.checkpoint->'channel_versions') e WHERE {_owner(tenant, 'c.')} "
        "AND c.thread_id = %(thread)s "
        f"UNION SELECT v.checkpoint_ns, v.channel, v.base FROM {t.values} v JOIN need n "
        f"ON {_owner(tenant, 'v.')} AND v.thread_id = %(thread)s "
        "AND v.checkpoint_ns = n.checkpoint_ns "
        "AND v.channel = n.channel AND v.version = n.version WHERE v.base IS NOT NULL"
        ") SELECT checkpoint_ns, channel, version FROM need)",
        params,
    )


@asynccontextmanager
async def open_checkpoints(settings: Settings) -> AsyncIterator[Projection]:
    """The catalog opener: the projection on its own pool, its tables prepared."""
    from runwire.projections.runtime.pg import open_pool

    pool = await open_pool(settings, name="runwire-projector-checkpoints")
    try:
        projection = CheckpointsProjection(pool, settings)
        await projection.prepare()
        yield projection
    finally:
        await pool.close()
