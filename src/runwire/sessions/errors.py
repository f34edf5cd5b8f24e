"""Errors of the Session and Memory APIs.

Every refusal of bad input is a :class:`InputError` whose ``field`` names
what was wrong (``content[2].kind``, ``metadata.value``, ``runs[0].messages[3]``)
and is raised before anything is written. "Not yours" and "not there" are
the same :class:`~runwire.errors.NotFoundError`, so a guessed id tells the
caller nothing.
"""

from __future__ import annotations

from runwire.errors import NotFoundError, RunwireError
from runwire.memory.checks import InputError

__all__ = [
    "ImportConflictError",
    "InputError",
    "NotFoundError",
    "RunBusyError",
    "SessionBusy",
    "SessionEndedError",
    "WriteRefusedError",
]


class SessionEndedError(RunwireError):
    """The session has ended: it can be read, exported and deleted, not written."""


class ImportConflictError(RunwireError):
    """An import was told to keep ids that are already taken by something else."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


class WriteRefusedError(RunwireError):
    """The log took a write but the transcript ledger refused it.

    Happens when another writer changed the run between this writer's check
    and its write (one writer per session avoids it), or when the cache
    refused the record for a rule the writer does not check; the refused
    events are in the dead-letter topic, with the reason, and change nothing.
    """


class RunBusyError(RunwireError):
    """Another writer is appending to the run (it holds the run's claim), or the
    run changed since this writer read it: read again and plan again."""

    retriable = True


class SessionBusy(RunwireError):
    """A write named a session version that is no longer the session's, or another
    writer holds the session (:mod:`runwire.sessions.versions`).

    Nothing of the refused write is in the transcript: read again (the new
    ``version`` is here) and retry on it. ``holder`` is the open claim's
    holder, if one is what refused it.
    """

    retriable = True

    def __init__(
        self, session_id: str, message: str, *, version: int, holder: str | None = None
    ) -> None:
        super().__init__(f"session {session_id} is busy: {message}")
        self.session_id = session_id
        self.version = version
        self.holder = holder
