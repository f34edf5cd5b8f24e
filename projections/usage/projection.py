"""The usage projection: ``usage`` events -> ``usage_rollup`` rows (Postgres).

Rules: :mod:`.fold`. Exactly-once in effect like every Postgres projection
(:class:`~runwire.projections.runtime.pg_projection.PostgresProjection`):
rows, applied event ids and partition positions change in one transaction,
so a redelivery, a restart or a replay adds nothing twice.

Concurrency: a session's usage lies on many run-events partitions and its
deletion on a session-events partition, which other instances may own.
Each batch takes a transaction advisory lock per session of its usage
events and deletions (in hash order) before it reads the deleted sessions:
a usage event applied beside a concurrent deletion of its session either
commits first (and the deletion removes its row) or reads afterwards (and
is dropped). Every row that a deletion removes names its session, so the
session lock covers it.

A deletion removes the session's rows of its own tenant (or of none), all of
them when it names no tenant, and is kept in ``usage_deleted_sessions`` with
that tenant (one row per session and deleting tenant; rules: :mod:`.fold`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from runwire.log.records import SourceRecord
from runwire.projections.runtime.generations import TableSet
from runwire.projections.runtime.pg import Pool
from runwire.projections.runtime.pg_projection import FoldContext, PostgresProjection
from runwire.projections.runtime.protocol import Projection, Rejection
from runwire.projections.runtime.session_deletions import reaches, store_tombstones
from runwire.projections.usage.fold import COUNTS, Deleted, fold_batch, sessions_of
from runwire.settings import Settings

NAME = "usage"

TABLES = TableSet(
    projection=NAME,
    package="runwire.projections.migrations.usage",
    tables=("usage_rollup", "usage_deleted_sessions", "usage_applied"),
    views=("usage_rollup",),
)

_ATTRIBUTES = ("session_id", "user_id", "agent_id", "tenant")
_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "text"),
    ("model", "text"),
    ("provider", "text"),
    ("day", "date"),
    *((name, "text") for name in _ATTRIBUTES),
    ("calls", "bigint"),
    *((name, "bigint") for name in COUNTS),
    ("first_at", "timestamptz"),
    ("last_at", "timestamptz"),
)


def _upsert(table: str) -> str:
    """Add rows to the stored ones (sums), keeping the first value each attribute had."""
    names = ", ".join(n for n, _ in _COLUMNS)
    arrays = ", ".join(f"%b::{t}[]" for _, t in _COLUMNS)
    sums = ", ".join(f"{n} = t.{n} + EXCLUDED.{n}" for n in ("calls", *COUNTS))
    firsts = ", ".join(f"{n} = coalesce(t.{n}, EXCLUDED.{n})" for n in _ATTRIBUTES)
    return (
        f"INSERT INTO {table} AS t ({names}) SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT (run_id, model, provider, day) DO UPDATE SET {sums}, {firsts}, "
        "first_at = least(t.first_at, EXCLUDED.first_at), "
        "last_at = greatest(t.last_at, EXCLUDED.last_at)"
    )


class UsageProjection(PostgresProjection):
    """Folds usage events (and session deletions) into ``usage_rollup`` (rules: :mod:`.fold`)."""

    tables = TABLES
    applied_table = "usage_applied"

    def __init__(self, pool: Pool, settings: Settings, *, generation: int | None = None) -> None:
        super().__init__(
            pool, (settings.run_events, settings.session_events), generation=generation
        )
        self._settings = settings
        self._session_topic = settings.session_events

    def pinned(self, generation: int) -> UsageProjection:
        return UsageProjection(self._pool, self._settings, generation=generation)

    def remember(self, record: SourceRecord) -> bool:
        # Every event, not only usage: an id reused with another body is
        # refused by every consumer alike (runwire.contract.identity).
        return True

    async def load(
        self, ctx: FoldContext, records: Sequence[SourceRecord]
    ) -> Callable[[], Awaitable[Deleted]]:
        sessions = sessions_of(records, self._session_topic)
        if not sessions:

            async def nothing() -> Deleted:
                return {}

            return nothing
        await ctx.conn.execute(
            "SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT "
            "hashtextextended('runwire-usage-session/' || s, 0) AS h "
            "FROM unnest(%b::text[]) AS s ORDER BY h) AS locks",
            (sessions,),
        )
        cur = await ctx.conn.execute(
            f"SELECT session_id, tenant FROM {ctx.table('usage_deleted_sessions')} "
            "WHERE session_id = ANY(%b::text[])",
            (sessions,),
        )

        async def deleted() -> Deleted:
            out: Deleted = {}
            for session_id, tenant in await cur.fetchall():
                out.setdefault(session_id, set()).add(tenant)
            return out

        return deleted

    async def fold(self, ctx: FoldContext, records: Sequence[SourceRecord]) -> list[Rejection]:
        conn = ctx.conn
        rollups = ctx.table("usage_rollup")
        loaded: Deleted = ctx.loaded or {}
        deleted: Deleted = {sid: set(by) for sid, by in loaded.items()}
        outcome = fold_batch(records, deleted=deleted, session_topic=self._session_topic)
        if outcome.deleted:
            ids, tenants = await store_tombstones(
                conn, ctx.table("usage_deleted_sessions"), outcome.deleted
            )
            # The session's rows the deletion is not foreign to.
            await conn.execute(
                f"DELETE FROM {rollups} AS t USING unnest(%b::text[], %b::text[]) AS d(s, tenant) "
                f"WHERE t.session_id = d.s AND {reaches('t')}",
                (ids, tenants),
            )
        if outcome.rollups:
            rows = [outcome.rollups[k] for k in sorted(outcome.rollups)]
            await conn.execute(
                _upsert(rollups).encode(),
                [[getattr(r, name) for r in rows] for name, _ in _COLUMNS],
            )
        return outcome.rejections


@asynccontextmanager
async def open_usage(settings: Settings) -> AsyncIterator[Projection]:
    """The catalog opener: the projection on its own pool, its tables prepared."""
    from runwire.projections.runtime.pg import open_pool

    pool = await open_pool(settings, name="runwire-projector-usage")
    try:
        projection = UsageProjection(pool, settings)
        await projection.prepare()
        yield projection
    finally:
        await pool.close()
