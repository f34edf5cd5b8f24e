"""Provider responses -> canonical assistant parts, on the SDKs' own response
models; and encode -> decode round trips for random assistant messages."""

from __future__ import annotations

import base64
import functools
from typing import Any

import anthropic.types
import botocore.session
import openai.types.chat
import pytest
from botocore.validate import ParamValidator
from hypothesis import given, settings

from runwire.errors import ProviderError
from runwire.providers.encoders import (
    TokenUsage,
    ToolSpec,
    anthropic_messages,
    bedrock_converse,
    openai_chat,
)
from runwire.transcript.ledger import Ledger
from runwire.transcript.messages import (
    Message,
    Part,
    TextPart,
    ThinkingPart,
    ToolUsePart,
)
from tests.support.transcript_strategies import transcripts

TOOLS = [ToolSpec(name="svc.lookup"), ToolSpec(name="calc"), ToolSpec(name="search")]
LOOKUP = "svc_lookup_cf14cc31"


def chat_completion(message: dict[str, Any], usage: dict[str, Any] | None = None) -> Any:
    return openai.types.chat.ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-x",
            "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
            "usage": usage,
        }
    )


def anthropic_message(content: list[dict[str, Any]]) -> Any:
    return anthropic.types.Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": content,
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 11,
                "output_tokens": 7,
                "cache_read_input_tokens": 5,
                "cache_creation_input_tokens": 3,
            },
        }
    )


@functools.cache
def converse_output_shape() -> Any:
    return (
        botocore.session.get_session()
        .get_service_model("bedrock-runtime")
        .operation_model("Converse")
        .output_shape
    )


def converse_response(content: list[dict[str, Any]]) -> dict[str, Any]:
    """A ``converse`` response, checked against botocore's output shape."""
    response = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": "tool_use",
        "usage": {
            "inputTokens": 11,
            "outputTokens": 7,
            "totalTokens": 18,
            "cacheReadInputTokens": 5,
            "cacheWriteInputTokens": 3,
        },
        "metrics": {"latencyMs": 12},
    }
    report = ParamValidator().validate(response, converse_output_shape())
    assert not report.has_errors(), report.generate_report()
    return response


PARTS: list[Part] = [
    ThinkingPart(text="plan", signature="sig/+="),
    ThinkingPart(redacted=b"opaque-blob"),
    TextPart(text="Looking up."),
    ToolUsePart(id="tu_1", name="svc.lookup", input={"id": "P-7"}),
    ToolUsePart(id="tu_2", name="calc", input={}),
]


# -- OpenAI --------------------------------------------------------------------------


def test_openai_completion_decodes_to_text_then_tool_uses_with_canonical_names() -> None:
    completion = chat_completion(
        {
            "role": "assistant",
            "content": "Looking up.",
            "reasoning_content": "unsigned reasoning is not kept",
            "tool_calls": [
                {
                    "id": "tu_1",
                    "type": "function",
                    "function": {"name": LOOKUP, "arguments": '{"id": "P-7"}'},
                },
                {"id": "tu_2", "type": "function", "function": {"name": "calc", "arguments": ""}},
            ],
        },
        usage={
            "prompt_tokens": 11,
            "completion_tokens": 7,
            "total_tokens": 18,
            "prompt_tokens_details": {"cached_tokens": 5},
        },
    )
    assert openai_chat.decode_response(completion, tools=TOOLS) == PARTS[2:]
    # The 5 cached tokens are inside OpenAI's 11 and priced apart: 6 at the input price.
    assert openai_chat.decode_usage(completion) == TokenUsage(
        input_tokens=6, output_tokens=7, cache_read_tokens=5
    )


@pytest.mark.parametrize(
    "arguments",
    [
        '{"id": ',
        "[1, 2]",
        # Deeper than a transcript keeps a tool input (its ledger would fail the run).
        '{"a":' + "[" * 200 + "]" * 200 + "}",
    ],
)
def test_openai_unusable_tool_arguments_are_a_retriable_provider_error(arguments: str) -> None:
    completion = chat_completion(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "calc", "arguments": arguments},
                }
            ],
        }
    )
    with pytest.raises(ProviderError) as info:
        openai_chat.decode_response(completion)
    assert info.value.retriable
    assert info.value.kind == "invalid_tool_arguments"


def test_openai_refusal_is_kept_as_text() -> None:
    completion = chat_completion({"role": "assistant", "content": None, "refusal": "I can't."})
    assert openai_chat.decode_response(completion) == [TextPart(text="I can't.")]


# -- Anthropic ----------------------------------------------------------------------


def test_anthropic_message_decodes_block_by_block_in_order() -> None:
    message = anthropic_message(
        [
            {"type": "thinking", "thinking": "plan", "signature": "sig/+="},
            {"type": "redacted_thinking", "data": "opaque-blob"},
            {"type": "text", "text": "Looking up."},
            {"type": "tool_use", "id": "tu_1", "name": LOOKUP, "input": {"id": "P-7"}},
            {"type": "tool_use", "id": "tu_2", "name": "calc", "input": {}},
        ]
    )
    assert anthropic_messages.decode_response(message, tools=TOOLS) == PARTS
    assert anthropic_messages.decode_usage(message) == TokenUsage(
        input_tokens=11, output_tokens=7, cache_read_tokens=5, cache_write_tokens=3
    )


def test_anthropic_block_a_transcript_cannot_keep_is_refused() -> None:
    message = anthropic_message(
        [{"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {"q": "x"}}]
    )
    with pytest.raises(ProviderError) as info:
        anthropic_messages.decode_response(message)
    assert not info.value.retriable
    assert "server_tool_use" in str(info.value)


# -- Bedrock ------------------------------------------------------------------------


def test_converse_output_decodes_block_by_block_in_order() -> None:
    response = converse_response(
        [
            {"reasoningContent": {"reasoningText": {"text": "plan", "signature": "sig/+="}}},
            {"reasoningContent": {"redactedContent": b"opaque-blob"}},
            {"text": "Looking up."},
            {"toolUse": {"toolUseId": "tu_1", "name": LOOKUP, "input": {"id": "P-7"}}},
            {"toolUse": {"toolUseId": "tu_2", "name": "calc", "input": {}}},
        ]
    )
    assert bedrock_converse.decode_response(response, tools=TOOLS) == PARTS
    assert bedrock_converse.decode_usage(response) == TokenUsage(
        input_tokens=11, output_tokens=7, cache_read_tokens=5, cache_write_tokens=3
    )


def test_converse_redacted_content_as_base64_json_text_is_decoded_to_the_same_bytes() -> None:
    raw = bytes(range(256))
    response = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"reasoningContent": {"redactedContent": base64.b64encode(raw).decode()}}
                ],
            }
        }
    }
    assert bedrock_converse.decode_response(response) == [ThinkingPart(redacted=raw)]


def test_converse_unknown_block_is_refused() -> None:
    response = converse_response([{"citationsContent": {"content": [{"text": "x"}]}}])
    with pytest.raises(ProviderError):
        bedrock_converse.decode_response(response)


# -- round trips: what we send back is what the provider gave us ----------------------


def assistants(messages: list[Message]) -> list[Message]:
    return [m for m in messages if m.role == "assistant"]


def refeed(parts: list[Part]) -> list[Message]:
    """The decoded parts through a ledger, as the orchestrator keeps them."""
    ledger = Ledger()
    ledger.append_user_text("q")
    for part in parts:
        ledger.append_part(part)
    return ledger.build_messages()[1:]


@settings(max_examples=100, deadline=None)
@given(transcripts(thinking=True))
def test_bedrock_assistant_messages_survive_encode_then_decode(messages: list[Message]) -> None:
    for message in assistants(messages):
        [encoded] = bedrock_converse.encode_messages([message])
        decoded = bedrock_converse.decode_response(
            converse_response(encoded["content"]), tools=TOOLS
        )
        assert refeed(decoded) == [message]


@settings(max_examples=100, deadline=None)
@given(transcripts(thinking=True))
def test_anthropic_assistant_messages_survive_encode_then_decode(messages: list[Message]) -> None:
    for message in assistants(messages):
        # Anthropic's redacted data is text; store it as its UTF-8 bytes
        message = Message(
            role="assistant",
            parts=tuple(
                ThinkingPart(redacted=base64.b64encode(p.redacted))
                if isinstance(p, ThinkingPart) and p.redacted
                else p
                for p in message.parts
            ),
        )
        [encoded] = anthropic_messages.encode_messages([message])
        decoded = anthropic_messages.decode_response(
            anthropic_message(encoded["content"]), tools=TOOLS
        )
        assert refeed(decoded) == [message]


@settings(max_examples=100, deadline=None)
@given(transcripts())
def test_openai_assistant_messages_survive_encode_then_decode_minus_thinking(
    messages: list[Message],
) -> None:
    for message in assistants(messages):
        kept = tuple(p for p in message.parts if not isinstance(p, ThinkingPart))
        if not kept:
            continue
        [encoded] = openai_chat.encode_messages([message])
        decoded = openai_chat.decode_response(chat_completion(encoded), tools=TOOLS)
        assert refeed(decoded) == [Message(role="assistant", parts=kept)]
