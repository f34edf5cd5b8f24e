"""Validation properties: valid transcripts pass, broken ones never do, and the
ledger never builds a transcript that validation would refuse."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from runwire.contract.events import (
    AssistantText,
    Event,
    EventPayload,
    Thinking,
    ToolResult,
    ToolUse,
    UserMessage,
)
from runwire.transcript.errors import LedgerError
from runwire.transcript.ledger import TranscriptBuilder
from runwire.transcript.messages import (
    Message,
    Part,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
)
from runwire.transcript.validation import PROVIDERS, find_violations, validate
from tests.support.transcript_strategies import transcripts


@settings(max_examples=100, deadline=None)
@given(transcripts())
def test_valid_transcripts_pass_for_every_provider(messages: list[Message]) -> None:
    for provider in PROVIDERS:
        validate(messages, provider, thinking_enabled=False)


@settings(max_examples=100, deadline=None)
@given(transcripts(thinking=True))
def test_valid_thinking_transcripts_pass_with_thinking_on(messages: list[Message]) -> None:
    for provider in PROVIDERS:
        validate(messages, provider, thinking_enabled=True)


# -- breaking a valid transcript: each mutation and the rule it must trip ------------

Mutation = Callable[[list[Message], st.DataObject], list[Message]]


def _with_parts(message: Message, parts: Sequence[Part]) -> Message:
    return Message(role=message.role, parts=tuple(parts))


def _pick(data: st.DataObject, indexes: list[int]) -> int:
    assume(indexes)
    return data.draw(st.sampled_from(indexes))


def _result_messages(messages: list[Message]) -> list[int]:
    return [i for i, m in enumerate(messages) if m.tool_results()]


def drop_result(messages: list[Message], data: st.DataObject) -> list[Message]:
    i = _pick(data, _result_messages(messages))
    parts = list(messages[i].parts)
    del parts[data.draw(st.integers(0, len(messages[i].tool_results()) - 1))]
    if not parts:
        return messages[:i] + messages[i + 1 :]
    return [*messages[:i], _with_parts(messages[i], parts), *messages[i + 1 :]]


def duplicate_result(messages: list[Message], data: st.DataObject) -> list[Message]:
    i = _pick(data, _result_messages(messages))
    parts = list(messages[i].parts)
    parts.insert(0, parts[0])
    return [*messages[:i], _with_parts(messages[i], parts), *messages[i + 1 :]]


def orphan_result(messages: list[Message], data: st.DataObject) -> list[Message]:
    i = _pick(data, [i for i, m in enumerate(messages) if m.role == "user"])
    parts = [ToolResultPart(tool_use_id="orphan-id", content=None), *messages[i].parts]
    return [*messages[:i], _with_parts(messages[i], parts), *messages[i + 1 :]]


def empty_result_id(messages: list[Message], data: st.DataObject) -> list[Message]:
    i = _pick(data, _result_messages(messages))
    parts = list(messages[i].parts)
    parts[0] = ToolResultPart(tool_use_id="", content=None)
    return [*messages[:i], _with_parts(messages[i], parts), *messages[i + 1 :]]


def reuse_tool_use_id(messages: list[Message], data: st.DataObject) -> list[Message]:
    uses = [
        (i, j)
        for i, m in enumerate(messages)
        for j, p in enumerate(m.parts)
        if isinstance(p, ToolUsePart)
    ]
    assume(len(uses) >= 2)
    (_, _), (i, j) = uses[0], data.draw(st.sampled_from(uses[1:]))
    first = messages[uses[0][0]].parts[uses[0][1]]
    assert isinstance(first, ToolUsePart)
    parts = list(messages[i].parts)
    parts[j] = ToolUsePart(id=first.id, name="dup", input={})
    return [*messages[:i], _with_parts(messages[i], parts), *messages[i + 1 :]]


def repeat_role(messages: list[Message], data: st.DataObject) -> list[Message]:
    i = data.draw(st.integers(0, len(messages) - 1))
    extra = Message(role=messages[i].role, parts=(TextPart(text="again"),))
    return [*messages[: i + 1], extra, *messages[i + 1 :]]


def assistant_first(messages: list[Message], data: st.DataObject) -> list[Message]:
    return [Message(role="assistant", parts=(TextPart(text="hi"),)), *messages]


def drop_answer(messages: list[Message], data: st.DataObject) -> list[Message]:
    i = _pick(data, _result_messages(messages))
    return messages[:i] + messages[i + 1 :]


def tool_use_before_text(messages: list[Message], data: st.DataObject) -> list[Message]:
    candidates = [
        i
        for i, m in enumerate(messages)
        if m.role == "assistant" and m.tool_uses() and any(isinstance(p, TextPart) for p in m.parts)
    ]
    i = _pick(data, candidates)
    parts = list(messages[i].parts)
    text = next(p for p in parts if isinstance(p, TextPart))
    parts.remove(text)
    parts.append(text)
    return [*messages[:i], _with_parts(messages[i], parts), *messages[i + 1 :]]


MUTATIONS: dict[str, tuple[Mutation, set[str]]] = {
    "drop_result": (drop_result, {"partial_tool_results", "missing_tool_results"}),
    "duplicate_result": (duplicate_result, {"duplicate_tool_result"}),
    "orphan_result": (orphan_result, {"orphan_tool_result"}),
    "empty_result_id": (empty_result_id, {"empty_tool_result_id"}),
    "reuse_tool_use_id": (reuse_tool_use_id, {"duplicate_tool_use_id"}),
    "repeat_role": (repeat_role, {"roles_not_alternating"}),
    "assistant_first": (assistant_first, {"first_message_not_user"}),
    "drop_answer": (drop_answer, {"missing_tool_results"}),
    "tool_use_before_text": (tool_use_before_text, {"assistant_part_order"}),
}


@settings(max_examples=300, deadline=None)
@given(
    transcripts(max_turns=5),
    st.sampled_from(sorted(MUTATIONS)),
    st.sampled_from(PROVIDERS),
    st.data(),
)
def test_broken_transcripts_are_always_rejected(
    messages: list[Message], name: str, provider: str, data: st.DataObject
) -> None:
    mutate, expected = MUTATIONS[name]
    broken = mutate(messages, data)
    found = {v.rule for v in find_violations(broken, provider, thinking_enabled=False)}
    assert found & expected, f"{name} gave {found}"


@settings(max_examples=100, deadline=None)
@given(transcripts(thinking=True), st.sampled_from(["anthropic", "bedrock"]), st.data())
def test_tool_use_without_leading_thinking_is_rejected_when_thinking_is_on(
    messages: list[Message], provider: str, data: st.DataObject
) -> None:
    i = _pick(data, [i for i, m in enumerate(messages) if m.role == "assistant" and m.tool_uses()])
    parts = [p for p in messages[i].parts if not isinstance(p, ThinkingPart)]
    broken = [*messages[:i], _with_parts(messages[i], parts), *messages[i + 1 :]]
    found = {v.rule for v in find_violations(broken, provider, thinking_enabled=True)}
    assert "thinking_not_first" in found


# -- random event streams: what the ledger accepts, validation accepts --------------

_IDS = st.sampled_from(["a", "b", "c", "d", ""])
_payloads: st.SearchStrategy[EventPayload] = st.one_of(
    st.builds(UserMessage, parts=st.lists(st.sampled_from(["", "hi", "more"]), max_size=2)),
    st.builds(
        Thinking,
        text=st.sampled_from([None, "", "t"]),
        signature=st.sampled_from([None, "", "s"]),
        redacted=st.sampled_from([None, b"", b"\x01"]),
    ),
    st.builds(AssistantText, text=st.sampled_from(["", "x", "y"])),
    st.builds(ToolUse, id=_IDS, name=st.sampled_from(["search", ""])),
    st.builds(ToolResult, tool_use_id=_IDS, is_error=st.booleans()),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_payloads, max_size=25))
def test_the_ledger_only_builds_what_validation_accepts(payloads: list[EventPayload]) -> None:
    """Fold random events, skipping the refused ones as a projection would
    (dead letters). What comes out breaks no rule, except the ones an
    unfinished run may break: a run not yet started by the user, the last
    assistant message still awaiting its results, the last user message
    holding only some of them."""
    builder = TranscriptBuilder()
    for payload in payloads:
        with contextlib.suppress(LedgerError):
            builder.apply(Event.create(payload, run_id="r", producer="test"))
    messages = builder.messages()
    last = len(messages) - 1
    for v in find_violations(messages, "anthropic", thinking_enabled=False):
        allowed = (
            v.rule in {"empty_transcript", "first_message_not_user"}
            or (v.rule == "missing_tool_results" and v.index == last)
            or (v.rule == "partial_tool_results" and v.index == last)
        )
        assert allowed, f"{v} in {messages}"
