"""The session-index projection: session events + run events -> ``session_index`` rows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from runwire.contract import jsonvalues
from runwire.log.records import SourceRecord
from runwire.projections.runtime.generations import TableSet
from runwire.projections.runtime.pg import Pool, upsert_rows, upsert_sql
from runwire.projections.runtime.pg_projection import FoldContext, PostgresProjection
from runwire.projections.runtime.protocol import Rejection
from runwire.projections.sessions.fold import SessionRow, fold_batch, remembered
from runwire.settings import Settings

NAME = "sessions"

TABLES = TableSet(
    projection=NAME,
    package="runwire.projections.migrations.sessions",
    tables=("session_index", "session_tombstones", "session_index_applied"),
    views=("session_index", "session_tombstones"),
)

COLUMNS: tuple[tuple[str, str], ...] = (
    ("session_id", "text"),
    ("user_id", "text"),
    ("tenant", "text"),
    ("metadata", "jsonb"),
    ("labels", "jsonb"),
    ("status", "text"),
    ("created_at", "timestamptz"),
    ("ended_at", "timestamptz"),
    ("cleared_at", "timestamptz"),
    ("last_activity_at", "timestamptz"),
    ("run_count", "int"),
    ("last_run_id", "text"),
    ("last_run_at", "timestamptz"),
    ("declared", "bool"),
    ("declared_at", "timestamptz"),
    ("declared_user_id", "text"),
    ("declared_tenant", "text"),
    ("first_seen_at", "timestamptz"),
    ("first_run_id", "text"),
    ("first_run_at", "timestamptz"),
    ("first_run_user_id", "text"),
    ("first_run_tenant", "text"),
    ("version", "bigint"),
    ("writer", "text"),
    ("writer_until", "timestamptz"),
    ("version_by", "text"),
    ("parent_session_id", "text"),
    ("fork", "jsonb"),
)
COLUMN_NAMES = ", ".join(name for name, _ in COLUMNS)
_JSON = {i for i, (_, t) in enumerate(COLUMNS) if t == "jsonb"}


def _to_db(row: SessionRow) -> list[Any]:
    values: list[Any] = [getattr(row, name) for name, _ in COLUMNS]
    for i in _JSON:
        if values[i] is not None:
            values[i] = jsonvalues.jsonb_text(values[i], COLUMNS[i][0])  # numbers exact
    return values


class SessionsProjection(PostgresProjection):
    """Folds the session-events and run-events topics into ``session_index`` (rules: :mod:`.fold`)."""

    tables = TABLES
    applied_table = "session_index_applied"

    def __init__(self, pool: Pool, settings: Settings, *, generation: int | None = None) -> None:
        super().__init__(
            pool, (settings.session_events, settings.run_events), generation=generation
        )
        self._settings = settings
        self._session_topic = settings.session_events
        self._upsert = upsert_sql("{table}", COLUMNS, "session_id")

    def pinned(self, generation: int) -> SessionsProjection:
        return SessionsProjection(self._pool, self._settings, generation=generation)

    def remember(self, record: SourceRecord) -> bool:
        return remembered(record, self._session_topic)

    async def load(
        self, ctx: FoldContext, records: Sequence[SourceRecord]
    ) -> Callable[[], Awaitable[tuple[dict[str, SessionRow], set[str]]]]:
        conn = ctx.conn
        session_ids = sorted({r.event.session_id for r in records if r.event.session_id})
        # Runs of one session lie on many partitions, which other instances may
        # own: serialise per session (in hash order, so no deadlock is possible).
        # Queued first, so the reads below see what a previous owner committed.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT "
            "hashtextextended('runwire-session/' || s, 0) AS h FROM unnest(%b::text[]) AS s "
            "ORDER BY h) AS locks",
            (session_ids,),
        )
        rows_cur = await conn.execute(
            f"SELECT {COLUMN_NAMES} FROM {ctx.table('session_index')} WHERE session_id = ANY(%b)",
            (session_ids,),
        )
        tombstones_cur = await conn.execute(
            f"SELECT session_id FROM {ctx.table('session_tombstones')} WHERE session_id = ANY(%b)",
            (session_ids,),
        )

        async def state() -> tuple[dict[str, SessionRow], set[str]]:
            rows = {row[0]: SessionRow(*row) for row in await rows_cur.fetchall()}
            return rows, {row[0] for row in await tombstones_cur.fetchall()}

        return state

    async def fold(self, ctx: FoldContext, records: Sequence[SourceRecord]) -> list[Rejection]:
        conn = ctx.conn
        table = ctx.table("session_index")
        tombstone_table = ctx.table("session_tombstones")
        rows, tombstoned = ctx.loaded
        outcome = fold_batch(rows, tombstoned, records, self._session_topic)
        changed, deleted = outcome.changed, outcome.deleted
        if changed:
            values = [_to_db(rows[sid]) for sid in sorted(changed)]
            await conn.execute(
                self._upsert.replace("{table}", table).encode(),
                upsert_rows(values, COLUMNS),
            )
        if deleted:
            ids = sorted(deleted)
            await conn.execute(f"DELETE FROM {table} WHERE session_id = ANY(%b)", (ids,))
            await conn.execute(
                f"INSERT INTO {tombstone_table} (session_id, deleted_at, event_id, tenant) "
                "SELECT * FROM unnest(%b::text[], %b::timestamptz[], %b::uuid[], %b::text[]) "
                "ON CONFLICT DO NOTHING",
                (ids, *([deleted[s][i] for s in ids] for i in range(3))),
            )
        return outcome.rejections
