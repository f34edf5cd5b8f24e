"""Bearer API keys: who is calling, and may they write.

Contract:
- ``Settings.api_keys`` (``RUNWIRE_API_KEYS``) is a comma-separated list of
  ``KEY:USER_ID`` entries, or ``KEY:USER_ID:read`` for a key that may only
  read; ``KEY:USER_ID:ACCESS:TENANT`` makes the key a tenant's (its caller is
  the pair (tenant, user); docs/tenants.md). Keys are at least 16 characters and unique; a bad entry is a
  :class:`~runwire.errors.ConfigurationError` naming the entry by position
  (never echoing the key).
- A presented key is compared with every configured key in constant time
  (SHA-256 digests, :func:`hmac.compare_digest`, no early exit), so the time
  of an answer tells nothing about which key or how much of it matched.
- No ``Authorization: Bearer`` header, another scheme or an unknown key: 401
  with ``WWW-Authenticate: Bearer``. A read-only key on a write: 403.
- Every path under ``/v1`` needs a key, and :class:`KeyGate` (pure ASGI
  middleware) checks it from the headers alone, before anything reads the
  body: an unauthenticated request costs no more than its headers, and is
  401 whatever its body (too large, malformed or missing).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from runwire.contract import limits
from runwire.errors import ConfigurationError
from runwire.services.api.errors import ApiError, error_body
from runwire.settings import Settings

__all__ = [
    "GUARDED_PREFIX",
    "PRINCIPAL_SCOPE_KEY",
    "Caller",
    "KeyGate",
    "KeyRing",
    "Principal",
    "Writer",
    "authenticate",
    "caller",
    "writer",
]

MIN_KEY_LENGTH = 16
SETTING = "RUNWIRE_API_KEYS"
Access = Literal["read", "write"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The (tenant, user) an API key speaks for, and what it may do."""

    user_id: str
    access: Access = "write"
    tenant: str | None = None
    """None: a deployment without tenants (its rows carry none either)."""

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
        """Entries ``KEY:USER_ID[:read|:write[:TENANT]]``, comma-separated (blanks around
        them ignored)."""
        entries: list[tuple[str, Principal]] = []
        for i, raw in enumerate((e.strip() for e in text.split(",") if e.strip()), start=1):
            fields = raw.split(":")
            if len(fields) not in (2, 3, 4) or not all(f.strip() for f in fields):
                raise ConfigurationError(
                    f"{SETTING}: entry {i} is not KEY:USER_ID, KEY:USER_ID:read "
                    "or KEY:USER_ID:ACCESS:TENANT"
                )
            key, user_id = fields[0].strip(), fields[1].strip()
            access = fields[2].strip() if len(fields) >= 3 else "write"
            if access not in ("read", "write"):
                where = "ends in" if len(fields) == 3 else "gives the access"
                raise ConfigurationError(
                    f"{SETTING}: entry {i} {where} {access!r}; the access is 'read' or 'write'"
                )
            tenant = fields[3].strip() if len(fields) == 4 else None
            problem = None if tenant is None else limits.id_problem(tenant)
            if problem is not None:
                raise ConfigurationError(
                    f"{SETTING}: the tenant of entry {i} is not an id: {problem}"
                )
            principal = Principal(user_id, "read" if access == "read" else "write", tenant)
            entries.append((key, principal))
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

    @property
    def tenants(self) -> set[str]:
        """The tenants the keys speak for."""
        return {p.tenant for _, p in self._entries if p.tenant is not None}

    def find(self, key: str) -> Principal | None:
        """The principal of ``key``, or None; the same work whichever key matches."""
        digest = _digest(key)
        found: Principal | None = None
        for known, principal in self._entries:
            if hmac.compare_digest(known, digest):
                found = principal
        return found


GUARDED_PREFIX = "/v1"
"""Every path under it needs an API key."""

PRINCIPAL_SCOPE_KEY = "runwire.principal"
"""Where :class:`KeyGate` leaves who is calling, in the ASGI scope."""

_bearer = HTTPBearer(auto_error=False, description="An API key from RUNWIRE_API_KEYS")


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def authenticate(keys: KeyRing, authorization: str | None) -> Principal:
    """The principal of an ``Authorization`` header's bearer key; 401 :class:`ApiError`
    when there is none, it is another scheme, or the key is unknown."""
    scheme, key = get_authorization_scheme_param(authorization)
    if scheme.lower() != "bearer" or not key:
        raise _unauthorized("missing API key: send the header 'Authorization: Bearer <key>'")
    principal = keys.find(key)
    if principal is None:
        raise _unauthorized("the API key is not valid")
    return principal


def _guarded(path: str) -> bool:
    return path == GUARDED_PREFIX or path.startswith(GUARDED_PREFIX + "/")


class KeyGate:
    """Pure ASGI middleware: 401 for a request under ``/v1`` without a valid key,
    answered from the headers before the body is read (see the module contract)."""

    def __init__(self, app: ASGIApp, keys: KeyRing) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _guarded(scope["path"]):
            try:
                scope[PRINCIPAL_SCOPE_KEY] = authenticate(
                    self.keys, Headers(scope=scope).get("authorization")
                )
            except ApiError as e:
                body = error_body(Request(scope), e.code, e.message)
                response = JSONResponse(body, status_code=e.status, headers=e.headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The principal of the request's bearer key (401 when there is none or it is unknown).

    :class:`KeyGate` has found it already for paths under ``/v1``; ``credentials``
    (unused then) also declares the bearer scheme in the OpenAPI document."""
    found = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if isinstance(found, Principal):
        return found
    keys: KeyRing = request.app.state.keys
    return authenticate(keys, request.headers.get("authorization"))


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
