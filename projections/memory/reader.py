"""Reading the memory projection: ``MemoryEntries.get / list / wait_for``.

Values are read as ``jsonb`` text and parsed by
:func:`runwire.contract.jsonvalues.loads`, so their numbers come back exact
(psycopg's own loader would turn them into floats).
"""

from __future__ import annotations

from typing import Any

from runwire.contract import jsonvalues
from runwire.contract.events import MemoryScope
from runwire.projections.memory.fold import MemoryEntry
from runwire.projections.memory.projection import COLUMNS, MemoryProjection
from runwire.projections.runtime.pg_projection import PostgresReader

# jsonb as its text: parsed here with exact numbers.
_SELECT = "SELECT {} FROM memory_entries".format(
    ", ".join(f"{n}::text" if t == "jsonb" else n for n, t in COLUMNS)
)


def _entry(row: tuple[Any, ...]) -> MemoryEntry:
    scope, owner, key, value, user_id, tenant, updated_at, _ = row
    return MemoryEntry(scope, owner, key, jsonvalues.loads(value), updated_at, user_id, tenant)


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


class MemoryEntries(PostgresReader):
    """Read API over ``memory_entries`` (see :class:`PostgresReader` for opening and waiting)."""

    projection_class = MemoryProjection

    async def get(self, scope: MemoryScope, owner: str, key: str) -> MemoryEntry | None:
        """The entry at this address, or None."""
        async with self._connection() as conn:
            cur = await conn.execute(
                f"{_SELECT} WHERE scope = %s AND owner = %s AND key = %s", (scope, owner, key)
            )
            row = await cur.fetchone()
        return None if row is None else _entry(row)

    async def list(
        self, scope: MemoryScope, owner: str, prefix: str | None = None, limit: int = 1000
    ) -> list[MemoryEntry]:
        """One owner's entries in key (byte) order; only keys starting with ``prefix`` when given."""
        query = f"{_SELECT} WHERE scope = %s AND owner = %s"
        params: list[Any] = [scope, owner]
        if prefix:
            query += " AND key LIKE %s ESCAPE '\\'"
            params.append(_like_prefix(prefix))
        query += " ORDER BY key LIMIT %s"
        params.append(limit)
        async with self._connection() as conn:
            cur = await conn.execute(query.encode(), params)
            return [_entry(row) for row in await cur.fetchall()]
