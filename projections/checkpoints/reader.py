"""Reading the checkpoints projection: ``Checkpoints.get / find / values / writes / wait_for``.

Contract (the twin, :mod:`.inmem`, answers alike):
- ``get(thread, ns, id)`` is that checkpoint, or with ``id=None`` the
  thread's newest in the namespace (checkpoint ids sort in time order).
- ``find`` is newest first: one thread (and namespace) or all threads,
  metadata containing ``filter`` (JSON containment), ids before ``before``,
  at most ``limit``.
- ``values(thread, ns, wanted)`` is the stored rows of the ``(channel,
  version)`` pairs asked for and, for deltas, of their bases down to a whole
  value: everything needed to rebuild the values, in one read.
- ``writes(thread, ns, ids)`` is the pending writes of those checkpoints,
  each checkpoint's in ``(task_path, task_id, idx)`` order (LangGraph's
  ``writes_sort_key``).
- A thread is ``(tenant, thread id)``: every query reads the reader's
  tenant's threads only (row-level security does so too), and a reader
  without one (``NO_TENANT``: a shared process, or ``ADMIN``) the threads
  written without a tenant; another tenant's thread of the same id is not there. For tenant
  ``T``'s threads, ``for_tenant(T)``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from runwire.projections.checkpoints.fold import CheckpointRow, ValueRow, WriteRow
from runwire.projections.checkpoints.projection import CheckpointsProjection
from runwire.projections.runtime.pg import store_errors
from runwire.projections.runtime.pg_projection import PostgresReader
from runwire.projections.runtime.tenancy import Admin, NoTenant

_CHECKPOINT = (
    "SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata "
    "FROM checkpoint_index"
)
_STORE = "the checkpoints projection (Postgres)"


def _checkpoint(row: tuple[Any, ...]) -> CheckpointRow:
    thread_id, ns, checkpoint_id, parent, checkpoint, metadata = row
    return CheckpointRow(thread_id, ns, checkpoint_id, parent, checkpoint, metadata)


class Checkpoints(PostgresReader):
    """Read API over the checkpoints tables (see :class:`PostgresReader` for opening and waiting)."""

    projection_class = CheckpointsProjection
    store = _STORE

    def _owner(self, alias: str = "") -> tuple[str, list[Any]]:
        """The condition naming this reader's tenant's rows, and its parameters."""
        if isinstance(self.tenant, Admin | NoTenant):
            return f"{alias}tenant IS NULL", []
        return f"{alias}tenant = %s", [self.tenant]

    async def get(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> CheckpointRow | None:
        owner, params = self._owner()
        query = f"{_CHECKPOINT} WHERE {owner} AND thread_id = %s AND checkpoint_ns = %s"
        params += [thread_id, checkpoint_ns]
        if checkpoint_id is not None:
            query += " AND checkpoint_id = %s"
            params.append(checkpoint_id)
        else:
            query += " ORDER BY checkpoint_id DESC LIMIT 1"
        with store_errors(_STORE):
            async with self._connection() as conn:
                cur = await conn.execute(query.encode(), params)
                row = await cur.fetchone()
        return None if row is None else _checkpoint(row)

    async def find(
        self,
        thread_id: str | None = None,
        checkpoint_ns: str | None = None,
        *,
        checkpoint_id: str | None = None,
        filter: dict[str, Any] | None = None,
        before: str | None = None,
        limit: int | None = None,
    ) -> list[CheckpointRow]:
        owner, params = self._owner()
        wheres: list[str] = [owner]
        for column, value in (
            ("thread_id", thread_id),
            ("checkpoint_ns", checkpoint_ns),
            ("checkpoint_id", checkpoint_id),
        ):
            if value is not None:
                wheres.append(f"{column} = %s")
                params.append(value)
        if filter:
            wheres.append("metadata @> %s::jsonb")
            params.append(json.dumps(filter, separators=(",", ":")))
        if before is not None:
            wheres.append("checkpoint_id < %s")
            params.append(before)
        query = _CHECKPOINT + " WHERE " + " AND ".join(wheres)
        query += " ORDER BY checkpoint_id DESC, thread_id, checkpoint_ns"
        if limit is not None:
            query += " LIMIT %s"
            params.append(limit)
        with store_errors(_STORE):
            async with self._connection() as conn:
                cur = await conn.execute(query.encode(), params)
                return [_checkpoint(row) for row in await cur.fetchall()]

    async def values(
        self, thread_id: str, checkpoint_ns: str, wanted: Sequence[tuple[str, str]]
    ) -> list[ValueRow]:
        if not wanted:
            return []
        owner, tenant = self._owner("v.")
        owner = owner.replace("%s", "%(tenant)s")
        query = (
            "WITH RECURSIVE chain AS ("
            "SELECT v.* FROM checkpoint_values v "
            "JOIN unnest(%(channels)s::text[], %(versions)s::text[]) AS w(channel, version) "
            "ON v.channel = w.channel AND v.version = w.version "
            f"WHERE {owner} AND v.thread_id = %(thread)s AND v.checkpoint_ns = %(ns)s "
            "UNION ALL SELECT v.* FROM checkpoint_values v JOIN chain c "
            f"ON {owner} AND v.thread_id = c.thread_id AND v.checkpoint_ns = c.checkpoint_ns "
            "AND v.channel = c.channel AND v.version = c.base"
            ") SELECT DISTINCT ON (channel, version) channel, version, type, data, base, keep, "
            "items FROM chain"
        )
        params = {
            "tenant": tenant[0] if tenant else None,
            "thread": thread_id,
            "ns": checkpoint_ns,
            "channels": [c for c, _ in wanted],
            "versions": [v for _, v in wanted],
        }
        with store_errors(_STORE):
            async with self._connection() as conn:
                cur = await conn.execute(query.encode(), params)
                rows = await cur.fetchall()
        return [
            ValueRow(
                thread_id=thread_id,
                checkpoint_ns=checkpoint_ns,
                channel=channel,
                version=version,
                type=kind,
                data=bytes(data),
                base=base,
                keep=keep,
                items=tuple((t, n) for t, n in items) if items is not None else (),
            )
            for channel, version, kind, data, base, keep, items in rows
        ]

    async def writes(
        self, thread_id: str, checkpoint_ns: str, checkpoint_ids: Sequence[str]
    ) -> dict[str, list[WriteRow]]:
        if not checkpoint_ids:
            return {}
        owner, params = self._owner()
        query = (
            "SELECT checkpoint_id, task_id, task_path, idx, channel, type, data "
            f"FROM checkpoint_pending_writes WHERE {owner} AND thread_id = %s "
            "AND checkpoint_ns = %s AND checkpoint_id = ANY(%s) "
            "ORDER BY checkpoint_id, task_path, task_id, idx"
        )
        out: dict[str, list[WriteRow]] = {}
        with store_errors(_STORE):
            async with self._connection() as conn:
                cur = await conn.execute(
                    query.encode(), [*params, thread_id, checkpoint_ns, list(checkpoint_ids)]
                )
                rows = await cur.fetchall()
        for checkpoint_id, task_id, task_path, idx, channel, kind, data in rows:
            out.setdefault(checkpoint_id, []).append(
                WriteRow(
                    thread_id,
                    checkpoint_ns,
                    checkpoint_id,
                    task_id,
                    task_path,
                    idx,
                    channel,
                    kind,
                    bytes(data),
                )
            )
        return out

    async def thread_values(self, thread_id: str) -> list[ValueRow]:
        """Every value row of a thread (what a copy of the thread carries over)."""
        owner, params = self._owner()
        with store_errors(_STORE):
            async with self._connection() as conn:
                cur = await conn.execute(
                    "SELECT checkpoint_ns, channel, version, type, data, base, keep, items "
                    f"FROM checkpoint_values WHERE {owner} AND thread_id = %s "
                    "ORDER BY checkpoint_ns, channel, version".encode(),
                    [*params, thread_id],
                )
                rows = await cur.fetchall()
        return [
            ValueRow(
                thread_id,
                ns,
                channel,
                version,
                kind,
                bytes(data),
                base,
                keep,
                tuple((t, n) for t, n in items) if items is not None else (),
            )
            for ns, channel, version, kind, data, base, keep, items in rows
        ]

    async def threads_of_runs(self, run_ids: Sequence[str]) -> list[str]:
        """The threads holding checkpoints of these runs."""
        if not run_ids:
            return []
        owner, params = self._owner()
        with store_errors(_STORE):
            async with self._connection() as conn:
                cur = await conn.execute(
                    f"SELECT DISTINCT thread_id FROM checkpoint_index WHERE {owner} "
                    "AND run_id = ANY(%s) ORDER BY thread_id".encode(),
                    [*params, list(run_ids)],
                )
                return [row[0] for row in await cur.fetchall()]
