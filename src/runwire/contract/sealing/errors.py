"""The errors of sealing, each with its retry posture (see the package contract)."""

from __future__ import annotations

from runwire.errors import ContractError, DecodeError, RunwireError

ERASED = "erased"
"""The reason of :class:`ErasedError`: never a dead letter, the record is skipped."""


class ErasedError(DecodeError):
    """The record's session was erased: its data key is destroyed, the body unreadable.

    Readers treat the record as erased (skip it, show an erased marker); it is
    not a fault and never dead-lettered.
    """

    def __init__(self, key_id: str) -> None:
        super().__init__(ERASED, f"data key {key_id!r} was destroyed (its session is erased)")
        self.key_id = key_id


class UnknownKeyError(ContractError):
    """A key id no key store knows (or a wrapped key that does not unwrap): tamper evidence."""


class SessionErasedError(ContractError):
    """A write to a session whose keys were destroyed; it was not written."""

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"session {session_id!r} is erased: its keys are destroyed and it cannot be "
            "written to again (start a new session)"
        )
        self.session_id = session_id


class UserErasedError(ContractError):
    """A write for a user whose keys were destroyed (memory, a new session); not written."""

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"user {subject!r} is erased: its keys are destroyed and nothing of it can be "
            "written again"
        )
        self.subject = subject


class KeyStoreUnavailableError(RunwireError):
    """The key store cannot be reached now; the same request may succeed later."""

    retriable = True
