"""The event models: one envelope, one frozen payload model per event type.

Contract:
- ``Event`` is the envelope every record on the wire carries; ``payload`` is the
  typed body and its class always matches ``type`` (checked on construction).
- Run events (everything that is not a session, memory or checkpoint event)
  need a ``run_id``; session events need a ``session_id``; memory and
  checkpoint events need neither (a checkpoint event names its thread in its
  payload, and the thread is its record key). Live events (``live_*``: the
  live topic, keyed by run) need a ``run_id`` too.
  ``EventType.stream`` says which topic a type belongs to.
- ``occurred_at`` is timezone-aware UTC with millisecond precision (what Avro's
  ``timestamp-millis`` keeps), so an event equals itself after a round trip.
- JSON values (tool input, tool result content, metadata and memory values) are
  plain Python JSON values here and JSON text on the wire, numbers exact (big
  ints, ``Decimal`` where a float cannot write the number: see
  :mod:`runwire.contract.jsonvalues`); a value JSON cannot hold is refused with
  an error naming the field.
- Models mirror ``schemas/<type>.v<N>.avsc`` one to one (a unit test enforces
  it). Adding an event type: add the enum member, its payload model (named in
  CamelCase of the type) to ``PAYLOAD_TYPES`` and a ``<type>.v1.avsc`` file.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal, Self, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails

from runwire.contract import ids, jsonvalues, limits


class Stream(StrEnum):
    """Which log (topic) an event type belongs to."""

    RUN = "run"
    SESSION = "session"
    MEMORY = "memory"
    CHECKPOINT = "checkpoint"
    LIVE = "live"
    """Live views of a run (streamed pieces, tool execution): never canonical."""


class EventType(StrEnum):
    RUN_STARTED = "run_started"
    RUN_STATUS_CHANGED = "run_status_changed"
    RUN_COMPLETED = "run_completed"
    RUN_FAILED = "run_failed"
    RUN_CANCELED = "run_canceled"
    USER_MESSAGE = "user_message"
    THINKING = "thinking"
    ASSISTANT_TEXT = "assistant_text"
    TOOL_USE = "tool_use"
    TOOL_RESULT = "tool_result"
    PLANNER_NOTE = "planner_note"
    USAGE = "usage"
    CONTEXT_SEEDED = "context_seeded"
    CONTEXT_COMPACTED = "context_compacted"
    FRAMEWORK_ITEM = "framework_item"
    ITEM_POPPED = "item_popped"
    SESSION_CREATED = "session_created"
    SESSION_METADATA_SET = "session_metadata_set"
    SESSION_ENDED = "session_ended"
    SESSION_CLEARED = "session_cleared"
    SESSION_DELETED = "session_deleted"
    SESSION_WRITER_CLAIMED = "session_writer_claimed"
    SESSION_WRITER_RELEASED = "session_writer_released"
    MEMORY_SET = "memory_set"
    MEMORY_DELETED = "memory_deleted"
    CHECKPOINT_PUT = "checkpoint_put"
    CHECKPOINT_WRITES = "checkpoint_writes"
    CHECKPOINT_THREAD_DELETED = "checkpoint_thread_deleted"
    CHECKPOINT_RUNS_DELETED = "checkpoint_runs_deleted"
    CHECKPOINT_PRUNED = "checkpoint_pruned"
    LIVE_CHUNK = "live_chunk"
    LIVE_TOOL_STARTED = "live_tool_started"
    LIVE_TOOL_FINISHED = "live_tool_finished"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_DECIDED = "approval_decided"
    SESSION_FORKED = "session_forked"
    USER_ERASED = "user_erased"

    @property
    def stream(self) -> Stream:
        return _STREAMS[self]


def _stream_of(event_type: EventType) -> Stream:
    if event_type is EventType.USER_ERASED:  # the receipt lives beside the user's memory
        return Stream.MEMORY
    if event_type.value.startswith("session_"):
        return Stream.SESSION
    if event_type.value.startswith("memory_"):
        return Stream.MEMORY
    if event_type.value.startswith("checkpoint_"):
        return Stream.CHECKPOINT
    if event_type.value.startswith("live_"):
        return Stream.LIVE
    return Stream.RUN


# Looked up for every published and consumed event: computed once.
_STREAMS = {t: _stream_of(t) for t in EventType}


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    AWAITING_TOOLS = "awaiting_tools"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


TERMINAL_EVENTS: Mapping[EventType, RunStatus] = MappingProxyType(
    {
        EventType.RUN_COMPLETED: RunStatus.COMPLETED,
        EventType.RUN_FAILED: RunStatus.FAILED,
        EventType.RUN_CANCELED: RunStatus.CANCELED,
    }
)
"""The events that end a run, and the status each ends it in."""


class RunPhase(StrEnum):
    PROMPTED = "prompted"
    PLANNING = "planning"
    EXECUTING_TOOLS = "executing_tools"
    SYNTHESIZING = "synthesizing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


MemoryScope = Literal["session", "user", "agent", "global"]


def _require_json(value: Any) -> Any:
    """``value`` in the exact JSON form (:func:`runwire.contract.jsonvalues.canonical`).

    Refuses what JSON cannot hold (sets, bytes, tuples, non-str keys, NaN and
    Infinity, other objects), naming the place inside the value.
    """
    try:
        return jsonvalues.canonical(value)
    except jsonvalues.JsonValueError as e:
        raise ValueError(f"not a JSON value: {e}") from None


JsonValue = Annotated[Any, AfterValidator(_require_json)]
"""A JSON value (None, bool, number, str, list, dict with str keys)."""

JsonObject = Annotated[dict[str, Any], AfterValidator(_require_json)]


class EventPayload(BaseModel):
    """Base of every payload model; ``event_type`` is the type it belongs to.

    Bytes (redacted thinking) are base64 in JSON, so any bytes survive JSON.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64"
    )

    event_type: ClassVar[EventType]


# -- run lifecycle -----------------------------------------------------------


class RunStarted(EventPayload):
    event_type = EventType.RUN_STARTED

    agent_id: str | None = None
    parent_run_id: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class RunStatusChanged(EventPayload):
    event_type = EventType.RUN_STATUS_CHANGED

    status: RunStatus
    phase: RunPhase | None = None
    reason: str | None = None


class RunCompleted(EventPayload):
    event_type = EventType.RUN_COMPLETED

    stop_reason: str | None = None


class RunFailed(EventPayload):
    event_type = EventType.RUN_FAILED

    error_kind: str
    message: str
    retryable: bool = False


class RunCanceled(EventPayload):
    event_type = EventType.RUN_CANCELED

    reason: str | None = None


# -- transcript --------------------------------------------------------------


class UserMessage(EventPayload):
    """A user's turn: its text parts, in order."""

    event_type = EventType.USER_MESSAGE

    parts: list[str]


class Thinking(EventPayload):
    """One thinking part: ``text`` + ``signature``, or ``redacted`` bytes.

    ``index`` orders thinking parts within one assistant message; ``final`` is
    true on the last one.
    """

    event_type = EventType.THINKING

    text: str | None = None
    signature: str | None = None
    redacted: bytes | None = None
    index: int = 0
    final: bool = True


class AssistantText(EventPayload):
    event_type = EventType.ASSISTANT_TEXT

    text: str


class ToolUse(EventPayload):
    event_type = EventType.TOOL_USE

    id: str
    name: str
    input: JsonObject = Field(default_factory=dict)


class ToolResult(EventPayload):
    event_type = EventType.TOOL_RESULT

    tool_use_id: str
    content: JsonValue = None
    is_error: bool = False


class PlannerNote(EventPayload):
    event_type = EventType.PLANNER_NOTE

    text: str


class Usage(EventPayload):
    """Tokens one model call used (``usage.v2``: ``reasoning_tokens`` added).

    ``input_tokens`` are the prompt tokens billed at the input price (cache
    reads and writes apart); ``output_tokens`` include ``reasoning_tokens``.
    """

    event_type = EventType.USAGE

    model: str
    provider: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


class ContextSeeded(EventPayload):
    """What a run was given from its session's history before its first model call.

    Written once per run (before the model is called) so that a replay gives
    the model the same input however much the session grew since, and an
    audit can see what the model was shown. ``runs`` is a JSON array, oldest
    first, of ``{"run_id", "partition", "first_offset", "last_offset",
    "first_message", "message_count"}``: the run's events at offsets
    ``first_offset..last_offset`` of ``partition`` of the run-events topic,
    folded into canonical messages, give ``message_count`` messages from
    index ``first_message`` on. ``digest`` is the SHA-256 (hex) of the
    canonical JSON of the assembled history (``message_count`` messages,
    ``token_count`` tokens as measured); ``policy`` is the context policy
    applied and ``provider`` the provider whose rules the window was cut for.
    See :mod:`runwire.context`.
    """

    event_type = EventType.CONTEXT_SEEDED

    runs: JsonValue = Field(default_factory=list)
    message_count: int
    token_count: int = 0
    digest: str
    policy: JsonObject = Field(default_factory=dict)
    provider: str


class ContextCompacted(EventPayload):
    """Older turns of a run's history, replaced in the model's view by a summary.

    Written in the run's log with (and before) its ``context_seeded``; the
    seeded history is the summary (as a user / assistant pair) followed by the
    runs ``context_seeded`` lists. ``span`` is a JSON array like
    ``context_seeded``'s ``runs``: exactly the messages summarized, whole
    turns only; ``span_digest`` the SHA-256 of their canonical JSON;
    ``fingerprint`` names the compaction policy and the model that made the
    summary; ``reused_from`` the ``event_id`` of the compaction whose summary
    this one reuses (same fingerprint, same span), else null. The originals
    stay in the log. See :mod:`runwire.context.compaction`.
    """

    event_type = EventType.CONTEXT_COMPACTED

    fingerprint: str
    span: JsonValue = Field(default_factory=list)
    span_digest: str
    summary: str
    reused_from: str | None = None


class FrameworkItem(EventPayload):
    """An item an agent framework stored in a session, kept exactly as it was given.

    ``item`` is the framework's item (for the OpenAI Agents SDK a Responses API
    input item) as a JSON value; ``framework`` names whose it is
    (``openai_agents``). ``events`` is how many of the run's canonical
    transcript events right before this one (in the same batch) stand for the
    item: 0 when it has no place in a canonical transcript (reasoning, hosted
    tool calls...), and it is then kept only here. See
    :mod:`runwire.transcript.items`.
    """

    event_type = EventType.FRAMEWORK_ITEM

    framework: str
    item: JsonValue = None
    events: int = 0


class ItemPopped(EventPayload):
    """The framework item written by event ``item_event_id`` of this run is taken
    back (the Agents SDK's ``pop_item``): the log keeps both, projections hide
    the item and the canonical events that stand for it."""

    event_type = EventType.ITEM_POPPED

    item_event_id: str


class ApprovalRequested(EventPayload):
    """Tool call ``tool_use_id`` (named ``tool_name``) waits for a person's decision.

    Written by the orchestrator in the same batch as the answer that makes the
    call, *before* its ``tool_use`` (so every reader knows the call is held
    before it sees it); no tool runs it until an ``approval_decided`` approves.
    """

    event_type = EventType.APPROVAL_REQUESTED

    tool_use_id: str
    tool_name: str


class ApprovalDecided(EventPayload):
    """A person's decision on a held tool call; the first one for a call counts.

    A denial becomes an error ``tool_result`` (caused by this event) that the
    model reads, with ``reason`` when given.
    """

    event_type = EventType.APPROVAL_DECIDED

    tool_use_id: str
    approved: bool
    reason: str | None = None
    decided_by: str | None = None


# -- session -----------------------------------------------------------------


class SessionCreated(EventPayload):
    event_type = EventType.SESSION_CREATED

    user_id: str | None = None
    metadata: JsonObject = Field(default_factory=dict)


class SessionMetadataSet(EventPayload):
    event_type = EventType.SESSION_METADATA_SET

    key: str
    value: JsonValue = None


class SessionEnded(EventPayload):
    event_type = EventType.SESSION_ENDED

    reason: str | None = None


class SessionCleared(EventPayload):
    event_type = EventType.SESSION_CLEARED


class SessionDeleted(EventPayload):
    event_type = EventType.SESSION_DELETED


class SessionWriterClaimed(EventPayload):
    """A writer asks to be the session's one writer (:mod:`runwire.sessions.versions`)."""

    event_type = EventType.SESSION_WRITER_CLAIMED

    holder: str
    expected_version: int | None = None
    lease_ms: int | None = None


class SessionWriterReleased(EventPayload):
    """The session's writer lets go; ``committed``: it wrote, the version moves on."""

    event_type = EventType.SESSION_WRITER_RELEASED

    holder: str
    committed: bool = True


class SessionForked(EventPayload):
    """The session begins with ``parent_session_id``'s history up to a point (the end
    of its turn ``turn``, or a log position of one of its runs): the runs
    ``run_ids`` (in order), the last one up to ``through_offset``, those in
    ``cuts`` up to their offset (v2: a fork of a fork cut inside its prefix),
    the others whole; shared, not copied. ``turn``: the turn the prefix ends in."""

    event_type = EventType.SESSION_FORKED

    parent_session_id: str
    turn: int
    run_ids: list[str]
    through_offset: int
    cuts: dict[str, int] = Field(default_factory=dict)


# -- memory ------------------------------------------------------------------


class MemorySet(EventPayload):
    event_type = EventType.MEMORY_SET

    scope: MemoryScope
    owner: str
    key: str
    value: JsonValue = None


class MemoryDeleted(EventPayload):
    event_type = EventType.MEMORY_DELETED

    scope: MemoryScope
    owner: str
    key: str


class UserErased(EventPayload):
    """The erasure receipt of a user: its keys and its sessions' keys are destroyed.

    On the memory topic (clear), keyed like a ``user`` entry of ``owner`` with
    the empty key; ``key_ids`` / ``session_ids``: all destroyed so far."""

    event_type = EventType.USER_ERASED

    user_id: str
    owner: str
    key_ids: list[str]
    session_ids: list[str]


# -- checkpoints (a LangGraph checkpointer's log; see runwire.checkpoint) --------


class CheckpointPut(EventPayload):
    """A checkpoint of a thread, with the channel values that changed in it.

    ``checkpoint`` is the checkpoint without its channel values (id, ts,
    channel_versions, versions_seen, ...); ``metadata`` its metadata. ``values``
    is a JSON array describing the changed channels, in order, whose bytes lie
    one after the other in ``data``: ``{"channel", "version", "type", "size"}``
    for a whole value (``type`` the serializer's tag), or ``{"channel",
    "version", "base", "keep", "items": [[type, size], ...]}`` for a list
    stored as items: the first ``keep`` items of version ``base`` of the same
    channel (``base`` null: none), then ``items``.
    """

    event_type = EventType.CHECKPOINT_PUT

    thread_id: str
    checkpoint_ns: str = ""
    checkpoint_id: str
    parent_checkpoint_id: str | None = None
    checkpoint: JsonObject
    metadata: JsonObject = Field(default_factory=dict)
    values: JsonValue = Field(default_factory=list)
    data: bytes


class CheckpointWrites(EventPayload):
    """Pending writes of one task against a checkpoint.

    ``writes`` is a JSON array of ``{"idx", "channel", "type", "size"}``, whose
    bytes lie one after the other in ``data``.
    """

    event_type = EventType.CHECKPOINT_WRITES

    thread_id: str
    checkpoint_ns: str = ""
    checkpoint_id: str
    task_id: str
    task_path: str = ""
    writes: JsonValue = Field(default_factory=list)
    data: bytes


class CheckpointThreadDeleted(EventPayload):
    """Every checkpoint, value and write of the thread is gone."""

    event_type = EventType.CHECKPOINT_THREAD_DELETED

    thread_id: str


class CheckpointRunsDeleted(EventPayload):
    """The thread's checkpoints written by these runs (metadata ``run_id``) and their writes are gone."""

    event_type = EventType.CHECKPOINT_RUNS_DELETED

    thread_id: str
    run_ids: list[str] = Field(default_factory=list)


class CheckpointPruned(EventPayload):
    """``keep_latest``: only the newest checkpoint of each namespace stays; ``delete``: none."""

    event_type = EventType.CHECKPOINT_PRUNED

    thread_id: str
    strategy: str = "keep_latest"


# -- live (the live topic: for live views only, never part of a transcript) -----


class LiveChunk(EventPayload):
    """Streamed pieces of the assistant message answering ``causation_id``.

    ``stream_id`` names one model call attempt: a retry (or another
    orchestrator after a crash) streams the answer again under a new id, and a
    reader starts that answer over. ``seq`` counts the stream's records from 0,
    so a gap says pieces were lost. ``deltas`` is a JSON array of
    ``{"kind", "index", "text"}`` objects (``tool_use_id`` and ``tool_name`` for
    ``tool_input``): :class:`runwire.providers.base.StreamDelta` as JSON.
    """

    event_type = EventType.LIVE_CHUNK

    stream_id: str
    seq: int
    deltas: JsonValue = Field(default_factory=list)


class LiveToolStarted(EventPayload):
    """A tool runner began executing a tool call (``causation_id``: the tool_use event)."""

    event_type = EventType.LIVE_TOOL_STARTED

    tool_use_id: str
    name: str


class LiveToolFinished(EventPayload):
    """A tool runner finished a tool call; its ``tool_result`` follows on the run-events topic."""

    event_type = EventType.LIVE_TOOL_FINISHED

    tool_use_id: str
    name: str
    is_error: bool = False
    duration_ms: int = 0


Payload = (
    RunStarted
    | RunStatusChanged
    | RunCompleted
    | RunFailed
    | RunCanceled
    | UserMessage
    | Thinking
    | AssistantText
    | ToolUse
    | ToolResult
    | PlannerNote
    | Usage
    | ContextSeeded
    | ContextCompacted
    | FrameworkItem
    | ItemPopped
    | SessionCreated
    | SessionMetadataSet
    | SessionEnded
    | SessionCleared
    | SessionDeleted
    | SessionWriterClaimed
    | SessionWriterReleased
    | MemorySet
    | MemoryDeleted
    | CheckpointPut
    | CheckpointWrites
    | CheckpointThreadDeleted
    | CheckpointRunsDeleted
    | CheckpointPruned
    | LiveChunk
    | LiveToolStarted
    | LiveToolFinished
    | ApprovalRequested
    | ApprovalDecided
    | SessionForked
    | UserErased
)

PAYLOAD_TYPES: dict[EventType, type[EventPayload]] = {
    cls.event_type: cls for cls in get_args(Payload)
}
"""The payload model of every event type."""


def _utc_millis(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("occurred_at must be timezone-aware (UTC)")
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _under_payload(error: ValidationError) -> ValidationError:
    """``error`` with every location prefixed by ``payload`` (so it names the field)."""
    details: list[InitErrorDetails] = []
    for e in error.errors():
        detail: InitErrorDetails = {
            "type": e["type"],
            "loc": ("payload", *e["loc"]),
            "input": e["input"],
        }
        if "ctx" in e:
            detail["ctx"] = e["ctx"]
        details.append(detail)
    try:
        return ValidationError.from_exception_data("Event", details)
    except (KeyError, TypeError, ValueError):  # an error type pydantic-core cannot rebuild
        return error


def now() -> datetime:
    """The current time as an ``occurred_at`` value (UTC, milliseconds)."""
    return _utc_millis(datetime.now(UTC))


class Event(BaseModel):
    """The envelope of every runwire event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: Annotated[str, AfterValidator(ids.canonical_event_id)]
    run_id: str | None = None
    session_id: str | None = None
    agent_id: str | None = None
    turn_id: str | None = None
    user_id: str | None = None
    tenant: str | None = None
    type: EventType
    occurred_at: Annotated[datetime, AfterValidator(_utc_millis)]
    producer: str
    causation_id: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    payload: Payload

    @model_validator(mode="before")
    @classmethod
    def _payload_from_type(cls, data: Any) -> Any:
        """Resolve a raw payload by ``type``; fill ``type`` from a payload model."""
        if not isinstance(data, dict):
            return data
        payload = data.get("payload")
        kind = data.get("type")
        if isinstance(payload, EventPayload):
            if kind is None:
                return {**data, "type": payload.event_type}
            return data
        if kind is None:
            return data
        try:
            payload_cls = PAYLOAD_TYPES[EventType(kind)]
        except ValueError:
            return data  # the field validator reports the bad type
        try:
            return {**data, "payload": payload_cls.model_validate(payload or {})}
        except ValidationError as e:
            raise _under_payload(e) from None

    @model_validator(mode="after")
    def _check_envelope(self) -> Self:
        expected = PAYLOAD_TYPES[self.type]
        if type(self.payload) is not expected:
            raise ValueError(
                f"payload is {type(self.payload).__name__} but type {self.type.value!r} "
                f"needs {expected.__name__}"
            )
        stream = self.type.stream
        if stream in (Stream.RUN, Stream.LIVE) and not self.run_id:
            raise ValueError(f"run_id is required for {self.type.value} events")
        if stream is Stream.SESSION and not self.session_id:
            raise ValueError(f"session_id is required for {self.type.value} events")
        # What every store can hold; raises limits.InputError (a ContractError) as itself.
        limits.check_event(self)
        return self

    @classmethod
    def create(
        cls,
        payload: EventPayload,
        *,
        run_id: str | None = None,
        session_id: str | None = None,
        agent_id: str | None = None,
        turn_id: str | None = None,
        user_id: str | None = None,
        tenant: str | None = None,
        producer: str = "runwire",
        causation_id: str | None = None,
        labels: dict[str, str] | None = None,
        event_id: str | None = None,
        index: int | None = None,
        occurred_at: datetime | None = None,
    ) -> Event:
        """Build an event around ``payload``.

        ``event_id`` defaults to a deterministic id when ``run_id``,
        ``causation_id`` and ``index`` are all given (a retried producer makes
        the same id, so consumers can drop the duplicate), else a fresh UUIDv7.
        """
        if event_id is None:
            if run_id is not None and causation_id is not None and index is not None:
                event_id = ids.deterministic_event_id(run_id, causation_id, index)
            else:
                event_id = ids.new_event_id()
        return cls(
            event_id=event_id,
            run_id=run_id,
            session_id=session_id,
            agent_id=agent_id,
            turn_id=turn_id,
            user_id=user_id,
            tenant=tenant,
            type=payload.event_type,
            occurred_at=occurred_at or now(),
            producer=producer,
            causation_id=causation_id,
            labels=labels or {},
            payload=payload,
        )

    @property
    def stream(self) -> Stream:
        return self.type.stream
