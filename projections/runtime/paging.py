"""Keyset paging tokens: opaque to callers, the last row's sort key inside."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from runwire.errors import RunwireError

T = TypeVar("T")


class BadPageToken(RunwireError):
    """A page token that this reader did not hand out."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of results; pass ``next_page`` back to get the following one."""

    items: list[T]
    next_page: str | None


def encode_token(at: datetime, key: str) -> str:
    raw = json.dumps([at.isoformat(), key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        at, key = json.loads(raw)
        return datetime.fromisoformat(at), str(key)
    except (ValueError, TypeError) as e:
        raise BadPageToken(f"not a page token: {token!r:.60}") from e
