"""Session callbacks: log events -> :class:`SessionChange`, and who to call.

Contract:
- :func:`changes_of` turns events (in log order) into changes: transcript
  events become ``MESSAGE_ADDED`` (consecutive events of one run and one role
  are one change, so a message written in one call arrives as one change);
  ``session_cleared`` / ``session_metadata_set`` / ``session_ended`` /
  ``session_deleted`` one change each; every other event none.
- A session is its tenant's
  (:func:`runwire.contract.session_tenant.foreign_to_session`): an event
  another tenant wrote on its id (session events: metadata set, cleared,
  ended, deleted; or a run naming it) makes no change. :func:`changes_of`
  takes the session's tenant when its caller knows it; :class:`Callbacks`
  keeps it across changes: the tenant it was given, or else the first tenant
  the changes it hears name (as the folds take the first tenant a session's
  events name), so its callbacks never hear another tenant's events.
- :class:`Callbacks` keeps ``(kinds, callback)`` pairs. A callback may be a
  plain function or a coroutine function; it runs on the backend's event
  loop, and coroutines are awaited in order. An exception in a callback is
  logged and does not stop the others or later changes.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from runwire.contract.events import (
    AssistantText,
    Event,
    SessionCleared,
    SessionDeleted,
    SessionEnded,
    SessionMetadataSet,
    Thinking,
    ToolResult,
    ToolUse,
    UserMessage,
)
from runwire.contract.session_tenant import foreign_to_session
from runwire.sessions.protocol import SessionChange, SessionEvent
from runwire.transcript.messages import Part, TextPart, ThinkingPart, ToolResultPart, ToolUsePart

__all__ = ["Callback", "Callbacks", "changes_of"]

log = logging.getLogger(__name__)

Callback = Callable[[SessionChange], Awaitable[None] | None]


def _parts(event: Event) -> tuple[str, tuple[Part, ...]] | None:
    p = event.payload
    if isinstance(p, UserMessage):
        return "user", tuple(TextPart(text=t) for t in p.parts if t)
    if isinstance(p, ToolResult):
        return "user", (
            ToolResultPart(tool_use_id=p.tool_use_id, content=p.content, is_error=p.is_error),
        )
    if isinstance(p, AssistantText):
        return "assistant", (TextPart(text=p.text),)
    if isinstance(p, Thinking):
        return "assistant", (ThinkingPart(text=p.text, signature=p.signature, redacted=p.redacted),)
    if isinstance(p, ToolUse):
        return "assistant", (ToolUsePart(id=p.id, name=p.name, input=p.input),)
    return None


def _session_change(event: Event) -> SessionChange | None:
    p = event.payload
    sid = event.session_id
    assert sid is not None
    if isinstance(p, SessionCleared):
        return SessionChange(SessionEvent.SESSION_CLEARED, sid, (event,))
    if isinstance(p, SessionMetadataSet):
        return SessionChange(SessionEvent.METADATA_SET, sid, (event,), key=p.key, value=p.value)
    if isinstance(p, SessionEnded):
        return SessionChange(SessionEvent.SESSION_ENDED, sid, (event,))
    if isinstance(p, SessionDeleted):
        return SessionChange(SessionEvent.SESSION_DELETED, sid, (event,))
    return None


def changes_of(events: Iterable[Event], tenant: str | None = None) -> list[SessionChange]:
    """The changes that ``events`` (one session's, log order) make; see the module doc.

    ``tenant``: the session's tenant, when known; events of another tenant make no
    change (None: no event is foreign).
    """
    out: list[SessionChange] = []
    for event in events:
        if event.session_id is None or foreign_to_session(event, tenant):
            continue
        found = _parts(event)
        if found is None:
            change = _session_change(event)
            if change is not None:
                out.append(change)
            continue
        role, parts = found
        last = out[-1] if out else None
        if (
            last is not None
            and last.kind is SessionEvent.MESSAGE_ADDED
            and last.run_id == event.run_id
            and last.role == role
        ):
            out[-1] = SessionChange(
                SessionEvent.MESSAGE_ADDED,
                last.session_id,
                (*last.events, event),
                run_id=last.run_id,
                role=role,
                parts=(*last.parts, *parts),
            )
        else:
            out.append(
                SessionChange(
                    SessionEvent.MESSAGE_ADDED,
                    event.session_id,
                    (event,),
                    run_id=event.run_id,
                    role=role,
                    parts=parts,
                )
            )
    return out


class Callbacks:
    """Callbacks by the kinds of change they want; see the module doc."""

    def __init__(self, tenant: str | None = None) -> None:
        self._entries: list[tuple[SessionEvent, Callback]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.tenant = tenant
        """The session's tenant: as given, or else the first tenant a change it hears
        names; changes of another tenant's events are not passed on."""

    def __bool__(self) -> bool:
        return bool(self._entries)

    def add(self, kinds: SessionEvent, callback: Callback) -> None:
        self._entries.append((kinds, callback))

    def remove(self, kinds: SessionEvent | None, callback: Callback | None) -> int:
        """Remove matching entries (``None`` matches all); returns how many."""
        kept: list[tuple[SessionEvent, Callback]] = []
        removed = 0
        for entry_kinds, entry_cb in self._entries:
            cb_match = callback is None or entry_cb == callback
            if cb_match and kinds is not None and entry_kinds & kinds:
                rest = entry_kinds & ~kinds
                removed += 1
                if rest:
                    kept.append((rest, entry_cb))
                continue
            if cb_match and kinds is None:
                removed += 1
                continue
            kept.append((entry_kinds, entry_cb))
        self._entries = kept
        return removed

    def __call__(self, change: SessionChange) -> None:
        """Run every callback that wants ``change`` (the backend's listener)."""
        if self.tenant is None:
            self.tenant = next((e.tenant for e in change.events if e.tenant is not None), None)
        if any(foreign_to_session(e, self.tenant) for e in change.events):
            # Another tenant's events on the session's id: only what is the session's.
            for kept in changes_of(change.events, self.tenant):
                self._call(kept)
            return
        self._call(change)

    def _call(self, change: SessionChange) -> None:
        for kinds, callback in list(self._entries):
            if not change.kind & kinds:
                continue
            try:
                result = callback(change)
            except Exception:
                log.exception("session %s: a %s callback failed", change.session_id, change.kind)
                continue
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a session callback failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for coroutine callbacks still running."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
