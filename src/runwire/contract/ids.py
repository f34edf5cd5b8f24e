"""Event identity.

Contract:
- Event ids are UUIDs in canonical text form (lowercase, hyphenated).
- ``new_event_id()`` is a fresh, time-ordered UUIDv7 (RFC 9562) as text.
- ``deterministic_event_id(run_id, causation_id, index)`` is a UUIDv5 over the
  three values: the same inputs give the same id in every process, so a
  producer that retries the answer to one cause (e.g. after a crash) writes
  events with the ids it wrote the first time and consumers can drop the
  duplicates. Deterministic ids are not time-ordered.
"""

from __future__ import annotations

import re
import uuid

import uuid_utils

EVENT_ID_NAMESPACE = uuid.UUID("6f0c2a51-6f8e-4a53-9d0a-2b2f0f6c7e11")
"""The UUIDv5 namespace of runwire's deterministic event ids (never change it)."""


_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_event_id(text: str) -> bool:
    """True for a UUID in canonical text form (lowercase, hyphenated)."""
    return _CANONICAL.fullmatch(text) is not None


def canonical_event_id(text: str) -> str:
    """``text`` as canonical UUID text; ``ValueError`` when it is not a UUID."""
    if is_event_id(text):
        return text
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise ValueError(f"event_id must be a UUID, got {text!r:.60}") from None


def new_event_id() -> str:
    """A fresh UUIDv7, as canonical text."""
    return str(uuid_utils.uuid7())


def deterministic_event_id(run_id: str, causation_id: str, index: int) -> str:
    """The UUIDv5 of (run, cause, index): stable across retries and processes."""
    # The unit separator cannot appear in ids, so ("a", "bc") and ("ab", "c") differ.
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{run_id}\x1f{causation_id}\x1f{index}"))
