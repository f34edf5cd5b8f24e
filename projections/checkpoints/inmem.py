"""The in-memory twin of the checkpoints projection and its reader: dicts, one process.

Applies checkpoint events with the same rules (:mod:`.fold`) and answers the
same queries as :class:`~runwire.projections.checkpoints.reader.Checkpoints`,
so code tested against it behaves the same on the stack. It holds one
owner's threads (one process, one tenant): the tenant part of a thread's
identity is the Postgres projection's. A re-applied event
(same id in the same thread, same body) changes nothing; the same id with
another body raises :class:`~runwire.errors.DecodeError`
(``conflicting_duplicate_event``) and changes nothing either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runwire.contract.events import Event
from runwire.contract.identity import StreamIds
from runwire.contract.routing import record_key
from runwire.projections.checkpoints.fold import (
    CheckpointRow,
    DeleteRuns,
    DeleteThread,
    Prune,
    Put,
    PutWrites,
    ValueRow,
    WriteRow,
    needed_values,
    op_of,
)

__all__ = ["InMemoryCheckpoints", "json_contains"]

_CheckpointKey = tuple[str, str, str]  # thread, namespace, checkpoint id
_ValueKey = tuple[str, str, str, str]  # thread, namespace, channel, version
_WriteKey = tuple[str, str, str, str, int]  # thread, namespace, checkpoint, task, idx


def json_contains(whole: Any, part: Any) -> bool:
    """Postgres ``jsonb @>``: objects by key, arrays by element, scalars by equal value and type."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            k in whole and json_contains(whole[k], v) for k, v in part.items()
        )
    if isinstance(part, list):
        return isinstance(whole, list) and all(
            any(json_contains(w, p) for w in whole) for p in part
        )
    if isinstance(whole, bool) or isinstance(part, bool):
        return type(whole) is type(part) and whole == part
    return not isinstance(whole, dict | list) and whole == part


class InMemoryCheckpoints:
    """The checkpoints read model on dicts (see the module docstring)."""

    def __init__(self) -> None:
        self._checkpoints: dict[_CheckpointKey, CheckpointRow] = {}
        self._values: dict[_ValueKey, ValueRow] = {}
        self._writes: dict[_WriteKey, WriteRow] = {}
        self._applied = StreamIds()

    def apply(self, event: Event) -> None:
        """Fold one event (raises what :func:`~.fold.op_of` raises for a bad one, and
        ``DecodeError`` for an applied id with another body)."""
        op = op_of(event)
        if not self._applied.admit(event, record_key(event)):
            return
        if isinstance(op, Put):
            c = op.checkpoint
            self._checkpoints[(c.thread_id, c.checkpoint_ns, c.checkpoint_id)] = c
            for v in op.values:
                self._values.setdefault((v.thread_id, v.checkpoint_ns, v.channel, v.version), v)
        elif isinstance(op, PutWrites):
            for w in op.writes:
                key = (w.thread_id, w.checkpoint_ns, w.checkpoint_id, w.task_id, w.idx)
                if w.last_wins or key not in self._writes:
                    self._writes[key] = w
        elif isinstance(op, DeleteThread) or (isinstance(op, Prune) and not op.keep_latest):
            self._drop_thread(op.thread_id)
        elif isinstance(op, DeleteRuns):
            gone = {
                k
                for k, c in self._checkpoints.items()
                if k[0] == op.thread_id and c.run_id in op.run_ids
            }
            self._drop_checkpoints(gone)
        else:
            self._keep_latest(op.thread_id)

    def _drop_thread(self, thread_id: str) -> None:
        self._checkpoints = {k: v for k, v in self._checkpoints.items() if k[0] != thread_id}
        self._values = {k: v for k, v in self._values.items() if k[0] != thread_id}
        self._writes = {k: v for k, v in self._writes.items() if k[0] != thread_id}

    def _drop_checkpoints(self, gone: set[_CheckpointKey]) -> None:
        for key in gone:
            del self._checkpoints[key]
        for wkey in [k for k in self._writes if k[:3] in gone]:
            del self._writes[wkey]

    def _keep_latest(self, thread_id: str) -> None:
        latest: dict[str, str] = {}
        for thread, ns, checkpoint_id in self._checkpoints:
            if thread == thread_id and checkpoint_id > latest.get(ns, ""):
                latest[ns] = checkpoint_id
        kept = {(thread_id, ns, cid) for ns, cid in latest.items()}
        self._drop_checkpoints(
            {k for k in self._checkpoints if k[0] == thread_id and k not in kept}
        )
        for wkey in [k for k in self._writes if k[0] == thread_id and k[:3] not in kept]:
            del self._writes[wkey]
        need = needed_values(
            [self._checkpoints[k] for k in kept],
            [v for k, v in self._values.items() if k[0] == thread_id],
        )
        for vkey in [k for k in self._values if k[0] == thread_id and k[1:] not in need]:
            del self._values[vkey]

    # -- the reader's queries --------------------------------------------------------

    async def get(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> CheckpointRow | None:
        if checkpoint_id is not None:
            return self._checkpoints.get((thread_id, checkpoint_ns, checkpoint_id))
        found = await self.find(thread_id, checkpoint_ns, limit=1)
        return found[0] if found else None

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
        rows = [
            c
            for (thread, ns, cid), c in self._checkpoints.items()
            if (thread_id is None or thread == thread_id)
            and (checkpoint_ns is None or ns == checkpoint_ns)
            and (checkpoint_id is None or cid == checkpoint_id)
            and (not filter or json_contains(c.metadata, filter))
            and (before is None or cid.encode() < before.encode())
        ]
        rows.sort(key=lambda c: (c.thread_id.encode(), c.checkpoint_ns.encode()))
        rows.sort(key=lambda c: c.checkpoint_id.encode(), reverse=True)
        return rows if limit is None else rows[:limit]

    async def values(
        self, thread_id: str, checkpoint_ns: str, wanted: Sequence[tuple[str, str]]
    ) -> list[ValueRow]:
        out: dict[tuple[str, str], ValueRow] = {}
        todo = list(wanted)
        while todo:
            channel, version = todo.pop()
            if (channel, version) in out:
                continue
            row = self._values.get((thread_id, checkpoint_ns, channel, version))
            if row is None:
                continue
            out[(channel, version)] = row
            if row.base is not None:
                todo.append((channel, row.base))
        return list(out.values())

    async def writes(
        self, thread_id: str, checkpoint_ns: str, checkpoint_ids: Sequence[str]
    ) -> dict[str, list[WriteRow]]:
        wanted = set(checkpoint_ids)
        out: dict[str, list[WriteRow]] = {}
        for (thread, ns, cid, _, _), w in self._writes.items():
            if thread == thread_id and ns == checkpoint_ns and cid in wanted:
                out.setdefault(cid, []).append(w)
        for rows in out.values():
            rows.sort(key=lambda w: (w.task_path.encode(), w.task_id.encode(), w.idx))
        return out

    async def thread_values(self, thread_id: str) -> list[ValueRow]:
        return [v for k, v in sorted(self._values.items()) if k[0] == thread_id]

    async def threads_of_runs(self, run_ids: Sequence[str]) -> list[str]:
        wanted = set(run_ids)
        return sorted({c.thread_id for c in self._checkpoints.values() if c.run_id in wanted})
