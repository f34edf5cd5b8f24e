"""Single-writer sessions: writes that name the session version they read.

Contract:
- A session's **version** counts the writes committed under its fence: it
  starts at 0 and goes up by one with each ``session_writer_released``
  (``committed``) of the claim's holder. It is decided by the session index
  from the session-events topic alone, in the session's one partition, so
  every process and every rebuild agrees on it (the rules:
  :mod:`runwire.projections.sessions.fold`).
- :func:`read_versioned` gives the version *then* the history: every write
  counted in that version was visible before its release was written, so
  the history holds at least what the version says (it may hold more: an
  unfenced write, or a fenced one in flight; a write naming that version is
  then refused, never interleaved).
- :func:`write_at` runs one write under the fence: a claim
  (``session_writer_claimed``, with the expected version and a lease) is
  written to the session's partition and the writer waits until the session
  index has applied it, then reads whether it holds the session. The first
  claim at a version wins; every other writer gets
  :class:`~runwire.sessions.errors.SessionBusy` with the version the session
  is at, and nothing of its content is written. The winner writes (planned
  on the history read *after* winning), then releases (``committed``): the
  version moves on.
- The lease bounds how long a crashed writer blocks the session: a claim
  lapses ``lease`` seconds after it was made. A winner that finds its lease
  (less a margin) spent before it writes releases without writing and gets
  ``SessionBusy``; one that finds after writing that another writer took
  over (it was paused past its lease) gets ``SessionBusy`` saying its
  content is in the log after the other's.
- Writes that name no version (plain ``add_message``) do not take part: the
  guarantee is among the writers that name versions, and the orchestrator's
  runs of agents whose policy is ``refuse`` or ``queue``
  (:mod:`runwire.services.orchestrator.concurrency`), which hold the same
  fence from their first model call until they end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from runwire.contract import ids
from runwire.contract.events import SessionWriterClaimed, SessionWriterReleased
from runwire.errors import NotFoundError
from runwire.memory.checks import Caller, InputError
from runwire.sessions.errors import SessionBusy
from runwire.sessions.planning import session_event
from runwire.sessions.protocol import SessionBackend, SessionInfo
from runwire.transcript.messages import Message

__all__ = ["LEASE", "Versioned", "check_version", "read_versioned", "write_at"]

LEASE = 30.0
"""Seconds a fenced write may take before its claim lapses."""

_MARGIN = 0.2
"""Part of the lease a winner keeps in reserve: it does not start a write later."""


@dataclass(frozen=True, slots=True)
class Versioned:
    """A session's history and the version it is at least as new as."""

    version: int
    messages: list[Message]


def check_version(version: object, field: str = "expected_version") -> int:
    """``version`` when it is a version (an int >= 0), else :class:`InputError`."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise InputError(field, f"a session version (an int >= 0), not {version!r}")
    return version


def _held_by_other(info: SessionInfo, holder: str | None, at: datetime) -> bool:
    return (
        info.writer is not None
        and info.writer != holder
        and (info.writer_until is None or at < info.writer_until)
    )


async def read_versioned(
    describe: Callable[[], Awaitable[SessionInfo]],
    messages: Callable[[], Awaitable[list[Message]]],
) -> Versioned:
    """The version, then the history (in that order: see the module contract)."""
    info = await describe()
    return Versioned(info.version, await messages())


async def write_at(
    backend: SessionBackend,
    session_id: str,
    caller: Caller,
    expected: int,
    write: Callable[[], Awaitable[None]],
    *,
    lease: float = LEASE,
) -> int:
    """Run ``write`` as the session's one writer at version ``expected``; the new version.

    Raises :class:`SessionBusy` (nothing written) when the session is at
    another version or another writer holds it; see the module contract.
    """

    async def describe() -> SessionInfo:
        info = await backend.describe(session_id)
        if info is None or info.deleted:
            raise NotFoundError(f"no session {session_id!r} for this caller")
        return info

    check_version(expected)
    if lease <= _MARGIN * 2:
        raise InputError("lease", f"more than {_MARGIN * 2} seconds, not {lease}")
    info = await describe()
    # Refused before a claim is written when the answer is already known.
    _refuse(session_id, info, expected, None)
    holder = ids.new_event_id()
    started = time.monotonic()
    claim = SessionWriterClaimed(
        holder=holder, expected_version=expected, lease_ms=int(lease * 1000)
    )
    await backend.write_session_events([session_event(claim, session_id, caller, token=holder)])
    info = await describe()
    if info.writer != holder:
        _refuse(session_id, info, expected, holder)
        raise SessionBusy(session_id, "another writer claimed it first", version=info.version)
    committed = False
    try:
        if time.monotonic() - started > lease - _MARGIN:
            raise SessionBusy(
                session_id,
                f"the claim at version {expected} lapsed before the write began",
                version=info.version,
            )
        # Committed from here on, whatever happens: a write that fails after it
        # reached the log still shows, so the version must move past it (a
        # move with nothing written only costs a reader a re-read).
        committed = True
        await write()
        info = await describe()
        if info.writer != holder:
            raise SessionBusy(
                session_id,
                f"the claim at version {expected} lapsed during the write and "
                f"{info.writer or 'another writer'} took the session; what this write "
                "added is in the log after that writer's",
                version=info.version,
                holder=info.writer,
            )
    finally:
        release = SessionWriterReleased(holder=holder, committed=committed)
        # Shielded: a canceled writer still lets go (else the lease must lapse).
        await asyncio.shield(
            backend.write_session_events(
                [session_event(release, session_id, caller, token=holder, index=1)]
            )
        )
    return (await describe()).version


def _refuse(session_id: str, info: SessionInfo, expected: int, holder: str | None) -> None:
    if info.version != expected:
        raise SessionBusy(
            session_id,
            f"the write names version {expected}, the session is at version "
            f"{info.version}: read it again and retry on that version",
            version=info.version,
        )
    if _held_by_other(info, holder, datetime.now(UTC)):
        raise SessionBusy(
            session_id,
            f"{info.writer} is writing it (version {info.version}); retry when it is done",
            version=info.version,
            holder=info.writer,
        )
