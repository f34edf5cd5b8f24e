"""One event of every type with non-default values, and hypothesis strategies for events."""

from __future__ import annotations

import string
from datetime import UTC, datetime
from typing import Any, Literal

from hypothesis import strategies as st

from runwire.contract import ids
from runwire.contract.events import (
    PAYLOAD_TYPES,
    ApprovalDecided,
    ApprovalRequested,
    AssistantText,
    CheckpointPruned,
    CheckpointPut,
    CheckpointRunsDeleted,
    CheckpointThreadDeleted,
    CheckpointWrites,
    ContextCompacted,
    ContextSeeded,
    Event,
    EventPayload,
    EventType,
    FrameworkItem,
    ItemPopped,
    LiveChunk,
    LiveToolFinished,
    LiveToolStarted,
    MemoryDeleted,
    MemorySet,
    PlannerNote,
    RunCanceled,
    RunCompleted,
    RunFailed,
    RunPhase,
    RunStarted,
    RunStatus,
    RunStatusChanged,
    SessionCleared,
    SessionCreated,
    SessionDeleted,
    SessionEnded,
    SessionForked,
    SessionMetadataSet,
    SessionWriterClaimed,
    SessionWriterReleased,
    Stream,
    Thinking,
    ToolResult,
    ToolUse,
    Usage,
    UserErased,
    UserMessage,
)
from runwire.contract.jsonvalues import stored_problem
from runwire.contract.limits import MAX_TOKENS

PAYLOADS: dict[EventType, EventPayload] = {
    p.event_type: p
    for p in [
        RunStarted(agent_id="a1", parent_run_id="parent", labels={"tenant": "acme"}),
        RunStatusChanged(
            status=RunStatus.AWAITING_TOOLS, phase=RunPhase.EXECUTING_TOOLS, reason="x"
        ),
        RunCompleted(stop_reason="end_turn"),
        RunFailed(error_kind="provider", message="boom", retryable=True),
        RunCanceled(reason="user"),
        UserMessage(parts=["hello", "wörld ✓"]),
        Thinking(text="hmm", signature="sig==", redacted=b"\x00\xff\x10", index=2, final=False),
        AssistantText(text="hi"),
        ToolUse(id="toolu_1", name="weather.get", input={"city": "Paris", "n": [1, 2.5, None]}),
        ToolResult(tool_use_id="toolu_1", content={"temp": -3.5, "ok": True}, is_error=True),
        PlannerNote(text="plan"),
        ApprovalRequested(tool_use_id="toolu_1", tool_name="weather.get"),
        ApprovalDecided(tool_use_id="toolu_1", approved=False, reason="no", decided_by="ada"),
        Usage(
            model="m",
            provider="p",
            input_tokens=1,
            output_tokens=2,
            cache_read_tokens=3,
            cache_write_tokens=4,
        ),
        ContextSeeded(
            runs=[
                {
                    "run_id": "r0",
                    "partition": 2,
                    "first_offset": 5,
                    "last_offset": 9,
                    "first_message": 0,
                    "message_count": 4,
                }
            ],
            message_count=4,
            token_count=120,
            digest="ab" * 32,
            policy={"history_runs": 5},
            provider="anthropic",
        ),
        ContextCompacted(
            fingerprint="f" * 32,
            span=[
                {
                    "run_id": "r0",
                    "partition": 0,
                    "first_offset": 0,
                    "last_offset": 9,
                    "first_message": 0,
                    "message_count": 4,
                }
            ],
            span_digest="d" * 64,
            summary="The user is Alice.",
        ),
        FrameworkItem(
            framework="openai_agents",
            item={"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"},
            events=2,
        ),
        ItemPopped(item_event_id="0190a0b0-0000-7000-8000-000000000001"),
        SessionCreated(user_id="u1", metadata={"title": "chat", "tags": ["a"]}),
        SessionMetadataSet(key="title", value="new title"),
        SessionEnded(reason="done"),
        SessionCleared(),
        SessionDeleted(),
        SessionWriterClaimed(holder="w1", expected_version=3, lease_ms=30_000),
        SessionWriterReleased(holder="w1", committed=True),
        MemorySet(scope="user", owner="u1", key="lang", value={"pref": "fr"}),
        MemoryDeleted(scope="global", owner="-", key="lang"),
        CheckpointPut(
            thread_id="thread-1",
            checkpoint_ns="child:1",
            checkpoint_id="1f0-a",
            parent_checkpoint_id="1f0-9",
            checkpoint={"v": 4, "id": "1f0-a", "channel_versions": {"messages": "00002.5"}},
            metadata={"source": "loop", "step": 2},
            values=[{"channel": "messages", "version": "00002.5", "type": "msgpack", "size": 3}],
            data=b"\x93\x00\xff",
        ),
        CheckpointWrites(
            thread_id="thread-1",
            checkpoint_id="1f0-a",
            task_id="task-1",
            task_path="~__pregel_pull, agent",
            writes=[{"idx": 0, "channel": "messages", "type": "msgpack", "size": 1}],
            data=b"\xc0",
        ),
        CheckpointThreadDeleted(thread_id="thread-1"),
        CheckpointRunsDeleted(thread_id="thread-1", run_ids=["run-a", "run-b"]),
        CheckpointPruned(thread_id="thread-1", strategy="delete"),
        LiveChunk(
            stream_id="s-1",
            seq=3,
            deltas=[
                {"kind": "text", "index": 1, "text": "wörld"},
                {"kind": "tool_input", "index": 2, "text": '{"a"', "tool_use_id": "t1"},
            ],
        ),
        LiveToolStarted(tool_use_id="toolu_1", name="calculator"),
        LiveToolFinished(tool_use_id="toolu_1", name="calculator", is_error=True, duration_ms=12),
        SessionForked(
            parent_session_id="s-parent", turn=2, run_ids=["run-a", "run-b"], through_offset=17
        ),
        UserErased(
            user_id="u1", owner="acme::u1", key_ids=["user:acme::u1/ab12"], session_ids=["s-1"]
        ),
    ]
}
assert set(PAYLOADS) == set(EventType)

WHEN = datetime(2025, 6, 1, 12, 30, 45, 123000, tzinfo=UTC)


def sample_event(event_type: EventType, **envelope: Any) -> Event:
    """A full event of ``event_type`` (every envelope field set)."""
    fields: dict[str, Any] = {
        "run_id": "run-1",
        "session_id": "session-1",
        "agent_id": "agent-1",
        "turn_id": "turn-1",
        "user_id": "user-1",
        "tenant": "acme",
        "producer": "tests",
        "causation_id": "cause-1",
        "labels": {"priority": "high"},
        "occurred_at": WHEN,
    }
    fields.update(envelope)
    return Event.create(PAYLOADS[event_type], **fields)


# -- hypothesis ----------------------------------------------------------------

_ids = st.text(string.ascii_letters + string.digits + "-_:.", min_size=1, max_size=24)
# Texts without NUL: no store can hold it, so writers refuse it where it is stored
# (runwire.contract.limits); ids and label keys have no control characters.
_SURROGATES: list[Literal["Cs"]] = ["Cs"]
_texts = st.text(
    st.characters(exclude_categories=_SURROGATES, exclude_characters="\x00"), max_size=40
)
_longs = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_token_counts = st.integers(min_value=0, max_value=MAX_TOKENS)
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_texts, inner, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(_texts, json_values, max_size=5)
# What the stores keep (session and memory values): numbers Postgres numeric
# can hold exactly (no -0.0, bounded digits; contract.limits refuses others).
stored_json_values = json_values.filter(lambda v: stored_problem(v, "value") is None)
stored_json_objects = st.dictionaries(_texts, stored_json_values, max_size=5)
_labels = st.dictionaries(_ids, _texts, max_size=3)
_scopes = st.sampled_from(["session", "user", "agent", "global"])


def _memory_keys(scope: str) -> st.SearchStrategy[str]:
    """Keys of ``scope``'s entries: a user's is never empty (that key holds the
    user's erasure receipt, runwire.contract.limits)."""
    return _texts.filter(bool) if scope == "user" else _texts


_PAYLOAD_STRATEGIES: dict[EventType, st.SearchStrategy[Any]] = {
    EventType.RUN_STARTED: st.builds(
        RunStarted, agent_id=st.none() | _ids, parent_run_id=st.none() | _ids, labels=_labels
    ),
    EventType.RUN_STATUS_CHANGED: st.builds(
        RunStatusChanged,
        status=st.sampled_from(RunStatus),
        phase=st.none() | st.sampled_from(RunPhase),
        reason=st.none() | _texts,
    ),
    EventType.RUN_COMPLETED: st.builds(RunCompleted, stop_reason=st.none() | _texts),
    EventType.RUN_FAILED: st.builds(
        RunFailed, error_kind=_texts, message=_texts, retryable=st.booleans()
    ),
    EventType.RUN_CANCELED: st.builds(RunCanceled, reason=st.none() | _texts),
    EventType.USER_MESSAGE: st.builds(UserMessage, parts=st.lists(_texts, max_size=3)),
    EventType.THINKING: st.builds(
        Thinking,
        text=st.none() | _texts,
        signature=st.none() | _texts,
        redacted=st.none() | st.binary(max_size=40),
        index=_longs,
        final=st.booleans(),
    ),
    EventType.ASSISTANT_TEXT: st.builds(AssistantText, text=_texts),
    EventType.TOOL_USE: st.builds(ToolUse, id=_ids, name=_texts, input=json_objects),
    EventType.TOOL_RESULT: st.builds(
        ToolResult, tool_use_id=_ids, content=json_values, is_error=st.booleans()
    ),
    EventType.PLANNER_NOTE: st.builds(PlannerNote, text=_texts),
    EventType.APPROVAL_REQUESTED: st.builds(ApprovalRequested, tool_use_id=_ids, tool_name=_texts),
    EventType.APPROVAL_DECIDED: st.builds(
        ApprovalDecided,
        tool_use_id=_ids,
        approved=st.booleans(),
        reason=st.none() | _texts,
        decided_by=st.none() | _ids,
    ),
    EventType.USAGE: st.builds(
        Usage,
        model=_texts,
        provider=_texts,
        input_tokens=_token_counts,
        output_tokens=_token_counts,
        cache_read_tokens=_token_counts,
        cache_write_tokens=_token_counts,
    ),
    EventType.CONTEXT_SEEDED: st.builds(
        ContextSeeded,
        runs=json_values,
        message_count=_longs,
        token_count=_longs,
        digest=_texts,
        policy=json_objects,
        provider=_texts,
    ),
    EventType.CONTEXT_COMPACTED: st.builds(
        ContextCompacted,
        fingerprint=_texts,
        span=json_values,
        span_digest=_texts,
        summary=_texts,
        reused_from=st.none() | _texts,
    ),
    EventType.FRAMEWORK_ITEM: st.builds(
        FrameworkItem, framework=_texts, item=json_values, events=st.integers(0, 2**31)
    ),
    EventType.ITEM_POPPED: st.builds(ItemPopped, item_event_id=_texts),
    EventType.SESSION_CREATED: st.builds(
        SessionCreated, user_id=st.none() | _ids, metadata=stored_json_objects
    ),
    EventType.SESSION_METADATA_SET: st.builds(
        SessionMetadataSet, key=_texts, value=stored_json_values
    ),
    EventType.SESSION_ENDED: st.builds(SessionEnded, reason=st.none() | _texts),
    EventType.SESSION_CLEARED: st.builds(SessionCleared),
    EventType.SESSION_DELETED: st.builds(SessionDeleted),
    EventType.SESSION_WRITER_CLAIMED: st.builds(
        SessionWriterClaimed,
        holder=_ids,
        expected_version=st.none() | _longs,
        lease_ms=st.none() | _longs,
    ),
    EventType.SESSION_WRITER_RELEASED: st.builds(
        SessionWriterReleased, holder=_ids, committed=st.booleans()
    ),
    EventType.SESSION_FORKED: st.builds(
        SessionForked,
        parent_session_id=_ids,
        turn=st.integers(1, 2**31),
        run_ids=st.lists(_ids, min_size=1, max_size=4),
        through_offset=st.integers(0, 2**62),
        cuts=st.dictionaries(_ids, st.integers(0, 2**62), max_size=3),
    ),
    EventType.MEMORY_SET: _scopes.flatmap(
        lambda scope: st.builds(
            MemorySet,
            scope=st.just(scope),
            owner=_texts,
            key=_memory_keys(scope),
            value=stored_json_values,
        )
    ),
    EventType.MEMORY_DELETED: _scopes.flatmap(
        lambda scope: st.builds(
            MemoryDeleted, scope=st.just(scope), owner=_texts, key=_memory_keys(scope)
        )
    ),
    EventType.CHECKPOINT_PUT: st.builds(
        CheckpointPut,
        thread_id=_ids,
        checkpoint_ns=_texts,
        checkpoint_id=_texts,
        parent_checkpoint_id=st.none() | _texts,
        checkpoint=json_objects,
        metadata=json_objects,
        values=json_values,
        data=st.binary(max_size=40),
    ),
    EventType.CHECKPOINT_WRITES: st.builds(
        CheckpointWrites,
        thread_id=_ids,
        checkpoint_ns=_texts,
        checkpoint_id=_texts,
        task_id=_texts,
        task_path=_texts,
        writes=json_values,
        data=st.binary(max_size=40),
    ),
    EventType.CHECKPOINT_THREAD_DELETED: st.builds(CheckpointThreadDeleted, thread_id=_ids),
    EventType.LIVE_CHUNK: st.builds(LiveChunk, stream_id=_texts, seq=_longs, deltas=json_values),
    EventType.LIVE_TOOL_STARTED: st.builds(LiveToolStarted, tool_use_id=_ids, name=_texts),
    EventType.LIVE_TOOL_FINISHED: st.builds(
        LiveToolFinished, tool_use_id=_ids, name=_texts, is_error=st.booleans(), duration_ms=_longs
    ),
    EventType.CHECKPOINT_RUNS_DELETED: st.builds(
        CheckpointRunsDeleted, thread_id=_ids, run_ids=st.lists(_texts, max_size=3)
    ),
    EventType.CHECKPOINT_PRUNED: st.builds(CheckpointPruned, thread_id=_ids, strategy=_texts),
    EventType.USER_ERASED: st.builds(
        UserErased,
        user_id=_ids,
        owner=_texts,
        key_ids=st.lists(_texts, max_size=3),
        session_ids=st.lists(_ids, max_size=3),
    ),
}
assert set(_PAYLOAD_STRATEGIES) == set(PAYLOAD_TYPES)

payloads: st.SearchStrategy[EventPayload] = st.one_of(*_PAYLOAD_STRATEGIES.values())
_times = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@st.composite
def events(draw: st.DrawFn) -> Event:
    payload = draw(payloads)
    stream = payload.event_type.stream
    return Event.create(
        payload,
        run_id=draw(_ids) if stream in (Stream.RUN, Stream.LIVE) else draw(st.none() | _ids),
        session_id=draw(_ids) if stream is Stream.SESSION else draw(st.none() | _ids),
        agent_id=draw(st.none() | _ids),
        turn_id=draw(st.none() | _ids),
        user_id=draw(st.none() | _ids),
        tenant=draw(st.none() | _ids),
        producer=draw(_ids),
        causation_id=draw(st.none() | _ids),
        labels=draw(_labels),
        event_id=draw(st.uuids().map(str) | st.builds(ids.new_event_id)),
        occurred_at=draw(_times),
    )
