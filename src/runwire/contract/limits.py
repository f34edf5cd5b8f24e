"""What every store can hold: the limits on the ids, labels and texts of events.

Every writer gets these from one place: the ``Event`` envelope checks them on
construction (so the Client, the session API, the publisher and the HTTP API
refuse the same values), and the HTTP API's request models and path / query
parameters use the same rules. Readers check them too, once, when the codec
decodes a record: an event another producer wrote over a limit is refused by
every consumer alike (``invalid_event`` naming the field), so no service ever
holds an envelope it could not write back (the orchestrator's answers and the
watchdog's failures repeat the run's ids and labels).

Contract (also in ``schemas/README.md`` for producers in other languages):

- An **id** (``run_id``, ``session_id``, ``agent_id``, ``turn_id``, ``user_id``,
  ``tenant``, ``causation_id``, ``producer``, ``parent_run_id``, label keys) is 1 to :data:`MAX_ID_CHARS` characters, none of them a control
  character (U+0000-U+001F, U+007F-U+009F) or a lone surrogate. UUIDs,
  ``run-1``, ``s-1`` and any printable Unicode are fine.
- **Labels**: at most :data:`MAX_LABELS` per map; a key is an id of at most
  :data:`MAX_LABEL_KEY_CHARS` characters; a value is text of at most
  :data:`MAX_LABEL_VALUE_CHARS` characters.
- **Text** that a projection stores in Postgres (reasons, error kinds and
  messages, session metadata, memory owners, keys and values, tool call ids)
  holds no NUL (Postgres ``text`` and ``jsonb`` cannot) and no lone surrogate
  (not UTF-8); a tool call id is at most :data:`MAX_ID_CHARS` characters.
  Their JSON numbers fit Postgres ``numeric`` exactly: no ``-0.0``, at most
  131,072 digits before the point and 16,383 after (docs/json-numbers.md).
  Transcript text (messages, thinking, tool input and output) only goes to
  Kafka and Redis and is not restricted here.
- A **memory entry** of scope ``user`` (``memory_set``, ``memory_deleted``)
  has a non-empty key: ``["user", owner, ""]`` is the record key of the
  user's erasure receipt, which compaction would otherwise replace.
- **Token counts** of a ``usage`` event are 0 to :data:`MAX_TOKENS`.
- The whole encoded event is at most ``Settings.max_event_bytes`` (the codec
  refuses more with ``EventTooLargeError``), which is below the producer's
  maximum request size.

A refused value raises :class:`InputError` naming the field; it is a
``ContractError`` and deliberately not a ``ValueError``, so it leaves pydantic
validators as itself instead of being folded into a ``ValidationError``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator

from runwire.contract import jsonvalues
from runwire.errors import InputError

if TYPE_CHECKING:
    from runwire.contract.events import Event

__all__ = [
    "MAX_ID_CHARS",
    "MAX_LABELS",
    "MAX_LABEL_KEY_CHARS",
    "MAX_LABEL_VALUE_CHARS",
    "MAX_TOKENS",
    "IdText",
    "LabelMap",
    "StoredText",
    "check_event",
    "check_id",
    "check_labels",
    "id_problem",
    "label_problem",
    "storable",
    "text_problem",
]

MAX_ID_CHARS = 200
"""Longest id, in characters (what the HTTP API's path parameters allowed already)."""
MAX_LABELS = 32
"""Most labels in one map (the envelope's, or ``run_started``'s payload's)."""
MAX_TOKENS = 2**31 - 1
"""Most tokens one ``usage`` event may report per count: far beyond any model call,
and small enough that a run's sums stay within the run-status store's ``bigint``."""
MAX_LABEL_KEY_CHARS = 100
MAX_LABEL_VALUE_CHARS = 1000

# Control characters (C0, DEL, C1) and lone surrogates: never in an id.
_NOT_IN_ID = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# NUL (Postgres text/jsonb cannot hold it) and lone surrogates (not UTF-8).
_NOT_IN_TEXT = re.compile("[\x00\ud800-\udfff]")

_ID_CHARS = "[^\x00-\x1f\x7f-\x9f\ud800-\udfff]{1," + str(MAX_ID_CHARS) + "}"
# Ids joined by NUL, each valid (what check_event tests first, in one call).
_IDS = re.compile(f"(?:{_ID_CHARS}(?:\x00{_ID_CHARS})*)?")

_ENVELOPE_IDS = ("run_id", "session_id", "agent_id", "turn_id", "user_id", "tenant")


def _char(c: str) -> str:
    return f"U+{ord(c):04X}"


def id_problem(value: str, max_chars: int = MAX_ID_CHARS) -> str | None:
    """Why ``value`` cannot be an id, or None when it can."""
    if not value:
        return "empty"
    if len(value) > max_chars:
        return f"{len(value)} characters, over the limit of {max_chars}"
    bad = _NOT_IN_ID.search(value)
    if bad is not None:
        return f"holds the control character {_char(bad.group())} at {bad.start()}"
    return None


def text_problem(value: str, max_chars: int | None = None) -> str | None:
    """Why ``value`` cannot be stored as text, or None when it can."""
    if max_chars is not None and len(value) > max_chars:
        return f"{len(value)} characters, over the limit of {max_chars}"
    bad = _NOT_IN_TEXT.search(value)
    if bad is not None:
        what = "NUL" if bad.group() == "\x00" else "a lone surrogate"
        return f"holds {what} ({_char(bad.group())}) at {bad.start()}, which no store can hold"
    return None


def storable(text: str) -> str:
    """``text`` with NUL and lone surrogates replaced by U+FFFD: for a producer passing on
    text it did not write (an error message echoing a provider's answer), which should
    record it rather than be refused."""
    return _NOT_IN_TEXT.sub("\ufffd", text)


def label_problem(labels: Mapping[str, str]) -> tuple[str, str] | None:
    """The first ``(where, why)`` the label map breaks a limit at, or None.

    ``where`` is ``""`` for the map itself, else ``[<key>]``.
    """
    if len(labels) > MAX_LABELS:
        return "", f"{len(labels)} labels, over the limit of {MAX_LABELS}"
    for key, value in labels.items():
        why = id_problem(key, MAX_LABEL_KEY_CHARS)
        if why is not None:
            return f"[{key!r:.40}]", f"key {why}"
        why = text_problem(value, MAX_LABEL_VALUE_CHARS)
        if why is not None:
            return f"[{key!r:.40}]", why
    return None


def check_id(value: str | None, field: str) -> None:
    """Nothing when ``value`` is None or a valid id; else :class:`InputError`."""
    if value is not None:
        why = id_problem(value)
        if why is not None:
            raise InputError(field, why)


def check_labels(labels: Mapping[str, str], field: str = "labels") -> None:
    """Nothing when the label map keeps the limits; else :class:`InputError`."""
    found = label_problem(labels)
    if found is not None:
        raise InputError(field + found[0], found[1])


def _check_stored(value: Any, field: str) -> None:
    """Refuse NUL and lone surrogates anywhere in a stored value (text or JSON), and
    numbers Postgres ``numeric`` cannot keep exactly (``jsonvalues.stored_problem``)."""
    number = jsonvalues.stored_problem(value, field)
    if number is not None:
        raise InputError(*number)
    if value is None or isinstance(value, bool | int | float):
        return
    if isinstance(value, str):
        why = text_problem(value)
    elif isinstance(value, Mapping) and field.endswith("labels"):
        check_labels(value, field)
        return
    else:
        # JSON values: the JSON text shows every string and key, NUL escaped.
        try:
            text = jsonvalues.dumps(value)
        except ValueError:
            why = "holds a lone surrogate, which no store can hold"
        else:
            why = "holds NUL (U+0000), which no store can hold" if b"\\u0000" in text else None
    if why is not None:
        raise InputError(field, why)


# Payload fields that are ids; every other field of a stored payload is text or JSON.
_PAYLOAD_IDS = frozenset({"agent_id", "parent_run_id", "user_id", "thread_id", "parent_session_id"})
# Tool call ids come from model providers and land in the run-status store's
# pending calls: stored text of bounded length (an empty one is the ledger's to refuse).
_TOOL_IDS = frozenset({"id", "tool_use_id"})
# The counts of a ``usage`` event.
_TOKEN_COUNTS = frozenset(
    {
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
    }
)
# Payloads that projections keep in Postgres (run lifecycle, sessions, memory).
_STORED = frozenset(
    {
        "run_started",
        "run_status_changed",
        "run_completed",
        "run_failed",
        "run_canceled",
        "session_created",
        "session_metadata_set",
        "session_ended",
        "session_cleared",
        "session_deleted",
        "session_forked",
        "memory_set",
        "memory_deleted",
    }
)


def check_event(event: Event) -> None:
    """Raise :class:`InputError` for the first envelope or payload field over a limit."""
    # Every consumed record comes through here: one regex call checks all the
    # envelope's ids (NUL separates them; it is never in an id), and the field
    # is named only when one of them is wrong.
    ids = [
        v
        for v in (
            event.run_id,
            event.session_id,
            event.agent_id,
            event.turn_id,
            event.user_id,
            event.tenant,
            event.causation_id,
            event.producer,
        )
        if v is not None
    ]
    joined = "\x00".join(ids)
    if _IDS.fullmatch(joined) is None or joined.count("\x00") != len(ids) - 1:
        for name in (*_ENVELOPE_IDS, "causation_id", "producer"):
            check_id(getattr(event, name), name)
    if event.labels:
        check_labels(event.labels)
    payload = event.payload
    values = payload.__dict__
    if event.type._value_ in _MEMORY_ENTRIES and values["scope"] == "user" and not values["key"]:
        # Compaction keeps one record per key: such an entry would replace the receipt.
        raise InputError(
            "payload.key",
            'empty in a user entry: the address ["user", owner, ""] is the record key '
            "of the user's erasure receipt (user_erased)",
        )
    for name, kind in _plan(type(payload), event.type._value_ in _STORED, values):
        value = values[name]
        field = f"payload.{name}"
        if kind == _ID:
            check_id(value, field)
        elif kind == _TOOL_ID:
            why = text_problem(value, MAX_ID_CHARS)
            if why is not None:
                raise InputError(field, why)
        elif kind == _STORED_VALUE:
            _check_stored(value, field)
        elif not 0 <= value <= MAX_TOKENS:
            raise InputError(field, f"{value} is not a token count (0 to {MAX_TOKENS})")


_MEMORY_ENTRIES = frozenset({"memory_set", "memory_deleted"})

# What _plan says a payload field needs (plain ints: compared once per field per record).
_ID, _TOOL_ID, _STORED_VALUE, _TOKENS = range(4)
_PLANS: dict[type, tuple[tuple[str, int], ...]] = {}


def _plan(model: type, stored: bool, values: Mapping[str, Any]) -> tuple[tuple[str, int], ...]:
    """The payload fields of ``model`` that have a limit, and which (once per model).

    Every consumed record comes through :func:`check_event`: most payloads
    (text, thinking, tool input and output) have no field to check, and this
    spares them a walk over every field.
    """
    plan = _PLANS.get(model)
    if plan is None:
        checks: list[tuple[str, int]] = []
        for name in values:
            if name in _PAYLOAD_IDS:
                checks.append((name, _ID))
            elif name in _TOOL_IDS:
                checks.append((name, _TOOL_ID))
            elif stored:
                checks.append((name, _STORED_VALUE))
            elif name in _TOKEN_COUNTS:
                checks.append((name, _TOKENS))
        plan = _PLANS[model] = tuple(checks)
    return plan


def _valid_id(value: str) -> str:
    why = id_problem(value)
    if why is not None:
        raise ValueError(why)
    return value


def _valid_text(value: str) -> str:
    why = text_problem(value)
    if why is not None:
        raise ValueError(why)
    return value


def _valid_labels(value: dict[str, str]) -> dict[str, str]:
    found = label_problem(value)
    if found is not None:
        where, why = found
        raise ValueError(f"{where} {why}" if where else why)
    return value


IdText = Annotated[str, AfterValidator(_valid_id)]
"""An id in a pydantic model or FastAPI parameter (``ValueError`` -> 422 naming it)."""
StoredText = Annotated[str, AfterValidator(_valid_text)]
"""Text a projection stores, in a pydantic model or FastAPI parameter."""
LabelMap = Annotated[dict[str, str], AfterValidator(_valid_labels)]
"""A label map in a pydantic model."""
