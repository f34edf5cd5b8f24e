"""What the application-facing APIs (sessions, memory) check before writing.

- :class:`Caller`: who is asking; every read and write is checked against it.
- :class:`InputError`: a refused value, naming its ``field``; raised before
  anything is written.
- :func:`require_json`, :func:`check_key`: JSON values (numbers exact, see
  :mod:`runwire.contract.jsonvalues`) and bounded keys; :func:`require_stored_json`
  also refuses numbers Postgres cannot keep exactly (``-0.0``, too many digits).

Kept here, below both APIs, so that memory does not depend on sessions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from runwire.contract import jsonvalues
from runwire.errors import InputError

__all__ = [
    "MAX_KEY_BYTES",
    "Caller",
    "InputError",
    "OwnedSession",
    "check_key",
    "owns",
    "require_json",
    "require_stored_json",
]

MAX_KEY_BYTES = 256
"""Longest key (UTF-8 bytes) of a memory entry or a metadata entry."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: every read and write is checked against it."""

    user_id: str | None = None
    tenant: str | None = None


def of_process(caller: Caller, backend: object) -> Caller:
    """``caller`` in the tenant its backend's process writes as (``RUNWIRE_TENANT``).

    A tenant process's writer stamps its tenant on every event, so its callers
    are that tenant's: a caller without a tenant takes it, one naming another
    is refused here (``InputError`` naming ``tenant``) before anything is written.
    """
    tenant = getattr(getattr(backend, "settings", None), "tenant", None)
    if not isinstance(tenant, str) or caller.tenant == tenant:
        return caller
    if caller.tenant is None:
        return Caller(caller.user_id, tenant)
    raise InputError(
        "tenant",
        f"{caller.tenant!r}, but this process writes as tenant {tenant!r} (RUNWIRE_TENANT)",
    )


class OwnedSession(Protocol):
    """What :func:`owns` reads of a session (the session API's ``SessionInfo`` has it)."""

    @property
    def user_id(self) -> str | None: ...

    @property
    def tenant(self) -> str | None: ...

    @property
    def deleted(self) -> bool: ...


def owns(caller: Caller, info: OwnedSession | None) -> bool:
    """True when ``info`` is a live session of ``caller``."""
    return (
        info is not None
        and not info.deleted
        and info.user_id == caller.user_id
        and info.tenant == caller.tenant
    )


def require_json(value: Any, field: str) -> Any:
    """``value`` in the exact JSON form (big ints kept, ``Decimal`` where a float
    cannot write the number), else :class:`InputError` naming where inside it."""
    try:
        return jsonvalues.canonical(value, field)
    except jsonvalues.JsonValueError as e:
        raise InputError(field, f"not a JSON value ({e})") from None


def require_stored_json(value: Any, field: str) -> Any:
    """:func:`require_json` for a value a Postgres projection keeps (memory, metadata)."""
    value = require_json(value, field)
    problem = jsonvalues.stored_problem(value, field)
    if problem is not None:
        raise InputError(*problem)
    return value


def check_key(key: Any, field: str = "key") -> str:
    """``key`` when it is a non-empty string of at most :data:`MAX_KEY_BYTES` bytes."""
    if not isinstance(key, str):
        raise InputError(field, f"a string, not {type(key).__name__}")
    if not key:
        raise InputError(field, "empty")
    size = len(key.encode())
    if size > MAX_KEY_BYTES:
        raise InputError(field, f"{size} bytes, over the limit of {MAX_KEY_BYTES}")
    return key
