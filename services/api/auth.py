"""Bearer API keys: who is calling, and may they write.

Contract:
- ``Settings.api_keys`` (``RUNWIRE_API_KEYS``) is a comma-separated list of
  ``KEY:USER_ID`` entries, or ``KEY:USER_ID:read`` for a key that may only
  read. Keys are at least 16 characters and unique; a bad entry is a
  :class:`~runwire.errors.ConfigurationError` naming the entry by position
  (never echoing the key).
- A presented key is compared with every configured key in constant time
  (SHA-256 digests, :func:`hmac.compare_digest`, no early exit), so the time
  of an answer tells nothing about which key or how much of it matched.
- No ``Authorization: Bearer`` header, another scheme or an unknown key: 401
  with ``WWW-Authenticate: Bearer``. A read-only key on a write: 403.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from runwire.errors import ConfigurationError
from runwire.services.api.errors import ApiError
from runwire.settings import Settings

__all__ = ["Caller", "KeyRing", "Principal", "Writer", "caller", "writer"]

MIN_KEY_LENGTH = 16
SETTING = "RUNWIRE_API_KEYS"
Access = Literal["read", "write"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The user an API key speaks for, and what it may do."""

    user_id: str
    access: Access = "write"

    @property
    def can_write(self) -> bool:
        return self.access == "write"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class KeyRing:
    """The configured API keys, kept only as digests."""

    def __init__(self, entries: Iterable[tuple[str, Principal]]) -> None:
        self._entries: list[tuple[bytes, Principal]] = []
        seen: set[bytes] = set()
        for i, (key, principal) in enumerate(entries, start=1):
            if len(key) < MIN_KEY_LENGTH:
                raise ConfigurationError(
                    f"{SETTING}: the key of entry {i} (user {principal.user_id!r}) is shorter "
                    f"than {MIN_KEY_LENGTH} characters"
                )
            digest = _digest(key)
            if digest in seen:
                raise ConfigurationError(f"{SETTING}: entry {i} repeats the key of an earlier one")
            seen.add(digest)
            self._entries.append((digest, principal))

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """Entries ``KEY:USER_ID[:read|:write]``, comma-separated (blanks around them ignored)."""
        entries: list[tuple[str, Principal]] = []
        for i, raw in enumerate((e.strip() for e in text.split(",") if e.strip()), start=1):
            fields = raw.split(":")
            if len(fields) not in (2, 3) or not all(f.strip() for f in fields):
                raise ConfigurationError(
                    f"{SETTING}: entry {i} is not KEY:USER_ID or KEY:USER_ID:read"
                )
            key, user_id = fields[0].strip(), fields[1].strip()
            access = fields[2].strip() if len(fields) == 3 else "write"
            if access not in ("read", "write"):
                raise ConfigurationError(
                    f"{SETTING}: entry {i} ends in {access!r}; the access is 'read' or 'write'"
                )
            entries.append((key, Principal(user_id, "read" if access == "read" else "write")))
        return cls(entries)

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """The keys ``settings.api_keys`` names; a clear error when there are none."""
        text = settings.api_keys.get_secret_value() if settings.api_keys is not None else ""
        ring = cls.parse(text)
        if not ring:
            raise ConfigurationError(
                f"no API keys: set {SETTING}, e.g. {SETTING}='<a long random key>:alice' "
                "(comma-separated, KEY:USER_ID or KEY:USER_ID:read)"
            )
        return ring

    def find(self, key: str) -> Principal | None:
        """The principal of ``key``, or None; the same work whichever key matches."""
        digest = _digest(key)
        found: Principal | None = None
        for known, principal in self._entries:
            if hmac.compare_digest(known, digest):
                found = principal
        return found


_bearer = HTTPBearer(auto_error=False, description="An API key from RUNWIRE_API_KEYS")


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The principal of the request's bearer key (401 when there is none or it is unknown)."""
    if credentials is None:
        raise _unauthorized("missing API key: send the header 'Authorization: Bearer <key>'")
    keys: KeyRing = request.app.state.keys
    principal = keys.find(credentials.credentials)
    if principal is None:
        raise _unauthorized("the API key is not valid")
    return principal


async def writer(request: Request, principal: Annotated[Principal, Depends(caller)]) -> Principal:
    """:func:`caller`, refusing read-only keys with 403."""
    if not principal.can_write:
        raise ApiError(
            403,
            "forbidden",
            f"this API key is read-only; {request.method} {request.url.path} needs a key "
            "with write access",
        )
    return principal


Caller = Annotated[Principal, Depends(caller)]
"""A route parameter: the authenticated principal."""

Writer = Annotated[Principal, Depends(writer)]
"""A route parameter: the authenticated principal, which may write."""
