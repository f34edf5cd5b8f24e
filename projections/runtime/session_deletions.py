"""Session deletions as the Postgres stores that keep a session's rows keep them.

Contract (the run-status, usage and memory stores: their rows are a
session's, each row its own tenant's, so a deletion is judged per row by
:func:`runwire.contract.session_tenant.foreign_tenant`):
- :func:`store_tombstones` writes each deletion once, as (session, deleting
  tenant), into ``table`` (``session_id, deleted_at, event_id, tenant``),
  and returns the sessions and tenants in one order for the row deletion
  that follows (:func:`reaches`).
- :func:`reaches` is ``foreign_tenant``'s rule in SQL: the deletion row
  ``d`` (``d.tenant``, NULL for a deletion without a tenant) reaches the
  stored row ``alias`` (its tenant, NULL for a row without one).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from runwire.projections.runtime.pg import Conn

__all__ = ["Deletions", "reaches", "store_tombstones"]

Deletions = Mapping[tuple[str, str | None], tuple[datetime, str]]
"""(session id, the deleting tenant) -> (when, the deletion's event id)."""


def reaches(alias: str) -> str:
    """SQL: the deletion ``d`` is not foreign to the row ``alias`` (see the module doc)."""
    return f"(d.tenant IS NULL OR {alias}.tenant IS NULL OR {alias}.tenant = d.tenant)"


async def store_tombstones(
    conn: Conn, table: str, deleted: Deletions
) -> tuple[list[str], list[str | None]]:
    """Record ``deleted`` in ``table`` (a repeat is a no-op); the sessions and the
    deleting tenants, in one order (sorted: the order rows are locked in)."""
    keys = sorted(deleted, key=lambda k: (k[0], k[1] is not None, k[1] or ""))
    ids, tenants = [sid for sid, _ in keys], [tenant for _, tenant in keys]
    await conn.execute(
        f"INSERT INTO {table} (session_id, deleted_at, event_id, tenant) "
        "SELECT * FROM unnest(%b::text[], %b::timestamptz[], %b::uuid[], %b::text[]) "
        "ON CONFLICT DO NOTHING",
        (ids, [deleted[k][0] for k in keys], [deleted[k][1] for k in keys], tenants),
    )
    return ids, tenants
