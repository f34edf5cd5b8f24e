"""The seams of sealing: where data keys live and what wraps them.

Contract:
- :class:`KeyEncryptionKey` wraps and unwraps 32-byte data keys; ``wrap``
  uses the current key-encryption key and says its id, ``unwrap`` takes the id
  a key was wrapped with (old ids keep working after a rotation).
- :class:`KeyStore` hands out the data key a session writes with (made on
  first use), finds a key by id for reading, and destroys a session's keys.
  A session's key remembers the user its first event was written by
  (``user``: :func:`user_subject` of that event's user and tenant).
- A subject names one (tenant, owner) pair only: :func:`user_subject` refuses
  a tenant holding ``::`` or ending in ``:`` and an owner holding ``::``
  (``InputError``), so ``<tenant>::<owner>`` splits at its first ``::`` and
  no tenant's subject is another tenant's (or a tenant-less owner's).
- A session's keys are its tenant's: their subject is
  :func:`session_subject` (the session id, after its tenant and ``\x1f``,
  which no id holds), so a record another tenant writes under the same
  session id is sealed with that tenant's key, and erasing either leaves the
  other's keys whole. Key ids stay ``<session id>/<random>``.
- Users have keys too (scope user, subject :func:`user_subject`): their
  user-scope memory values are sealed with them. ``erase_user`` destroys the
  user's keys and the keys of every session made by the user, in one step,
  and answers every key id of the user destroyed so far (the same the second
  time); an erased user's memory and new sessions cannot be written
  (``UserErasedError``).
  ``key`` raises ``ErasedError`` for a destroyed key, ``UnknownKeyError``
  for an id it never had, ``KeyStoreUnavailableError`` when it cannot answer.
  ``destroy`` returns the ids destroyed (empty the second time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from runwire.errors import InputError

DATA_KEY_BYTES = 32
TENANT_SEPARATOR = "::"
"""Between tenant and user in a user subject; the memory topic names user owners alike."""


def user_subject(user_id: str, tenant: str | None, field: str = "user") -> str:
    """The subject of a user's keys: the owner of its user-scope memory on the topic
    (and of a tenant's agent and global memory: ``field`` names the owner's kind).

    ``InputError`` for a pair that another pair would share: ``("x", "y::z")``
    and ``("x::y", "z")``, or ``("x", ":y")`` and ``("x:", "y")``, would both be
    one subject, so one tenant's erasure or memory write would reach the other's.
    """
    if TENANT_SEPARATOR in user_id:
        raise InputError(field, f"{user_id!r} holds {TENANT_SEPARATOR!r}, which parts tenants")
    if tenant is None:
        return user_id
    if TENANT_SEPARATOR in tenant or tenant.endswith(":"):
        raise InputError(
            "tenant",
            f"{tenant!r} holds {TENANT_SEPARATOR!r} or ends in ':' (it would blur "
            "where the tenant ends in its owners' names)",
        )
    return f"{tenant}{TENANT_SEPARATOR}{user_id}"


SESSION_TENANT_SEPARATOR = "\x1f"
"""Between tenant and session id in a session key's subject: no id may hold it."""


def session_subject(session_id: str, tenant: str | None) -> str:
    """The subject of a session's keys in ``tenant`` (see the module contract)."""
    return session_id if tenant is None else f"{tenant}{SESSION_TENANT_SEPARATOR}{session_id}"


def session_of(subject: str) -> str:
    """The session id a :func:`session_subject` names."""
    return subject.partition(SESSION_TENANT_SEPARATOR)[2] or subject


@dataclass(frozen=True, slots=True)
class UserKeys:
    """What ``erase_user`` destroyed for a user, now or before: key ids, sessions."""

    key_ids: tuple[str, ...]
    session_ids: tuple[str, ...]


class KeyEncryptionKey(Protocol):
    """Wraps data keys (a local key file, a KMS)."""

    @property
    def current_id(self) -> str:
        """The id of the key ``wrap`` uses now."""
        ...

    def wrap(self, key_id: str, data_key: bytes) -> tuple[str, bytes]:
        """``(kek_id, wrapped)`` of ``data_key`` (bound to ``key_id``)."""
        ...

    def unwrap(self, kek_id: str, key_id: str, wrapped: bytes) -> bytes:
        """The data key ``wrapped`` holds; ``UnknownKeyError`` when it does not unwrap."""
        ...


class KeyStore(Protocol):
    """Where the data keys of sessions live and are destroyed."""

    def key_for_writing(self, session_id: str, user: str | None = None) -> tuple[str, bytes]:
        """``(key_id, data_key)`` to seal the session's next event with.

        ``user`` (a :func:`user_subject`) is remembered with a key made now.
        """
        ...

    def key_for_user(self, subject: str) -> tuple[str, bytes]:
        """``(key_id, data_key)`` to seal a user's memory with (``UserErasedError`` once erased)."""
        ...

    def key(self, key_id: str) -> bytes:
        """The data key ``key_id`` names (see the module contract for its errors)."""
        ...

    def destroy(self, session_id: str) -> list[str]:
        """Destroy every key of the session; the ids destroyed now."""
        ...

    def erase_user(self, subject: str) -> UserKeys:
        """Destroy the user's keys and its sessions' (see the module contract)."""
        ...

    def rewrap(self) -> int:
        """Re-wrap every live key with the current key-encryption key; how many."""
        ...
