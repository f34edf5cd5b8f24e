"""The seam under the Session API: what a session backend stores and reads.

:class:`~runwire.sessions.api.AsyncSession` holds every rule that can be
checked without storage (input, isolation, which run a message goes to, the
events it makes); a :class:`SessionBackend` only writes events and reads
folded state. Two implementations keep this contract and one contract suite
(tests/contract/) runs against both:

- :class:`~runwire.sessions.log_backend.LogBackend`: Kafka for writes, the
  projections (session index, transcript cache, run-status store) for reads;
- :class:`~runwire.sessions.inmem.InMemoryBackend`: the twin, one
  process, for tests of user code.

Contract:
- **Writes are durable and visible on return** (read-your-writes): after
  ``write_session_events`` returns, ``describe`` shows them; after
  ``write_run`` returns, ``tail`` and ``history`` show the messages.
- ``write_run`` gets the events of one run and writes them as one atomic
  batch, in order. When the transcript ledger refuses them (another writer
  changed the run meanwhile) it raises
  :class:`~runwire.sessions.errors.WriteRefusedError` and they change nothing.
- ``describe`` returns what the session events made of a session (``None``
  when it was never seen; ``deleted=True`` after ``session_deleted``, for
  good). Backends do not check callers: the API does.
- ``history`` returns the session's runs, oldest first (by the time of their
  first event, then run id), with their canonical messages, leaving out runs
  that started at or before ``after_ms``; given ``turns``, it may leave out
  older runs too, as long as the runs returned hold the last ``turns`` turn
  starts (or are all there is).
- ``items`` returns the framework items of the session's runs that started
  after ``after_ms`` (and after the clear point the backend knows), oldest
  first, popped ones left out; given ``limit``, it may leave out older ones
  as long as the last ``limit`` are there (:mod:`runwire.transcript.items`); visible on
  return of the ``write_run`` that wrote them, like messages.
- Listeners get a :class:`SessionChange` for every change of a session
  written by anyone (another process included), on the event loop the
  backend was started on: messages in log order, session changes in log
  order; the two (from different topics) in no guaranteed order between them.
- ``start()`` / ``stop()`` are idempotent.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from runwire.contract.events import Event
from runwire.projections.transcripts.session_view import RunRecord
from runwire.sessions.planning import RunTail, WritePoint
from runwire.transcript.messages import Part

__all__ = [
    "KnownRun",
    "Listener",
    "RunRecord",
    "SessionBackend",
    "SessionChange",
    "SessionEvent",
    "SessionInfo",
    "SessionItem",
]


class SessionEvent(enum.Flag):
    """What a callback can listen to; combine with ``|``."""

    MESSAGE_ADDED = enum.auto()
    SESSION_CLEARED = enum.auto()
    METADATA_SET = enum.auto()
    SESSION_ENDED = enum.auto()
    SESSION_DELETED = enum.auto()
    ALL = MESSAGE_ADDED | SESSION_CLEARED | METADATA_SET | SESSION_ENDED | SESSION_DELETED


@dataclass(frozen=True, slots=True)
class SessionChange:
    """One change of a session, read from the log.

    ``MESSAGE_ADDED`` carries the ``role`` and the ``parts`` added (the
    consecutive parts of one role in one run that arrived together: a whole
    message when it was written in one call); ``METADATA_SET`` the ``key`` and
    ``value``. ``events`` are the log events behind the change.
    """

    kind: SessionEvent
    session_id: str
    events: tuple[Event, ...]
    run_id: str | None = None
    role: str | None = None
    parts: tuple[Part, ...] = ()
    key: str | None = None
    value: Any = None

    def text(self) -> str:
        """The text parts of a ``MESSAGE_ADDED``, joined."""
        return "".join(getattr(p, "text", "") or "" for p in self.parts if p.kind == "text")


Listener = Callable[[SessionChange], None]


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A session as its events made it."""

    session_id: str
    user_id: str | None
    tenant: str | None
    status: str
    metadata: dict[str, Any]
    labels: dict[str, str]
    created_at: datetime
    last_activity_at: datetime
    cleared_at: datetime | None = None
    ended_at: datetime | None = None
    run_count: int = 0
    deleted: bool = False
    version: int = 0
    """Writes committed under the single-writer fence (:mod:`runwire.sessions.versions`)."""
    writer: str | None = None
    """The holder of the session's open claim, if any."""
    writer_until: datetime | None = None
    """When that claim lapses (None: when released)."""
    version_by: str | None = None
    """The holder whose release made ``version``."""
    parent_session_id: str | None = None
    """The session this one was forked from (``fork`` says where)."""
    fork: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class SessionItem:
    """A live framework item of a session: its run, the event that wrote it, the item."""

    run_id: str
    event_id: str
    framework: str
    item: Any


@dataclass(frozen=True, slots=True)
class KnownRun:
    """A run the log holds, and the session it belongs to."""

    run_id: str
    session_id: str | None


@runtime_checkable
class SessionBackend(Protocol):
    """Where sessions live; see the module contract."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def describe(self, session_id: str) -> SessionInfo | None:
        """The session as its events made it; None when never seen."""
        ...

    async def write_session_events(self, events: Sequence[Event]) -> None:
        """Write session events (in order); ``describe`` shows them on return."""
        ...

    async def tail(self, session_id: str) -> RunTail | None:
        """The session's latest run (None when it has none)."""
        ...

    async def write_point(self, session_id: str) -> WritePoint | None:
        """The tail and the session's state as one read sees them (for a writer
        that already checked the session is its caller's); None when the backend
        cannot say at once: ``describe`` and ``tail`` then."""
        ...

    async def write_run(self, events: Sequence[Event], *, base: RunTail | None = None) -> None:
        """Write one run's events atomically; ``tail`` / ``history`` show them on return.
        ``base``: the tail they were planned on when they append to it (a backend
        may then raise :class:`~runwire.sessions.errors.RunBusyError`: plan again)."""
        ...

    async def history(
        self, session_id: str, after_ms: int | None = None, turns: int | None = None
    ) -> list[RunRecord]:
        """The session's runs that started after ``after_ms``, oldest first; with
        ``turns``, at least the last runs that hold the last ``turns`` turns."""
        ...

    async def items(
        self, session_id: str, after_ms: int | None = None, limit: int | None = None
    ) -> list[SessionItem]:
        """The session's live framework items, oldest first (see the module contract)."""
        ...

    async def find_run(self, run_id: str) -> KnownRun | None:
        """The run when the log holds events of it (in any session), else None."""
        ...

    async def erase(self, session_id: str, run_ids: Sequence[str]) -> None:
        """Drop what is cached about a deleted session and its runs."""
        ...

    async def keep_for(self, session_id: str, run_ids: Sequence[str], ttl: int) -> None:
        """Let the cached transcripts of ``run_ids`` live ``ttl`` seconds from now."""
        ...

    async def idle_sessions(self, before: datetime, limit: int = 500) -> list[SessionInfo]:
        """Active sessions whose last activity is older than ``before``."""
        ...

    def listen(self, session_id: str, listener: Listener) -> None:
        """Call ``listener`` with every change of ``session_id`` from now on."""
        ...

    def unlisten(self, session_id: str, listener: Listener) -> None:
        """Stop calling ``listener`` (no error when it was not listening)."""
        ...
