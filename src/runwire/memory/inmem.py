"""The in-memory twin of the memory backend: dicts, one process, for tests.

Keeps the :mod:`runwire.memory.protocol` contract exactly as the log-backed
one does (last write wins, deleted sessions take their session-scope entries
with them for good), so code tested against it behaves the same on the stack.
As in the memory store (:mod:`runwire.projections.memory.fold`), a session is
its tenant's (:func:`runwire.contract.session_tenant.foreign_to_session`): a
deletion takes the entries (and later writes) of its own tenant, or of none,
all of them when it names no tenant, never another tenant's.
"""

from __future__ import annotations

from runwire.contract.events import Event, MemoryDeleted, MemoryScope, MemorySet, UserErased
from runwire.contract.session_tenant import foreign_tenant
from runwire.errors import ContractError
from runwire.memory.protocol import MemoryEntry

__all__ = ["InMemoryMemoryBackend"]

_Address = tuple[str, str, str]


class InMemoryMemoryBackend:
    """A :class:`~runwire.memory.protocol.MemoryBackend` on dicts."""

    def __init__(self) -> None:
        self._entries: dict[_Address, MemoryEntry] = {}
        self._deleted_sessions: dict[str, set[str | None]] = {}
        """Deleted sessions -> the tenants of their deletions (None: one without a tenant)."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def write_memory(self, event: Event) -> None:
        p = event.payload
        if isinstance(p, MemorySet):
            if p.scope == "session" and self._reaches(p.owner, event.tenant):
                return
            self._entries[(p.scope, p.owner, p.key)] = MemoryEntry(
                scope=p.scope,
                owner=p.owner,
                key=p.key,
                value=p.value,
                updated_at=event.occurred_at,
                user_id=event.user_id,
                tenant=event.tenant,
            )
        elif isinstance(p, MemoryDeleted):
            self._entries.pop((p.scope, p.owner, p.key), None)
        elif isinstance(p, UserErased):
            for address in [a for a in self._entries if a[:2] == ("user", p.owner)]:
                del self._entries[address]
        else:
            raise ContractError(f"{event.type.value} is not a memory event")

    def forget_session(self, session_id: str, tenant: str | None = None) -> None:
        """Erase a deleted session's session-scope entries, for good: those ``tenant``'s
        deletion is not foreign to (every one when it is None)."""
        self._deleted_sessions.setdefault(session_id, set()).add(tenant)
        for address, entry in list(self._entries.items()):
            if (
                address[0] == "session"
                and address[1] == session_id
                and not foreign_tenant(tenant, entry.tenant)
            ):
                del self._entries[address]

    def _reaches(self, session_id: str, tenant: str | None) -> bool:
        """Whether a deletion of ``session_id`` reaches an entry written by ``tenant``."""
        return any(
            not foreign_tenant(by, tenant) for by in self._deleted_sessions.get(session_id, ())
        )

    async def memory_entry(self, scope: MemoryScope, owner: str, key: str) -> MemoryEntry | None:
        return self._entries.get((scope, owner, key))

    async def memory_entries(
        self, scope: MemoryScope, owner: str, prefix: str | None = None, limit: int = 1000
    ) -> list[MemoryEntry]:
        found = [
            e
            for (s, o, k), e in self._entries.items()
            if s == scope and o == owner and (prefix is None or k.startswith(prefix))
        ]
        found.sort(key=lambda e: e.key.encode())
        return found[:limit]
