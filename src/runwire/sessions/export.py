"""Export and import: a session as a versioned JSON document, and back.

The document (``format: "runwire.session"``, ``version: 1``)::

    {"format": "runwire.session", "version": 1, "exported_at": "...",
     "session": {"session_id", "user_id", "tenant", "status", "created_at",
                 "metadata": {...}, "labels": {...}},
     "runs": [{"run_id", "started_at", "messages": [{"role", "parts": [...]}]}]}

Messages are canonical transcript messages (parts in their JSON form, thinking
bytes as base64); the runs are the session's runs since its last clear, in
order, so the concatenation of their messages is ``get_messages()``.

Contract of :func:`import_session`:
- **All or nothing for bad input**: the whole document is checked first
  (format, version, every part, the ledger rules of every run, canonical
  form, metadata) and the first problem is an
  :class:`~runwire.sessions.errors.InputError` naming its field
  (``runs[1].messages[2].parts[0].tool_use_id``); nothing is written then.
- **Idempotent**: the import is labelled with a digest of the document
  (``runwire.import``); importing the same document again finds it and
  writes nothing. Event ids are derived from the digest, so an import cut
  short by a failure is completed by running it again (repeats are dropped).
- **Ids**: the document's session id is kept when free; when it is taken
  (or was deleted) the session gets an id derived from the digest, and its
  runs too. ``keep_ids=True`` refuses instead
  (:class:`~runwire.sessions.errors.ImportConflictError`).
- Runs are written first, each as one atomic batch (recorded runs, labelled
  ``runwire.source=import``), then ``session_created`` (user, metadata,
  label) and ``session_ended`` when the session had ended.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runwire.contract.events import EventPayload, SessionCreated, SessionEnded, now
from runwire.memory.checks import Caller, InputError, check_key, require_json
from runwire.sessions.content import to_message
from runwire.sessions.errors import ImportConflictError
from runwire.sessions.names import FROM_DOCUMENT, FromDocument
from runwire.sessions.planning import (
    check_run,
    from_millis,
    millis,
    run_events,
    session_event,
)
from runwire.sessions.protocol import SessionBackend, SessionInfo
from runwire.transcript.ledger import build_messages_from_events
from runwire.transcript.messages import Message, ToolResultPart, ToolUsePart

__all__ = [
    "FORMAT",
    "IMPORT_LABEL",
    "VERSION",
    "ImportResult",
    "SessionDocument",
    "export_session",
    "import_session",
    "parse_document",
]

FORMAT = "runwire.session"
VERSION = 1
IMPORT_LABEL = "runwire.import"
_NAMESPACE = uuid.UUID("0b7e5a2c-3f4d-4c8e-9a61-5d2f8e7c1b90")
"""UUIDv5 namespace of ids derived from an import's digest (never change it)."""


class RunDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(min_length=1)
    started_at: datetime | None = None
    messages: list[Message]


class SessionDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: str = Field(min_length=1)
    user_id: str | None = None
    tenant: str | None = None
    status: Literal["active", "ended"] = "active"
    created_at: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)


class SessionDocument(BaseModel):
    """A parsed, checked export document (see the module doc)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["runwire.session"] = "runwire.session"
    version: Literal[1] = 1
    exported_at: datetime | None = None
    session: SessionDoc
    runs: list[RunDoc] = Field(default_factory=list)

    def digest(self) -> str:
        """What identifies the document's content (``exported_at`` left out)."""
        body = self.model_dump(mode="json", exclude={"exported_at"})
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class ImportResult:
    session_id: str
    created: bool
    """False when the document had been imported before (nothing was written)."""
    runs: int
    messages: int
    renamed: bool = False
    """True when the session got a new id because the document's was taken."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Items a foreign source held that runwire cannot keep, by kind (Agents-SDK import)."""
    owner: Caller = field(default_factory=Caller)
    """Who the session belongs to."""


# -- export --------------------------------------------------------------------------


async def export_session(backend: SessionBackend, info: SessionInfo) -> dict[str, Any]:
    """The document of a session (its runs since the last clear)."""
    after = millis(info.cleared_at) if info.cleared_at else None
    runs = await backend.history(info.session_id, after)
    doc = SessionDocument(
        exported_at=now(),
        session=SessionDoc(
            session_id=info.session_id,
            user_id=info.user_id,
            tenant=info.tenant,
            status="ended" if info.status == "ended" else "active",
            created_at=info.created_at,
            metadata=info.metadata,
            labels={k: v for k, v in info.labels.items() if k != IMPORT_LABEL},
        ),
        runs=[
            RunDoc(run_id=r.run_id, started_at=from_millis(r.first_ms), messages=r.messages)
            for r in runs
        ],
    )
    out: dict[str, Any] = json.loads(doc.model_dump_json())
    return out


# -- checking ------------------------------------------------------------------------------


def _field(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "doc"


def _validated(doc: Mapping[str, Any], text: str) -> SessionDocument:
    """``SessionDocument.model_validate_json(text)``, also for tool JSON as deep as a
    transcript keeps (``runwire.transcript.depth.MAX_VALUE_DEPTH``): the document
    holds it 7 levels down and pydantic's JSON parser stops at 200 levels in all,
    so then the document is validated with the tool parts' JSON values left out,
    and those are put back as the document gives them (checked below, as every
    part is)."""
    try:
        return SessionDocument.model_validate_json(text)
    except ValidationError as e:
        deep = any("recursion limit" in str(x.get("ctx", {}).get("error")) for x in e.errors())
        if not deep or not isinstance(doc.get("runs"), list):
            raise
    held: dict[tuple[int, int, int], Any] = {}
    runs: list[Any] = []
    for i, run in enumerate(doc["runs"]):
        if isinstance(run, Mapping) and isinstance(run.get("messages"), list):
            messages: list[Any] = []
            for j, message in enumerate(run["messages"]):
                if isinstance(message, Mapping) and isinstance(message.get("parts"), list):
                    parts = [_emptied(p, (i, j, k), held) for k, p in enumerate(message["parts"])]
                    message = {**message, "parts": parts}
                messages.append(message)
            run = {**run, "messages": messages}
        runs.append(run)
    parsed = SessionDocument.model_validate_json(json.dumps({**doc, "runs": runs}))
    for (i, j, k), value in held.items():
        message = parsed.runs[i].messages[j]
        part = message.parts[k]
        assert isinstance(part, ToolUsePart | ToolResultPart)
        parts = list(message.parts)
        parts[k] = part.model_copy(update={_VALUE[part.kind]: value})
        parsed.runs[i].messages[j] = message.model_copy(update={"parts": tuple(parts)})
    return parsed


_VALUE = {"tool_use": "input", "tool_result": "content"}
"""The field of each tool part that holds its JSON value."""


def _emptied(part: Any, at: tuple[int, int, int], held: dict[tuple[int, int, int], Any]) -> Any:
    """``part`` with its tool JSON value (an object or list) left out, kept in ``held``."""
    if not isinstance(part, Mapping) or part.get("kind") not in _VALUE:
        return part
    field = _VALUE[part["kind"]]
    value = part.get(field)
    if not isinstance(value, dict if field == "input" else list | dict):
        return part  # nothing deep: validated as it is
    held[at] = value
    return {**part, field: {} if field == "input" else None}


def parse_document(doc: Any) -> SessionDocument:
    """The checked document, or the first problem as an :class:`InputError` (see the module doc)."""
    if not isinstance(doc, Mapping):
        raise InputError("doc", f"an export document is a JSON object, not {type(doc).__name__}")
    if doc.get("format") != FORMAT:
        raise InputError("format", f"{doc.get('format')!r} is not {FORMAT!r}")
    if doc.get("version") != VERSION:
        raise InputError(
            "version",
            f"version {doc.get('version')!r} cannot be read (this runwire reads {VERSION})",
        )
    try:
        text = json.dumps(doc, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InputError("doc", f"not JSON ({e})") from None
    try:
        # From JSON text, so thinking bytes are read as the base64 the export wrote.
        parsed = _validated(doc, text)
    except ValidationError as e:
        first = e.errors()[0]
        raise InputError(_field(first["loc"]), first["msg"]) from None
    for key, value in parsed.session.metadata.items():
        check_key(key, "session.metadata")
        require_json(value, f"session.metadata.{key}")
    seen: set[str] = set()
    for i, run in enumerate(parsed.runs):
        where = f"runs[{i}]"
        if run.run_id in seen:
            raise InputError(f"{where}.run_id", f"{run.run_id!r} appears twice")
        seen.add(run.run_id)
        fields = [f"{where}.messages[{j}]" for j in range(len(run.messages))]
        for message, at in zip(run.messages, fields, strict=True):
            to_message(
                message.role, list(message.parts), field=f"{at}.parts", role_field=f"{at}.role"
            )
        check_run(run.run_id, [], run.messages, fields, token="check")
        _check_canonical(run, where)
    return parsed


def _check_canonical(run: RunDoc, where: str) -> None:
    """Refuse messages the ledger would merge: the import must give back what it was given."""
    payloads = check_run(run.run_id, [], run.messages, ["-"] * len(run.messages), token="canon")
    events = run_events(run.run_id, "check", Caller(), payloads, token="canon", at=now())
    built = build_messages_from_events(events, run.run_id)
    for j, (a, b) in enumerate(zip(built, run.messages, strict=False)):
        if a != b:
            raise InputError(
                f"{where}.messages[{j}]",
                "not canonical: consecutive messages of one role merge into one "
                "(and consecutive text parts into one)",
            )
    if len(built) != len(run.messages):
        raise InputError(f"{where}.messages", "not canonical: messages of one role in a row")


# -- import ----------------------------------------------------------------------------------


def derived_id(digest: str, what: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{digest}/{what}"))


async def _already(backend: SessionBackend, candidates: Sequence[str], digest: str) -> str | None:
    for candidate in candidates:
        info = await backend.describe(candidate)
        if info is not None and not info.deleted and info.labels.get(IMPORT_LABEL) == digest:
            return candidate
    return None


async def _run_ids(
    backend: SessionBackend, doc: SessionDocument, target: str, digest: str, keep_ids: bool
) -> list[str]:
    out: list[str] = []
    renamed = target != doc.session.session_id
    for i, run in enumerate(doc.runs):
        known = await backend.find_run(run.run_id) if not renamed else None
        if renamed:
            out.append(derived_id(digest, f"run/{run.run_id}"))
        elif known is None or known.session_id == target:
            out.append(run.run_id)  # free, or ours from an import cut short
        elif keep_ids:
            raise ImportConflictError(
                f"runs[{i}].run_id", f"run {run.run_id!r} exists in another session"
            )
        else:
            out.append(derived_id(digest, f"run/{run.run_id}"))
    return out


async def import_session(
    backend: SessionBackend,
    doc: Any,
    *,
    user_id: str | FromDocument | None = FROM_DOCUMENT,
    tenant: str | FromDocument | None = FROM_DOCUMENT,
    keep_ids: bool = False,
    skipped: Mapping[str, int] | None = None,
) -> ImportResult:
    """Recreate the session of ``doc`` in ``backend`` (see the module contract).

    The session belongs to ``user_id`` / ``tenant``, each taken from the
    document unless given.
    """
    parsed = parse_document(doc)
    digest = parsed.digest()
    owner = Caller(
        user_id=parsed.session.user_id if isinstance(user_id, FromDocument) else user_id,
        tenant=parsed.session.tenant if isinstance(tenant, FromDocument) else tenant,
    )
    message_count = sum(len(r.messages) for r in parsed.runs)
    original = parsed.session.session_id
    derived = derived_id(digest, "session")
    done = await _already(backend, [original] if keep_ids else [original, derived], digest)
    if done is not None:
        return ImportResult(
            done,
            False,
            len(parsed.runs),
            message_count,
            done != original,
            dict(skipped or {}),
            owner,
        )
    target = original
    if await backend.describe(original) is not None:
        if keep_ids:
            raise ImportConflictError(
                "session.session_id", f"session {original!r} exists (or was deleted)"
            )
        target = derived
        if await backend.describe(derived) is not None:
            raise ImportConflictError(
                "session.session_id", f"the derived id {derived!r} is taken too"
            )
    run_ids = await _run_ids(backend, parsed, target, digest, keep_ids)
    token = f"import:{digest}"
    base = now()
    for i, (run, run_id) in enumerate(zip(parsed.runs, run_ids, strict=True)):
        payloads: list[EventPayload] = check_run(
            run_id, [], run.messages, ["-"] * len(run.messages), token=token
        )
        events = run_events(
            run_id,
            target,
            owner,
            payloads,
            token=token,
            # Runs are ordered by the time of their first event: keep the document's order.
            at=base + timedelta(milliseconds=2 * i),
            source="import",
            labels={IMPORT_LABEL: digest},
        )
        await backend.write_run(events)
    closing: list[EventPayload] = [
        SessionCreated(user_id=owner.user_id, metadata=parsed.session.metadata)
    ]
    if parsed.session.status == "ended":
        closing.append(SessionEnded(reason="imported as ended"))
    at = base + timedelta(milliseconds=2 * len(parsed.runs))
    labels = {**parsed.session.labels, IMPORT_LABEL: digest}
    await backend.write_session_events(
        [
            session_event(p, target, owner, token=token, index=i, labels=labels, at=at)
            for i, p in enumerate(closing)
        ]
    )
    return ImportResult(
        target,
        True,
        len(parsed.runs),
        message_count,
        target != original,
        dict(skipped or {}),
        owner,
    )
