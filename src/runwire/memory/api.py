"""The Memory API: long-lived entries scoped to a session, a user, an agent, or global.

Contract of :class:`AsyncMemory` (one caller: ``user_id`` and ``tenant``):
- ``store_memory(key, value, scope, owner)`` / ``get_memory`` /
  ``delete_memory`` / ``list_memory(scope, owner, prefix)``. Writes are
  ``memory_set`` events on the compacted memory topic keyed by
  ``[scope, owner, key]``; a delete is a tombstone. Every write is visible to
  the next read on return (read-your-writes).
- Owners: ``user`` defaults to the caller's user; ``session`` and ``agent``
  need one (a :class:`~runwire.sessions.api.AsyncSession` passes its own id);
  ``global`` defaults to ``"global"``.
- Isolation: a ``user`` entry is the caller's own or does not exist; a
  ``session`` entry belongs to a session of the caller (checked in the session
  index) or does not exist. Another user's entry is "not found": ``None`` /
  the default from ``get_memory``, absent from ``list_memory``, and
  :class:`~runwire.errors.NotFoundError` on a write or a delete.
- Tenants: a caller with a tenant addresses ``user``, ``agent`` and
  ``global`` entries inside it: on the topic their owner is
  ``<tenant>::<owner>``, so no name reaches across tenants: owners holding
  ``::`` and tenants holding ``::`` or ending in ``:`` are refused
  (``InputError``), since their address could be another tenant's
  (:func:`~runwire.contract.sealing.protocol.user_subject`).
- Bad input (unknown scope, empty or oversize key, a value that is not JSON)
  is an :class:`~runwire.sessions.errors.InputError` naming the field, raised
  before anything is written.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

from runwire.contract.events import Event, MemoryDeleted, MemoryScope, MemorySet
from runwire.contract.sealing.protocol import user_subject
from runwire.errors import NotFoundError
from runwire.memory.checks import (
    Caller,
    InputError,
    OwnedSession,
    check_key,
    of_process,
    owns,
    require_stored_json,
)
from runwire.memory.protocol import SCOPES, MemoryBackend, MemoryEntry

if TYPE_CHECKING:
    from runwire.settings import Settings

__all__ = ["PRODUCER", "AsyncMemory", "ServiceMemory", "SessionDirectory"]

PRODUCER = "runwire-memory"
TENANT_SEPARATOR = "::"
GLOBAL_OWNER = "global"


class SessionDirectory(Protocol):
    """Who owns a session (the session backend): for ``session``-scope checks."""

    async def describe(self, session_id: str) -> OwnedSession | None: ...


class AsyncMemory:
    """Memory for one caller; see the module contract.

    ``backend`` defaults to the log-backed one built from ``settings`` (then
    closed by :meth:`stop`); ``sessions`` answers ``session``-scope ownership
    and defaults to the backend when it is also a session backend.
    """

    def __init__(
        self,
        *,
        user_id: str | None = None,
        tenant: str | None = None,
        settings: Settings | None = None,
        backend: MemoryBackend | None = None,
        sessions: SessionDirectory | None = None,
    ) -> None:
        if tenant is not None:
            if not tenant:
                raise InputError("tenant", "must be non-empty")
            user_subject("-", tenant)  # a tenant no owner name could hold
        self.caller = Caller(user_id=user_id, tenant=tenant)
        self._settings = settings
        self._backend = backend
        self._own_backend = backend is None
        self._sessions = sessions
        self._started = False

    @property
    def backend(self) -> MemoryBackend:
        if self._backend is None:
            from runwire.memory.log_backend import LogMemoryBackend
            from runwire.settings import Settings

            self._backend = LogMemoryBackend(self._settings or Settings())
        return self._backend

    async def start(self) -> None:
        if not self._started:
            self.caller = of_process(self.caller, self.backend)
            await self.backend.start()
            self._started = True

    async def stop(self) -> None:
        """Close the backend if this object built it; idempotent."""
        if self._started and self._own_backend:
            await self.backend.stop()
        self._started = False

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- addressing ----------------------------------------------------------------

    def _directory(self) -> SessionDirectory:
        if self._sessions is not None:
            return self._sessions
        backend = self.backend
        if hasattr(backend, "describe"):
            return backend  # type: ignore[return-value]
        raise InputError(
            "scope", "session-scoped memory needs a session backend (pass sessions=...)"
        )

    async def _owner(self, scope: Any, owner: str | None) -> tuple[MemoryScope, str] | None:
        """The (scope, owner on the topic), or None when the owner is not the caller's."""
        if scope not in SCOPES:
            raise InputError("scope", f"unknown scope {scope!r} (one of {', '.join(SCOPES)})")
        if owner is not None and (not isinstance(owner, str) or not owner):
            raise InputError("owner", "a non-empty string")
        caller = self.caller
        if scope == "session":
            if owner is None:
                raise InputError("owner", "session-scoped memory needs the session id")
            return (
                ("session", owner)
                if owns(caller, await self._directory().describe(owner))
                else None
            )
        if scope == "user":
            if caller.user_id is None:
                raise InputError("owner", "user-scoped memory needs the caller's user_id")
            if owner is not None and owner != caller.user_id:
                return None
            owner = caller.user_id
        elif scope == "agent":
            if owner is None:
                raise InputError("owner", "agent-scoped memory needs the agent id")
        else:
            owner = owner or GLOBAL_OWNER
        # One rule for every tenant's owner name, the key store's (no two pairs share one).
        return scope, user_subject(owner, caller.tenant, "owner")

    def _visible(self, entry: MemoryEntry) -> MemoryEntry:
        """The entry with the owner as the caller names it (tenant prefix taken off)."""
        prefix = f"{self.caller.tenant}{TENANT_SEPARATOR}" if self.caller.tenant else ""
        if prefix and entry.scope != "session" and entry.owner.startswith(prefix):
            return MemoryEntry(
                entry.scope,
                entry.owner[len(prefix) :],
                entry.key,
                entry.value,
                entry.updated_at,
                entry.user_id,
                entry.tenant,
            )
        return entry

    def _event(self, payload: MemorySet | MemoryDeleted) -> Event:
        return Event.create(
            payload,
            user_id=self.caller.user_id,
            tenant=self.caller.tenant,
            session_id=payload.owner if payload.scope == "session" else None,
            producer=PRODUCER,
        )

    # -- the API -------------------------------------------------------------------

    async def store_memory(
        self, key: str, value: Any, scope: MemoryScope = "user", owner: str | None = None
    ) -> None:
        """Set ``key`` to ``value`` (JSON); visible to the next read on return."""
        check_key(key)
        value = require_stored_json(value, "value")
        address = await self._owner(scope, owner)
        if address is None:
            raise NotFoundError(f"no {scope} {owner!r} for this caller")
        await self.start()
        await self.backend.write_memory(
            self._event(MemorySet(scope=address[0], owner=address[1], key=key, value=value))
        )

    async def get_memory(
        self,
        key: str,
        scope: MemoryScope = "user",
        owner: str | None = None,
        default: Any = None,
    ) -> Any:
        """The value of ``key``, or ``default`` when there is none for this caller."""
        entry = await self.get_entry(key, scope, owner)
        return default if entry is None else entry.value

    async def get_entry(
        self, key: str, scope: MemoryScope = "user", owner: str | None = None
    ) -> MemoryEntry | None:
        """The entry of ``key`` with when and by whom it was written, or None."""
        check_key(key)
        address = await self._owner(scope, owner)
        if address is None:
            return None
        await self.start()
        entry = await self.backend.memory_entry(address[0], address[1], key)
        return None if entry is None else self._visible(entry)

    async def delete_memory(
        self, key: str, scope: MemoryScope = "user", owner: str | None = None
    ) -> bool:
        """Delete ``key`` (a tombstone on the topic); False when there was nothing."""
        check_key(key)
        address = await self._owner(scope, owner)
        if address is None:
            raise NotFoundError(f"no {scope} {owner!r} for this caller")
        await self.start()
        existed = await self.backend.memory_entry(address[0], address[1], key) is not None
        await self.backend.write_memory(
            self._event(MemoryDeleted(scope=address[0], owner=address[1], key=key))
        )
        return existed

    async def list_memory(
        self,
        scope: MemoryScope = "user",
        owner: str | None = None,
        prefix: str | None = None,
        limit: int = 1000,
    ) -> list[MemoryEntry]:
        """The owner's entries in key order (``prefix``: only keys starting with it)."""
        if prefix is not None:
            check_key(prefix, "prefix")
        if not isinstance(limit, int) or limit < 1:
            raise InputError("limit", "a positive integer")
        address = await self._owner(scope, owner)
        if address is None:
            return []
        await self.start()
        entries = await self.backend.memory_entries(address[0], address[1], prefix, limit)
        return [self._visible(e) for e in entries]


class ServiceMemory:
    """Trusted access for services (the tool runner's ``remember`` / ``recall``):
    ``get`` / ``set`` by raw address, no caller checks. Same shape as
    ``runwire.services.tools.memory.MemoryStore``."""

    def __init__(self, backend: MemoryBackend, *, producer: str = PRODUCER) -> None:
        self._backend = backend
        self._producer = producer

    async def get(self, scope: MemoryScope, owner: str, key: str) -> Any:
        entry = await self._backend.memory_entry(scope, owner, key)
        return None if entry is None else entry.value

    async def set(self, scope: MemoryScope, owner: str, key: str, value: Any) -> None:
        await self._backend.write_memory(
            Event.create(
                MemorySet(scope=scope, owner=owner, key=key, value=value), producer=self._producer
            )
        )
