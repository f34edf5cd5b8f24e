"""The seam under the Memory API: where memory entries are written and read.

An entry is addressed by ``(scope, owner, key)`` - the record key of the
compacted memory topic. :class:`~runwire.memory.api.AsyncMemory` holds the
rules (input, isolation, tenant namespaces); a :class:`MemoryBackend` only
writes events and reads folded entries. Implementations:
:class:`~runwire.memory.log_backend.LogMemoryBackend` (memory topic +
Postgres memory projection) and the twin
:class:`~runwire.memory.inmem.InMemoryMemoryBackend`; the contract
suite in tests/contract/ runs against both.

Contract:
- ``write_memory(event)`` takes a ``memory_set``, ``memory_deleted`` or
  ``user_erased`` event (the last removes every ``user``-scope entry of its owner);
  on return it is durable and ``memory_entry`` / ``memory_entries`` show it
  (read-your-writes). Per address, the last write in the log wins.
- A ``session_deleted`` of session S removes every ``session``-scope entry
  owned by S, and later writes to them are ignored (erasure).
- ``memory_entries`` lists one owner's entries in key order, those whose key
  starts with ``prefix`` when given, at most ``limit``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from runwire.contract.events import Event, MemoryScope
from runwire.projections.memory.fold import MemoryEntry

__all__ = ["SCOPES", "MemoryBackend", "MemoryEntry"]

SCOPES: tuple[MemoryScope, ...] = ("session", "user", "agent", "global")


@runtime_checkable
class MemoryBackend(Protocol):
    """Where memory entries live; see the module contract."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def write_memory(self, event: Event) -> None:
        """Write a ``memory_set`` / ``memory_deleted``; visible to reads on return."""
        ...

    async def memory_entry(self, scope: MemoryScope, owner: str, key: str) -> MemoryEntry | None:
        """The entry at this address, or None."""
        ...

    async def memory_entries(
        self, scope: MemoryScope, owner: str, prefix: str | None = None, limit: int = 1000
    ) -> list[MemoryEntry]:
        """One owner's entries in key order (see the module contract)."""
        ...
