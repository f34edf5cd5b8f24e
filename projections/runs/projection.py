"""The run-status projection: run events -> one ``run_status`` row per run.

It also reads the session-events topic for ``session_deleted`` (rules:
:mod:`.fold`): a deleted session's rows are removed (those of the deleting
tenant, or all when it names none), the session is kept in
``run_status_deleted_sessions`` (with that tenant) and its runs in ``run_status_erased_runs``
(with the rows and positions, in one transaction), so neither a late run
event, a replay nor a rebuild brings them back.

Concurrency: a session's runs lie on many partitions and its deletion on
another topic, which other instances may own. Writers take a transaction
advisory lock per session (the sessions of the batch's run events and
deletions, in hash order) before reading. A run whose stored row names a
session that its events in the batch do not (they name none, or another) is
not covered by those locks: its row is locked (``FOR NO KEY UPDATE``, in
``run_id`` order) while a deletion locks the rows it removes (``FOR UPDATE``,
in the same order). So a run event applied beside a concurrent deletion
either commits first (and the deletion removes its row) or reads afterwards
(and finds the run erased), even when the event carries no session id; the
common case (every event names its run's session) takes no row lock.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from runwire.log.records import SourceRecord
from runwire.projections.runs.fold import Erasure, RunRow, fold_batch
from runwire.projections.runtime.generations import TableSet
from runwire.projections.runtime.pg import Pool, upsert_rows, upsert_sql
from runwire.projections.runtime.pg_projection import FoldContext, PostgresProjection
from runwire.projections.runtime.protocol import Rejection
from runwire.projections.runtime.rules import deleted_session
from runwire.projections.runtime.session_deletions import reaches, store_tombstones
from runwire.settings import Settings

NAME = "runs"

TABLES = TableSet(
    projection=NAME,
    package="runwire.projections.migrations.runs",
    tables=(
        "run_status",
        "run_status_applied",
        "run_status_deleted_sessions",
        "run_status_erased_runs",
    ),
    views=("run_status",),
)

COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "text"),
    ("session_id", "text"),
    ("agent_id", "text"),
    ("turn_id", "text"),
    ("user_id", "text"),
    ("tenant", "text"),
    ("parent_run_id", "text"),
    ("status", "text"),
    ("phase", "text"),
    ("status_reason", "text"),
    ("labels", "jsonb"),
    ("started_at", "timestamptz"),
    ("updated_at", "timestamptz"),
    ("ended_at", "timestamptz"),
    ("message_count", "int"),
    ("tool_call_count", "int"),
    ("tool_error_count", "int"),
    ("input_tokens", "bigint"),
    ("output_tokens", "bigint"),
    ("cache_read_tokens", "bigint"),
    ("cache_write_tokens", "bigint"),
    ("last_error", "jsonb"),
    ("pending_tool_uses", "jsonb"),
    ("event_count", "int"),
    ("log_partition", "int"),
    ("first_offset", "bigint"),
    ("last_offset", "bigint"),
    ("awaiting_approval", "jsonb"),
)
COLUMN_NAMES = ", ".join(name for name, _ in COLUMNS)
_JSON = {i for i, (_, t) in enumerate(COLUMNS) if t == "jsonb"}


def _to_db(row: RunRow) -> list[Any]:
    values: list[Any] = [getattr(row, name) for name, _ in COLUMNS]
    for i in _JSON:
        if values[i] is not None:
            values[i] = json.dumps(values[i], separators=(",", ":"), ensure_ascii=False)
    return values


class RunsProjection(PostgresProjection):
    """Folds the run-events topic (and session deletions) into ``run_status`` (rules: :mod:`.fold`)."""

    tables = TABLES
    applied_table = "run_status_applied"

    def __init__(self, pool: Pool, settings: Settings, *, generation: int | None = None) -> None:
        super().__init__(
            pool, (settings.run_events, settings.session_events), generation=generation
        )
        self._settings = settings
        self._session_topic = settings.session_events
        self._upsert = upsert_sql("{table}", COLUMNS, "run_id")

    def pinned(self, generation: int) -> RunsProjection:
        return RunsProjection(self._pool, self._settings, generation=generation)

    def remember(self, record: SourceRecord) -> bool:
        # Every run event moves a count, a status or an offset. Session events
        # change nothing twice, but remembering them keeps the counts honest
        # (a re-published one is a duplicate, not applied again); they are few.
        return True

    def _locked_sessions(self, records: Sequence[SourceRecord]) -> list[str]:
        """Sessions whose runs the batch may change: of its run events and its deletions."""
        topic = self._session_topic
        return sorted(
            {
                r.event.session_id
                for r in records
                if r.event.session_id and (r.topic != topic or deleted_session(r) is not None)
            }
        )

    async def load(
        self, ctx: FoldContext, records: Sequence[SourceRecord]
    ) -> Callable[[], Awaitable[tuple[dict[str, RunRow], Erasure]]]:
        conn = ctx.conn
        table = ctx.table("run_status")
        topic = self._session_topic
        # Each run of the batch -> the one session all its events name (None:
        # some name none, or they differ).
        named: dict[str, str | None] = {}
        for r in records:
            run_id = r.event.run_id
            if r.topic != topic and run_id:
                sid = r.event.session_id
                named[run_id] = sid if named.get(run_id, sid) == sid else None
        run_ids = sorted(named)
        session_ids = self._locked_sessions(records)
        # Queued first, so the reads below see what a previous holder committed
        # (see the module docstring). A run whose row names a session its events
        # do not (so whose session lock this batch does not hold) is row-locked:
        # a concurrent deletion of that session removes it first or after.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT "
            "hashtextextended('runwire-runs-session/' || s, 0) AS h "
            "FROM unnest(%b::text[]) AS s ORDER BY h) AS locks",
            (session_ids,),
        )
        await conn.execute(
            f"SELECT t.run_id FROM {table} AS t "
            "JOIN unnest(%b::text[], %b::text[]) AS u(r, s) ON t.run_id = u.r "
            "WHERE t.session_id IS DISTINCT FROM u.s ORDER BY t.run_id FOR NO KEY UPDATE OF t",
            (run_ids, [named[r] for r in run_ids]),
        )
        rows_cur = await conn.execute(
            f"SELECT {COLUMN_NAMES} FROM {table} WHERE run_id = ANY(%b)", (run_ids,)
        )
        # Deleted sessions (by tenant) and erased runs in one statement (one fewer per batch).
        erased_cur = await conn.execute(
            f"SELECT true, session_id, tenant FROM {ctx.table('run_status_deleted_sessions')} "
            "WHERE session_id = ANY(%b) UNION ALL "
            f"SELECT false, run_id, NULL FROM {ctx.table('run_status_erased_runs')} "
            "WHERE run_id = ANY(%b)",
            (session_ids, run_ids),
        )

        async def state() -> tuple[dict[str, RunRow], Erasure]:
            rows = {row[0]: RunRow(*row) for row in await rows_cur.fetchall()}
            erasure = Erasure()
            for is_session, key, tenant in await erased_cur.fetchall():
                if is_session:
                    erasure.sessions.setdefault(key, set()).add(tenant)
                else:
                    erasure.runs.add(key)
            return rows, erasure

        return state

    async def fold(self, ctx: FoldContext, records: Sequence[SourceRecord]) -> list[Rejection]:
        conn = ctx.conn
        table = ctx.table("run_status")
        erased_table = ctx.table("run_status_erased_runs")
        rows, erasure = ctx.loaded
        outcome = fold_batch(rows, records, erasure=erasure, session_topic=self._session_topic)
        if outcome.changed:
            values = [_to_db(rows[run_id]) for run_id in sorted(outcome.changed)]
            await conn.execute(
                self._upsert.replace("{table}", table).encode(),
                upsert_rows(values, COLUMNS),
            )
        if outcome.erased:
            # Runs the fold erased: rows it loaded (under its locks) or never stored.
            ids = sorted(outcome.erased)
            await conn.execute(f"DELETE FROM {table} WHERE run_id = ANY(%b)", (ids,))
            await conn.execute(
                f"INSERT INTO {erased_table} (run_id, session_id) "
                "SELECT * FROM unnest(%b::text[], %b::text[]) ON CONFLICT DO NOTHING",
                (ids, [outcome.erased[r] for r in ids]),
            )
        if outcome.deleted:
            ids, tenants = await store_tombstones(
                conn, ctx.table("run_status_deleted_sessions"), outcome.deleted
            )
            # Every stored run of these sessions the deletion is not foreign to,
            # loaded by this batch or not.
            await conn.execute(
                f"WITH gone AS (DELETE FROM {table} WHERE run_id IN ("
                f"SELECT t.run_id FROM {table} AS t "
                "JOIN unnest(%b::text[], %b::text[]) AS d(s, tenant) ON t.session_id = d.s "
                f"AND {reaches('t')} "
                "ORDER BY t.run_id FOR UPDATE OF t) RETURNING run_id, session_id) "
                f"INSERT INTO {erased_table} (run_id, session_id) "
                "SELECT run_id, session_id FROM gone ON CONFLICT DO NOTHING",
                (ids, tenants),
            )
        return outcome.rejections
