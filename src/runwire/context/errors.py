"""Errors of the context window: history that cannot be given, or not rebuilt.

Each error has a stable ``kind`` (what the orchestrator puts in ``run_failed``)
and a message that names the run, the event or the position involved.
"""

from __future__ import annotations

from runwire.errors import ContractError

__all__ = ["ContextError", "HistoryMismatchError"]


class ContextError(ContractError):
    """Session history cannot be put in front of a run's transcript as asked."""

    kind = "context_error"


class HistoryMismatchError(ContextError):
    """A recorded ``context_seeded`` cannot be rebuilt exactly from the log.

    The log is immutable, so this is never retriable: either the reader
    returned the wrong records, or the messages the window was cut from were
    not the fold of the recorded positions.
    """

    kind = "history_mismatch"
