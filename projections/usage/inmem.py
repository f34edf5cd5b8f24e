"""The usage projection kept in memory (the twin of :class:`UsageProjection` and its reader)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from runwire.contract.session_tenant import foreign_tenant
from runwire.log.records import SourceRecord
from runwire.projections.runtime.inmem import InMemoryProjection
from runwire.projections.runtime.protocol import Rejection
from runwire.projections.usage.fold import COUNTS, Deleted, Rollup, RollupKey, fold_batch
from runwire.projections.usage.projection import NAME
from runwire.projections.usage.reader import (
    COLUMN,
    Dimension,
    Tokens,
    UsageGroup,
    assemble,
    check_query,
)


@dataclass
class UsageState:
    """The rows, and the deleted sessions (the twin of the two tables)."""

    rows: dict[RollupKey, Rollup] = field(default_factory=dict)
    deleted: dict[tuple[str, str | None], str] = field(default_factory=dict)
    """(session id, the deleting tenant; None: a deletion without one) -> the event id
    that deleted it (one tombstone per session and deleting tenant)."""


class InMemoryUsage(InMemoryProjection[UsageState]):
    """Reads ``run_topic`` and ``session_topic`` (for session deletions); also a reader."""

    def __init__(self, run_topic: str, session_topic: str) -> None:
        super().__init__(NAME, (run_topic, session_topic), UsageState())
        self._session_topic = session_topic

    def remember(self, record: SourceRecord) -> bool:
        # Every event, not only usage: an id reused with another body is
        # refused by every consumer alike (runwire.contract.identity).
        return True

    def fold(self, state: UsageState, records: Sequence[SourceRecord]) -> list[Rejection]:
        deleted: Deleted = {}
        for sid, by in state.deleted:
            deleted.setdefault(sid, set()).add(by)
        outcome = fold_batch(records, deleted=deleted, session_topic=self._session_topic)
        for (sid, by), (_, event_id) in outcome.deleted.items():
            state.deleted.setdefault((sid, by), event_id)
            # The rows the deletion is not foreign to (runwire.contract.session_tenant).
            for key in [
                k
                for k, r in state.rows.items()
                if r.session_id == sid and not foreign_tenant(by, r.tenant)
            ]:
                del state.rows[key]
        for key, part in outcome.rollups.items():
            row = state.rows.get(key)
            if row is None:
                state.rows[key] = part
            else:
                row.add(part)
        return outcome.rejections

    async def summary(
        self,
        *,
        by: Dimension,
        since: date | None = None,
        until: date | None = None,
        user_id: str | None = None,
        tenant: str | None = None,
        limit: int = 100,
        scoped: bool = False,
    ) -> list[UsageGroup]:
        """:meth:`UsageStore.summary <runwire.projections.usage.reader.UsageStore.summary>`."""
        check_query(by, limit)
        parts: dict[tuple[str | None, str, str], Tokens] = {}
        for row in self.state.rows.values():
            if since is not None and row.day < since:
                continue
            if until is not None and row.day >= until:
                continue
            if user_id is not None and row.user_id != user_id:
                continue
            if (tenant is not None or scoped) and row.tenant != tenant:
                continue
            value = getattr(row, COLUMN[by])
            key = None if value is None else str(value)
            tokens = Tokens(row.calls, *(getattr(row, n) for n in COUNTS))
            slot = (key, row.model, row.provider)
            parts[slot] = parts[slot] + tokens if slot in parts else tokens
        return assemble(by, [(k, m, p, t) for (k, m, p), t in parts.items()], limit)
