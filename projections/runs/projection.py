"""The run-status projection: run events -> one ``run_status`` row per run."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from runwire.projections.runs.fold import RunRow, fold_batch
from runwire.projections.runtime.generations import TableSet
from runwire.projections.runtime.pg import Pool, column_arrays, upsert_sql
from runwire.projections.runtime.pg_projection import FoldContext, PostgresProjection
from runwire.projections.runtime.protocol import Rejection, SourceRecord
from runwire.settings import Settings

NAME = "runs"

TABLES = TableSet(
    projection=NAME,
    package="runwire.projections.migrations.runs",
    tables=("run_status", "run_status_applied"),
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
    """Folds the run-events topic into ``run_status`` (rules: :mod:`.fold`)."""

    tables = TABLES
    applied_table = "run_status_applied"

    def __init__(self, pool: Pool, settings: Settings, *, generation: int | None = None) -> None:
        super().__init__(pool, (settings.run_events,), generation=generation)
        self._settings = settings
        self._upsert = upsert_sql("{table}", COLUMNS, "run_id")

    def pinned(self, generation: int) -> RunsProjection:
        return RunsProjection(self._pool, self._settings, generation=generation)

    def remember(self, record: SourceRecord) -> bool:
        return True  # every run event moves a count, a status or an offset

    async def load(
        self, ctx: FoldContext, records: Sequence[SourceRecord]
    ) -> Callable[[], Awaitable[dict[str, RunRow]]]:
        run_ids = sorted({r.event.run_id for r in records if r.event.run_id})
        cur = await ctx.conn.execute(
            f"SELECT {COLUMN_NAMES} FROM {ctx.table('run_status')} WHERE run_id = ANY(%b)",
            (run_ids,),
        )

        async def rows() -> dict[str, RunRow]:
            return {row[0]: RunRow(*row) for row in await cur.fetchall()}

        return rows

    async def fold(self, ctx: FoldContext, records: Sequence[SourceRecord]) -> list[Rejection]:
        rows: dict[str, RunRow] = ctx.loaded
        changed, rejections = fold_batch(rows, records)
        if changed:
            values = [_to_db(rows[run_id]) for run_id in sorted(changed)]
            await ctx.conn.execute(
                self._upsert.replace("{table}", ctx.table("run_status")).encode(),
                column_arrays(values, len(COLUMNS)),
            )
        return rejections
