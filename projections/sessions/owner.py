"""Who owns a session: one rule, decided in the log.

Contract:
- The owner of a session is the (user, tenant) of the first ``session_created``
  in the session's partition of the session-events topic. The partition's
  order decides: a later ``session_created``, whoever writes it, changes
  nothing (the session index folds exactly this rule).
- A session never declared shows, until it is, the (user, tenant) of its
  first run (the smallest ``(occurred_at, run_id)`` of its ``run_started``):
  a view, not a claim. Every writer that starts runs in a session it has not
  seen claims it first with :func:`claim`, which declares it and reads back
  who won.
- A run is part of a session's conversation only when its (user, tenant) is
  the owner's: history given to a model and session reads include only such
  runs, and a run of anyone else in the session is refused, never answered
  (:class:`ForeignSessionError`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from runwire.errors import NotFoundError
from runwire.log.records import LogPosition
from runwire.projections.sessions.fold import Session

__all__ = ["ForeignSessionError", "Owner", "OwnerLookup", "claim", "owner_of"]


class OwnerLookup(Protocol):
    """What :func:`claim` reads: the session index (or its twin)."""

    async def get(self, session_id: str) -> Session: ...

    async def is_deleted(self, session_id: str) -> bool: ...

    async def wait_for(self, position: LogPosition, timeout: float = 10.0) -> None: ...  # noqa: ASYNC109


@dataclass(frozen=True, slots=True)
class Owner:
    """A (user, tenant) pair: who a session, a run or a caller belongs to."""

    user_id: str | None
    tenant: str | None = None


class ForeignSessionError(NotFoundError):
    """The session belongs to someone else (or was deleted): to the caller it does not exist."""

    kind = "foreign_session"

    def __init__(self, session_id: str, *, who: Owner) -> None:
        super().__init__(f"no session {session_id!r} for user {who.user_id!r}")
        self.session_id = session_id


def owner_of(session: Session) -> Owner:
    """The owner the session index holds for ``session`` (see the module contract)."""
    return Owner(session.user_id, session.tenant)


async def claim(
    index: OwnerLookup,
    session_id: str,
    who: Owner,
    *,
    declare: Callable[[], Awaitable[LogPosition]],
    timeout: float,  # noqa: ASYNC109 - handed on to the index's wait_for
) -> Session:
    """``session_id`` for ``who``, declared for them when no one has it yet.

    - A session the index holds is returned when ``who`` owns it, else
      :class:`ForeignSessionError`; a deleted one is never claimed again.
    - An unknown one: ``declare()`` publishes ``session_created`` for ``who``;
      once the index has applied it (waited for up to ``timeout``), the index
      says who won the session's partition: ``who`` or someone else.
    - :class:`~runwire.projections.runtime.waiting.NotCaughtUpError` when the
      index does not reach the declaration in time (nothing is decided: the
      caller refuses the write for now, it never goes ahead unconfirmed).
    """
    try:
        session = await index.get(session_id)
    except NotFoundError:
        if await index.is_deleted(session_id):
            raise ForeignSessionError(session_id, who=who) from None
        position = await declare()
        await index.wait_for(position, timeout=timeout)
        try:
            session = await index.get(session_id)
        except NotFoundError:  # deleted in between
            raise ForeignSessionError(session_id, who=who) from None
    if owner_of(session) != who:
        raise ForeignSessionError(session_id, who=who)
    return session
