"""Operator tasks on sessions: export, import, expire, erase (``runwire sessions ...``).

These act for the operator, not for a user: no caller check, every session
is reachable. Application code uses :class:`~runwire.sessions.api.AsyncSession`,
whose ``delete()`` / ``export()`` run the same steps after checking the caller.

Contract of :func:`erase_session` (erasure):
- a tombstone on the compacted memory topic for every ``session``-scope
  memory entry of the session (compaction then removes their values);
- ``session_deleted`` on the session-events topic: the session index drops the
  row and keeps a tombstone, the memory projection drops the session's
  entries and keeps a tombstone, so no replay or rebuild brings either back;
- the session's cached transcripts removed from Redis.
What stays: the run-events topic is retained forever and is never rewritten,
so the runs' events stay in it (docs/sessions.md) — sealed when sealing is on.

With ``erase=True`` (sealing on, docs/sealing.md) the session's data keys are
destroyed too, so those bytes can no longer be read by anyone, and an
erasure receipt is published: a ``session_deleted`` event (never sealed)
labelled ``erasure=keys-destroyed`` with the destroyed key ids
(``erased_key_ids``, comma-separated). Erasing again is idempotent (a receipt
with no key ids); an erased session cannot be written to again.

Contract of :func:`erase_user` (erasure by user, sealing on; docs/sealing.md):
- in a tenant process (``RUNWIRE_TENANT``) only that tenant's users: another
  tenant is refused (``InputError``) before anything is erased, and no
  tenant named is the process's; a user id or tenant whose subject another
  pair could share is refused too (:func:`~runwire.contract.sealing.user_subject`);
- every live session of the user in its tenant (the session index) is erased
  as :func:`erase_any` does (deletion, keys destroyed, a session receipt);
- a tombstone for every ``user``-scope memory entry of the user;
- the key store destroys the user's key and the key of every session the
  user made (those deleted earlier without erasure too): its memory values
  and sessions on the log can no longer be read by anyone; the user can
  write neither memory nor a session again (``UserErasedError``);
- the receipt, a ``user_erased`` event (clear, on the memory topic; the
  memory projection drops the user's entries on it), names every key id
  destroyed for the user so far and its sessions, so erasing again answers
  the same receipt state (a new receipt event, the same content).

Contract of :func:`expire_idle`: ends (``session_ended``, reason ``idle``)
every active session whose last activity is older than ``idle``; it deletes
nothing.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from runwire.contract import ids
from runwire.contract.codec import codec_for
from runwire.contract.events import (
    Event,
    MemoryDeleted,
    SessionDeleted,
    SessionEnded,
    UserErased,
)
from runwire.contract.limits import check_id
from runwire.contract.sealing import KeyStore, SealingPayload, user_subject
from runwire.contract.sealing.protocol import session_subject
from runwire.errors import ConfigurationError, NotFoundError
from runwire.memory.api import PRODUCER as MEMORY_PRODUCER
from runwire.memory.checks import Caller, InputError, of_process
from runwire.memory.log_backend import LogMemoryBackend
from runwire.memory.protocol import MemoryBackend
from runwire.projections.sessions.reader import SessionIndex
from runwire.sessions.export import ImportResult, export_session, import_session
from runwire.sessions.planning import session_event
from runwire.sessions.protocol import SessionBackend, SessionInfo
from runwire.settings import Settings

__all__ = [
    "ErasureReceipt",
    "UserErasureReceipt",
    "destroy_keys",
    "erase_any",
    "erase_session",
    "erase_user",
    "expire_idle",
    "export_any",
    "import_file",
    "key_store_of",
    "parse_duration",
]

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
SQLITE_MAGIC = b"SQLite format 3\x00"


def parse_duration(text: str, field: str = "idle") -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` or a sum such as ``1d12h``."""
    parts = _DURATION.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise InputError(field, f"{text!r} is not a duration such as 30d, 12h, 90m or 45s")
    return sum((timedelta(**{_UNITS[u]: int(n)}) for n, u in parts), timedelta())


async def _session(backend: SessionBackend, session_id: str) -> SessionInfo:
    info = await backend.describe(session_id)
    if info is None or info.deleted:
        raise NotFoundError(f"no session {session_id!r}" + (" (deleted)" if info else ""))
    return info


async def export_any(backend: SessionBackend, session_id: str) -> dict[str, Any]:
    """The export document of any session (operator)."""
    return await export_session(backend, await _session(backend, session_id))


@dataclass(frozen=True)
class ErasureReceipt:
    """What an erasure destroyed: the receipt event's id and the key ids."""

    session_id: str
    event_id: str
    key_ids: tuple[str, ...]


RECEIPT_LABEL = "erasure"
RECEIPT_KEYS_LABEL = "erased_key_ids"


def key_store_of(backend: SessionBackend) -> KeyStore:
    """The key store the backend's writes are sealed with; ``ConfigurationError`` if none."""
    settings = getattr(backend, "settings", None)
    payload = codec_for(settings).payload if isinstance(settings, Settings) else None
    if not isinstance(payload, SealingPayload):
        raise ConfigurationError(
            "erasing a session or a user from the log needs sealing on (RUNWIRE_SEALING=true, "
            "docs/sealing.md) and a log backend; delete(erase=False) erases the projections only"
        )
    return payload.keys


async def destroy_keys(backend: SessionBackend, session_id: str, by: Caller) -> ErasureReceipt:
    """Destroy the session's data keys and publish the erasure receipt (idempotent)."""
    keys = key_store_of(backend)
    subject = session_subject(session_id, by.tenant)  # the owner's tenant's keys
    destroyed = tuple(sorted(await asyncio.to_thread(keys.destroy, subject)))
    receipt = session_event(
        SessionDeleted(),
        session_id,
        by,
        token=ids.new_event_id(),
        labels={RECEIPT_LABEL: "keys-destroyed", RECEIPT_KEYS_LABEL: ",".join(destroyed)},
    )
    await backend.write_session_events([receipt])
    return ErasureReceipt(session_id, receipt.event_id, destroyed)


async def erase_any(backend: SessionBackend, session_id: str) -> ErasureReceipt:
    """Erase any session for good (operator): projections and keys; idempotent."""
    info = await backend.describe(session_id)
    if info is None:
        raise NotFoundError(f"no session {session_id!r}")
    by = Caller(info.user_id, info.tenant)
    if not info.deleted:
        await erase_session(backend, info, by)
    return await destroy_keys(backend, session_id, by)


@dataclass(frozen=True)
class UserErasureReceipt:
    """What erasing a user destroyed, as its ``user_erased`` event says."""

    user_id: str
    tenant: str | None
    event_id: str
    erased_at: datetime
    key_ids: tuple[str, ...]
    session_ids: tuple[str, ...]
    memory_entries: int
    """User-scope memory entries tombstoned by this call (0 the second time)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "erased_user": self.user_id,
            "tenant": self.tenant,
            "receipt_event_id": self.event_id,
            "erased_at": self.erased_at.isoformat(),
            "destroyed_key_ids": list(self.key_ids),
            "session_ids": list(self.session_ids),
            "memory_entries": self.memory_entries,
        }


async def _sessions_of(backend: LogMemoryBackend, user_id: str, tenant: str | None) -> list[str]:
    """The live sessions of the user in its tenant, from the session index (read as that
    tenant when there is one, so row-level security keeps the answer inside it)."""
    index = SessionIndex(backend.pool, backend.settings, tenant=tenant)
    found: list[str] = []
    page: str | None = None
    while True:
        got = await index.list(user_id=user_id, page=page, limit=500)
        found += [s.session_id for s in got.items if s.tenant == tenant]
        if got.next_page is None:
            return found
        page = got.next_page


async def erase_user(
    backend: SessionBackend, user_id: str, tenant: str | None = None
) -> UserErasureReceipt:
    """Erase a user for good: its sessions, its user memory, its keys (see the contract)."""
    check_id(user_id, "user")
    check_id(tenant, "tenant")
    # A tenant process erases its own tenant's users only (no tenant named: its own),
    # refused before any key is destroyed.
    by = of_process(Caller(user_id, tenant), backend)
    tenant = by.tenant
    owner = user_subject(user_id, tenant)  # InputError for a name two pairs would share
    keys = key_store_of(backend)  # refuse before erasing anything when sealing is off
    if not isinstance(backend, LogMemoryBackend):
        raise ConfigurationError("erasing a user needs a log backend (the session index)")
    sessions = await _sessions_of(backend, user_id, tenant)
    for session_id in sessions:
        await erase_any(backend, session_id)
    entries = await backend.memory_entries("user", owner, None, 1_000_000)
    for entry in entries:
        await backend.write_memory(
            Event.create(
                MemoryDeleted(scope="user", owner=owner, key=entry.key),
                user_id=by.user_id,
                tenant=by.tenant,
                producer=MEMORY_PRODUCER,
            )
        )
    destroyed = await asyncio.to_thread(keys.erase_user, owner)
    erased_sessions = tuple(sorted({*sessions, *destroyed.session_ids}))
    receipt = Event.create(
        UserErased(
            user_id=user_id,
            owner=owner,
            key_ids=list(destroyed.key_ids),
            session_ids=list(erased_sessions),
        ),
        user_id=user_id,
        tenant=tenant,
        producer=MEMORY_PRODUCER,
        labels={RECEIPT_LABEL: "keys-destroyed"},
    )
    await backend.write_memory(receipt)
    return UserErasureReceipt(
        user_id,
        tenant,
        receipt.event_id,
        receipt.occurred_at,
        destroyed.key_ids,
        erased_sessions,
        len(entries),
    )


async def erase_session(backend: SessionBackend, info: SessionInfo, by: Caller) -> None:
    """Erase a session (see the module contract); events carry ``by`` as their user."""
    session_id = info.session_id
    runs = await backend.history(session_id)
    if isinstance(backend, MemoryBackend):
        entries = await backend.memory_entries("session", session_id, None, 1_000_000)
        for entry in entries:
            await backend.write_memory(
                Event.create(
                    MemoryDeleted(scope="session", owner=session_id, key=entry.key),
                    session_id=session_id,
                    user_id=by.user_id,
                    tenant=by.tenant,
                    producer=MEMORY_PRODUCER,
                )
            )
    await backend.write_session_events(
        [session_event(SessionDeleted(), session_id, by, token=ids.new_event_id())]
    )
    await backend.erase(session_id, [r.run_id for r in runs])


async def delete_any(backend: SessionBackend, session_id: str) -> None:
    """Erase any session (operator)."""
    info = await _session(backend, session_id)
    await erase_session(backend, info, Caller(info.user_id, info.tenant))


async def expire_idle(
    backend: SessionBackend,
    idle: timedelta,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    reason: str | None = None,
) -> list[str]:
    """End the active sessions idle longer than ``idle``; returns their ids."""
    cutoff = (now or datetime.now(UTC)) - idle
    ended: list[str] = []
    while True:
        found = [s for s in await backend.idle_sessions(cutoff) if s.session_id not in ended]
        if not found:
            return ended
        for info in found:
            ended.append(info.session_id)
            if not dry_run:
                why = reason or f"idle since {info.last_activity_at.isoformat()}"
                await backend.write_session_events(
                    [
                        session_event(
                            SessionEnded(reason=why),
                            info.session_id,
                            Caller(info.user_id, info.tenant),
                            token=ids.new_event_id(),
                        )
                    ]
                )
        if dry_run:
            return ended


async def import_file(
    backend: SessionBackend,
    path: Path,
    *,
    user_id: str | None = None,
    tenant: str | None = None,
    keep_ids: bool = False,
    skip_unsupported: bool = False,
) -> Sequence[ImportResult]:
    """Import an export document (JSON) or an Agents-SDK ``SQLiteSession`` file.

    The owner of a JSON document's session is the document's unless
    ``user_id`` / ``tenant`` are given.
    """
    from runwire.sessions.agents_sqlite import import_agents_sqlite
    from runwire.sessions.names import FROM_DOCUMENT

    data = await asyncio.to_thread(path.read_bytes)
    if data.startswith(SQLITE_MAGIC):
        return await import_agents_sqlite(
            backend,
            path,
            user_id=user_id,
            tenant=tenant,
            keep_ids=keep_ids,
            skip_unsupported=skip_unsupported,
        )
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError("file", f"{path} is neither an export document nor SQLite ({e})") from None
    result = await import_session(
        backend,
        doc,
        user_id=FROM_DOCUMENT if user_id is None else user_id,
        tenant=FROM_DOCUMENT if tenant is None else tenant,
        keep_ids=keep_ids,
    )
    return [result]
