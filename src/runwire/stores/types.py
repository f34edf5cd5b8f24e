"""The values of Goa-AI's store contracts, in Python: memory events, snapshots,
run records, session records, and the errors the stores raise.

- :class:`MemoryEvent` is Goa-AI's ``memory.Event``: a type
  (:class:`MemoryEventType`), a timestamp (timezone-aware; kept to the
  millisecond, as every runwire event is), data (a JSON object whose fields
  each type defines, see :mod:`runwire.stores.mapping`) and labels.
- :class:`Snapshot` is ``memory.Snapshot``: immutable, the run's events in
  log order (which is timestamp order: appends never go back in time).
- :class:`RunRecord` is the run store's record (``run.Record`` / ``RunMeta``);
  :class:`RunStatus` its statuses. runwire's ``awaiting_tools`` is shown as
  ``running`` (Goa-AI has no such status).
- :class:`SessionRecord` is a session with its last activity and run count.
- Errors: :class:`StoreInputError` (``field`` names what is wrong, nothing
  was written), :class:`EventConflictError` (an event key already holds
  another body), :class:`SessionEndedError`; a missing run or session is a
  :class:`~runwire.errors.NotFoundError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from runwire.errors import InputError, NotFoundError

__all__ = [
    "EventConflictError",
    "MemoryEvent",
    "MemoryEventType",
    "RunNotFoundError",
    "RunRecord",
    "RunStatus",
    "SessionEndedError",
    "SessionNotFoundError",
    "SessionRecord",
    "SessionStatus",
    "Snapshot",
    "StoreInputError",
]


class MemoryEventType(StrEnum):
    """Goa-AI's ``memory.EventType`` values."""

    USER_MESSAGE = "user_message"
    ASSISTANT_MESSAGE = "assistant_message"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    PLANNER_NOTE = "planner_note"
    THINKING = "thinking"


@dataclass(frozen=True)
class MemoryEvent:
    """One entry of a run's history (Goa-AI's ``memory.Event``)."""

    type: MemoryEventType | str
    timestamp: datetime
    data: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    """A run's history at one point (Goa-AI's ``memory.Snapshot``); empty for an unknown run.

    ``meta`` is implementation data (the log's positions of the run); do not rely on it.
    """

    agent_id: str
    run_id: str
    events: tuple[MemoryEvent, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def filter_by_type(self, kind: MemoryEventType) -> list[MemoryEvent]:
        """The events of one type, in order (Goa-AI's ``Reader.FilterByType``)."""
        return [e for e in self.events if e.type == kind]

    def latest(self, kind: MemoryEventType) -> MemoryEvent | None:
        """The last event of one type (``Reader.Latest``), None when there is none."""
        found = self.filter_by_type(kind)
        return found[-1] if found else None


class RunStatus(StrEnum):
    """Goa-AI's run statuses."""

    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED)


@dataclass(frozen=True)
class RunRecord:
    """A run as the run store keeps it.

    On ``upsert``, ``started_at`` / ``updated_at`` (when given) time the events
    appended for the run's start and its status change; ``load`` fills them
    from the log.
    """

    agent_id: str
    run_id: str
    session_id: str | None = None
    turn_id: str | None = None
    status: RunStatus = RunStatus.PENDING
    started_at: datetime | None = None
    updated_at: datetime | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


class SessionStatus(StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


@dataclass(frozen=True)
class SessionRecord:
    """A session as the session store shows it."""

    session_id: str
    status: SessionStatus
    created_at: datetime
    last_activity_at: datetime
    user_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    ended_at: datetime | None = None
    run_count: int = 0


class StoreInputError(InputError):
    """An argument of a store call is refused; ``field`` names it, nothing was written."""


class EventConflictError(StoreInputError):
    """An event's key already holds another body in the run: the first is kept."""


class SessionEndedError(StoreInputError):
    """The session has ended: it takes no new run and cannot be created again."""


class RunNotFoundError(NotFoundError):
    """The run store has no such run."""


class SessionNotFoundError(NotFoundError):
    """The session store has no such session."""
