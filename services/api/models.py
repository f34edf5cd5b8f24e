"""The bodies the API takes and gives (pydantic: validated in, documented in /openapi.json)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
)

from runwire.contract import limits
from runwire.contract.events import JsonValue
from runwire.contract.limits import IdText, LabelMap, StoredText
from runwire.services.api.exact_json import instant
from runwire.transcript.messages import Message

__all__ = [
    "CancelRequest",
    "Control",
    "IdPath",
    "LabelFilter",
    "PositionOut",
    "RunOut",
    "RunPage",
    "SessionOut",
    "SessionPage",
    "StartRunRequest",
    "StartRunResponse",
    "ToolResultIn",
    "ToolResultsRequest",
    "TranscriptOut",
]

MAX_PROMPT_CHARS = 200_000
Id = Field(min_length=1, max_length=limits.MAX_ID_CHARS)
SessionStatus = Literal["active", "ended"]

# Ids, labels and texts keep runwire.contract.limits (what every store can hold):
# a value over a limit is 422 naming the field, never a 500 from a store or a
# run the projections cannot apply.

IdPath = Annotated[
    IdText,
    Path(
        min_length=1,
        max_length=limits.MAX_ID_CHARS,
        description="1-200 characters, no control characters",
    ),
]
"""A path parameter that is an id (a run or session id)."""

Instant = Annotated[
    datetime,
    PlainSerializer(instant, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]
"""A time the API gives: RFC 3339, UTC, six fraction digits (:func:`.exact_json.instant`)."""


def _label_filters(items: list[str]) -> list[str]:
    for item in items:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise ValueError(f"{item!r:.60} is not KEY:VALUE")
        found = limits.label_problem({key: value})
        if found is not None:
            raise ValueError(f"{item!r:.60}: {found[1]}")
    return items


LabelFilter = Annotated[
    list[str],
    AfterValidator(_label_filters),
    Query(max_length=20, description="KEY:VALUE; repeat for several (all must match)"),
]
"""The ``label`` query parameter: labels a listing's items must all have."""


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)


# -- reads ---------------------------------------------------------------------------


class ErasureOut(_Out):
    """What erasing a session destroyed (its receipt is an event on the log)."""

    session_id: str
    receipt_event_id: str
    erased_key_ids: list[str]


class UserErasureOut(_Out):
    """What erasing the caller destroyed (its receipt, ``user_erased``, is an event on the log)."""

    user_id: str
    tenant: str | None
    receipt_event_id: str
    erased_at: Instant
    erased_key_ids: list[str]
    session_ids: list[str]


class SessionOut(_Out):
    """A session as the session index sees it."""

    session_id: str
    user_id: str | None
    tenant: str | None
    metadata: dict[str, Any]
    labels: dict[str, str]
    status: str
    created_at: Instant
    ended_at: Instant | None
    cleared_at: Instant | None
    last_activity_at: Instant
    run_count: int
    last_run_id: str | None
    last_run_at: Instant | None
    version: int = Field(
        0, description="writes committed under the single-writer fence (docs/sessions.md)"
    )
    writer: str | None = Field(None, description="who holds the session's write claim, if anyone")


class SessionPage(_Out):
    items: list[SessionOut]
    next_page: str | None = Field(description="pass as ?page= for the next page; null at the end")


class RunOut(_Out):
    """A run as the run-status store sees it (``log_*``: where its events lie)."""

    run_id: str
    session_id: str | None
    agent_id: str | None
    turn_id: str | None
    user_id: str | None
    parent_run_id: str | None
    status: str
    phase: str | None
    status_reason: str | None
    labels: dict[str, str]
    started_at: Instant
    updated_at: Instant
    ended_at: Instant | None
    message_count: int
    tool_call_count: int
    tool_error_count: int
    input_tokens: int
    output_tokens: int
    last_error: dict[str, Any] | None
    pending_tool_uses: list[str]
    awaiting_approval: list[str] = Field(
        default_factory=list, description="tool calls waiting for a person's decision"
    )
    event_count: int
    log_partition: int
    first_offset: int
    last_offset: int


class TreeNode(_Out):
    depth: int = Field(description="0 for the run asked for, 1 for its children, ...")
    run: RunOut


class RunTree(_Out):
    """A run and the child runs it started (agents called as tools), depth first."""

    items: list[TreeNode]


class RunPage(_Out):
    items: list[RunOut]
    next_page: str | None = Field(description="pass as ?page= for the next page; null at the end")


class TranscriptOut(_Out):
    """The run's canonical messages (thinking signatures and redacted bytes as stored)."""

    run_id: str
    status: str
    messages: list[Message]


class SessionHistoryOut(_Out):
    """A session's history as of the end of one of its turns (read from the log)."""

    session_id: str
    turn: int
    run_ids: list[str]
    messages: list[Message]


# -- writes --------------------------------------------------------------------------


class StartRunRequest(_In):
    """Start a run: the prompt becomes the run's first user message."""

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    agent_id: IdText | None = Field(default=None, min_length=1, max_length=limits.MAX_ID_CHARS)
    session_id: IdText | None = Field(
        default=None,
        min_length=1,
        max_length=limits.MAX_ID_CHARS,
        description="an existing session of the caller, or a new id; omitted: a new session",
    )
    turn_id: IdText | None = Field(default=None, min_length=1, max_length=limits.MAX_ID_CHARS)
    labels: LabelMap = Field(
        default_factory=dict,
        description=f"at most {limits.MAX_LABELS}; keys 1-{limits.MAX_LABEL_KEY_CHARS} "
        f"characters without control characters, values up to {limits.MAX_LABEL_VALUE_CHARS} "
        "characters without NUL",
    )

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the prompt is blank")
        return value

    @field_validator("session_id")
    @classmethod
    def _addressable(cls, value: str | None) -> str | None:
        # The session is read back at /v1/sessions/{session_id}: a '/' (even as
        # %2F) splits that path, and '.' or '..' are path steps clients resolve away.
        if value is not None and ("/" in value or value in (".", "..")):
            raise ValueError(f"{value!r:.60} cannot be a path segment: no '/', not '.' or '..'")
        return value


class PositionOut(_Out):
    """Where an event lies in the log."""

    topic: str
    partition: int
    offset: int


class StartRunResponse(_Out):
    run_id: str
    session_id: str
    position: PositionOut = Field(description="where the run's first event lies")
    visible: bool = Field(
        description="true when the run-status store and session index already show the run"
    )


class ForkRequest(_In):
    """The fork point: ``turn``, or ``at_run`` and ``at_offset`` (exactly one of the two)."""

    turn: int | None = Field(
        default=None, ge=1, description="fork at the end of this turn (1 = the first)"
    )
    at_run: IdText | None = Field(
        default=None,
        min_length=1,
        max_length=limits.MAX_ID_CHARS,
        description="fork inside this run of the session's history ...",
    )
    at_offset: int | None = Field(
        default=None,
        ge=0,
        description="... as of this log offset of its partition (never inside an open tool call)",
    )


class ForkResponse(_Out):
    session_id: str = Field(description="the new session's id")
    parent_session_id: str
    turn: int = Field(description="the turn the shared prefix ends in")
    at_run: str | None = None
    at_offset: int | None = Field(
        default=None, description="the run's last record at or before the offset asked for"
    )
    visible: bool = Field(description="true when the session index already shows the fork")


class CancelRequest(_In):
    reason: StoredText | None = Field(default=None, max_length=2000)


class ToolResultIn(_In):
    tool_use_id: IdText = Id
    content: JsonValue = None
    is_error: bool = False


class ToolResultsRequest(_In):
    """Results for tool calls of the run that no registered tool answers."""

    results: list[ToolResultIn] = Field(min_length=1, max_length=100)

    @field_validator("results")
    @classmethod
    def _unique(cls, value: list[ToolResultIn]) -> list[ToolResultIn]:
        ids = [r.tool_use_id for r in value]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"tool_use_id repeated: {', '.join(repeated)}")
        return value


class DecisionRequest(_In):
    """A person's decision on a tool call held for approval."""

    approved: bool
    reason: StoredText | None = Field(default=None, max_length=2000)


class Control(_Out):
    """What a cancel or a resume wrote."""

    run_id: str
    positions: list[PositionOut]
