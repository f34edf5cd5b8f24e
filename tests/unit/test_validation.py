"""Provider validation: one test per rule, plus where the errors point."""

from __future__ import annotations

import pytest

from runwire.errors import ConfigurationError, ContractError
from runwire.transcript.errors import TranscriptValidationError
from runwire.transcript.messages import (
    Message,
    Part,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
)
from runwire.transcript.validation import PROVIDERS, find_violations, validate

THINK = ThinkingPart(text="plan", signature="sig")


def user(*parts: Part | str) -> Message:
    return Message(
        role="user", parts=tuple(TextPart(text=p) if isinstance(p, str) else p for p in parts)
    )


def assistant(*parts: Part | str) -> Message:
    return Message(
        role="assistant",
        parts=tuple(TextPart(text=p) if isinstance(p, str) else p for p in parts),
    )


def use(id: str, name: str = "search") -> ToolUsePart:
    return ToolUsePart(id=id, name=name, input={})


def res(id: str) -> ToolResultPart:
    return ToolResultPart(tool_use_id=id, content="ok")


def rules(
    messages: list[Message], provider: str = "anthropic", thinking: bool = False
) -> list[str]:
    return [v.rule for v in find_violations(messages, provider, thinking)]


def violated(
    messages: list[Message], provider: str = "anthropic", thinking: bool = False
) -> TranscriptValidationError:
    with pytest.raises(TranscriptValidationError) as info:
        validate(messages, provider, thinking, run_id="run-7")
    return info.value


GOOD = [
    user("find pumps"),
    assistant(THINK, "calling", use("a"), use("b")),
    user(res("a"), res("b"), "and hurry"),
    assistant(ThinkingPart(redacted=b"\x00"), "done"),
    user("thanks"),
]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("thinking", [False, True])
def test_a_good_multi_turn_transcript_passes_for_every_provider(
    provider: str, thinking: bool
) -> None:
    validate(GOOD, provider, thinking)
    assert find_violations(GOOD, provider, thinking) == []


def test_errors_name_the_run_the_message_index_and_the_rule() -> None:
    err = violated([*GOOD[:2], user(res("a"))])
    assert isinstance(err, ContractError)
    assert (err.run_id, err.index, err.rule) == ("run-7", 2, "partial_tool_results")
    for name in ("run-7", "message 2", "partial_tool_results"):
        assert name in str(err)


def test_unknown_provider_is_a_programming_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown provider"):
        validate(GOOD, "gemini", False)


def test_empty_transcript() -> None:
    err = violated([])
    assert (err.rule, err.index) == ("empty_transcript", None)


def test_first_message_must_be_user() -> None:
    err = violated([assistant("hello"), user("hi")])
    assert (err.rule, err.index) == ("first_message_not_user", 0)


def test_messages_alternate() -> None:
    err = violated([user("a"), user("b"), assistant("c")])
    assert (err.rule, err.index) == ("roles_not_alternating", 1)
    assert rules([user("a"), assistant("b"), assistant("c")]) == ["roles_not_alternating"]


def test_empty_message() -> None:
    err = violated([user("a"), Message(role="assistant", parts=())])
    assert (err.rule, err.index) == ("empty_message", 1)


def test_parts_not_allowed_for_the_role() -> None:
    assert rules([user("a", THINK)]) == ["part_not_allowed"]
    assert rules([user("a", use("x"))]) == ["part_not_allowed"]
    assert "part_not_allowed" in rules([user("a"), assistant("b", res("x"))])


def test_assistant_parts_are_thinking_then_text_then_tool_use() -> None:
    err = violated([user("a"), assistant("text first", THINK), user("b")])
    assert (err.rule, err.index) == ("assistant_part_order", 1)
    assert rules([user("a"), assistant(use("x"), "late"), user(res("x"))]) == [
        "assistant_part_order"
    ]


def test_user_message_holds_results_before_text() -> None:
    err = violated([user("a"), assistant(use("x")), user("text", res("x"))])
    assert (err.rule, err.index) == ("user_part_order", 2)


def test_thinking_needs_a_signature_or_redacted_bytes() -> None:
    err = violated([user("a"), assistant(ThinkingPart(text="unsigned"), "b")])
    assert (err.rule, err.index) == ("incomplete_thinking", 1)


@pytest.mark.parametrize("provider", ["anthropic", "bedrock"])
def test_with_thinking_an_assistant_tool_use_message_starts_with_thinking(provider: str) -> None:
    messages = [user("a"), assistant("no thinking", use("x")), user(res("x"))]
    err = violated(messages, provider, thinking=True)
    assert (err.rule, err.index) == ("thinking_not_first", 1)
    # without thinking, or without tool_use, it is fine
    validate(messages, provider, False)
    validate([user("a"), assistant("no thinking, no tools")], provider, True)


@pytest.mark.parametrize("provider", ["openai", "local"])
def test_thinking_first_is_not_required_by_other_providers(provider: str) -> None:
    validate([user("a"), assistant("plain", use("x")), user(res("x"))], provider, True)


def test_missing_tool_results() -> None:
    err = violated([user("a"), assistant(use("x"))])
    assert (err.rule, err.index) == ("missing_tool_results", 1)
    err = violated([user("a"), assistant(use("x")), user("no results here")])
    assert (err.rule, err.index) == ("missing_tool_results", 2)


def test_partial_tool_results() -> None:
    err = violated([user("a"), assistant(use("x"), use("y")), user(res("y"))])
    assert (err.rule, err.index) == ("partial_tool_results", 2)
    assert "'x'" in err.detail


def test_orphan_tool_result() -> None:
    err = violated([user("a"), assistant(use("x")), user(res("x"), res("zzz"))])
    assert (err.rule, err.index) == ("orphan_tool_result", 2)
    # a result after a message without tool_use, or in the first message
    assert rules([user("a"), assistant("no tools"), user(res("x"))]) == ["orphan_tool_result"]
    assert rules([user(res("x"))]) == ["orphan_tool_result"]


def test_duplicate_tool_result() -> None:
    err = violated([user("a"), assistant(use("x")), user(res("x"), res("x"))])
    assert (err.rule, err.index) == ("duplicate_tool_result", 2)


def test_empty_tool_result_id() -> None:
    err = violated([user("a"), assistant(use("x")), user(res("x"), res(""))])
    assert (err.rule, err.index) == ("empty_tool_result_id", 2)


def test_tool_use_ids_are_unique_in_the_run() -> None:
    messages = [
        user("a"),
        assistant(use("x")),
        user(res("x")),
        assistant(use("x")),
        user(res("x")),
    ]
    err = violated(messages)
    assert (err.rule, err.index) == ("duplicate_tool_use_id", 3)
    assert rules([user("a"), assistant(use("y"), use("y")), user(res("y"))]) == [
        "duplicate_tool_use_id"
    ]


def test_tool_use_needs_an_id_and_a_name() -> None:
    assert "empty_tool_use_id" in rules([user("a"), assistant(use("")), user("b")])
    assert rules([user("a"), assistant(use("x", name="")), user(res("x"))]) == ["empty_tool_name"]


def test_find_violations_lists_every_rule_in_message_order() -> None:
    messages = [assistant(use("x")), assistant("b")]
    found = find_violations(messages, "bedrock", True)
    assert [(v.index, v.rule) for v in found] == [
        (0, "first_message_not_user"),
        (0, "thinking_not_first"),
        (1, "missing_tool_results"),
        (1, "roles_not_alternating"),
    ]
