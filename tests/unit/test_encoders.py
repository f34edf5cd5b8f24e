"""Provider encoders: exact output for one multi-turn transcript, checked
against each provider's own SDK definitions (no network)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import botocore.session
import pytest
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from botocore.validate import ParamValidator
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming
from pydantic import TypeAdapter

from runwire.providers.encoders import (
    EncodingError,
    ToolSpec,
    anthropic_messages,
    bedrock_converse,
    openai_chat,
    wire_tool_name,
)
from runwire.transcript.messages import (
    Message,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
)
from runwire.transcript.validation import validate

REDACTED = b"EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"
LOOKUP = "svc_lookup_cf14cc31"  # wire name of "svc.lookup": "." is not allowed by providers

SYSTEM = "You are terse."
TOOLS = [
    ToolSpec(
        name="svc.lookup",
        description="Look a pump up.",
        input_schema={"type": "object", "properties": {"id": {"type": "string"}}},
    ),
    ToolSpec(
        name="calc", input_schema={"type": "object", "properties": {"expr": {"type": "string"}}}
    ),
]

TRANSCRIPT = [
    Message(role="user", parts=(TextPart(text="Find pump P-7 and compute 2+2"),)),
    Message(
        role="assistant",
        parts=(
            ThinkingPart(text="Need two tools.", signature="sig-A/+=="),
            TextPart(text="Looking up."),
            ToolUsePart(id="tu_1", name="svc.lookup", input={"id": "P-7"}),
            ToolUsePart(id="tu_2", name="calc", input={"expr": "2/0"}),
        ),
    ),
    Message(
        role="user",
        parts=(
            ToolResultPart(tool_use_id="tu_1", content={"status": "ok", "rpm": 1450}),
            ToolResultPart(tool_use_id="tu_2", content="division by zero", is_error=True),
        ),
    ),
    Message(
        role="assistant",
        parts=(
            ThinkingPart(redacted=REDACTED),
            ThinkingPart(text="Retry calc.", signature="sig-B"),
            ToolUsePart(id="tu_3", name="calc", input={"expr": "2+2"}),
        ),
    ),
    Message(
        role="user",
        parts=(ToolResultPart(tool_use_id="tu_3", content=4), TextPart(text="Be quick.")),
    ),
    Message(role="assistant", parts=(TextPart(text="P-7 runs at 1450 rpm; 2+2 is 4."),)),
    Message(role="user", parts=(TextPart(text="Thanks!"),)),
]


def materialize(value: Any) -> Any:
    """Drain the lazy iterators pydantic makes for ``Iterable[...]`` fields."""
    if isinstance(value, Mapping):
        return {k: materialize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [materialize(v) for v in value]
    if isinstance(value, Iterator):
        return [materialize(v) for v in value]
    return value


def assert_matches_sdk_type(adapter: TypeAdapter[Any], body: dict[str, Any]) -> None:
    """The SDK's request type accepts ``body`` and keeps every key and value:
    a key the SDK does not know would be dropped (TypedDicts ignore extras)
    and a wrong shape would fail or be coerced, so equality proves both."""
    assert materialize(adapter.validate_python(body)) == materialize(body)


def test_the_fixture_is_a_valid_transcript_for_every_provider() -> None:
    for provider in ("openai", "anthropic", "bedrock"):
        validate(TRANSCRIPT, provider, thinking_enabled=True)


# -- OpenAI Chat Completions -------------------------------------------------------

OPENAI_MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Find pump P-7 and compute 2+2"},
    {
        "role": "assistant",
        "content": "Looking up.",
        "tool_calls": [
            {
                "id": "tu_1",
                "type": "function",
                "function": {"name": LOOKUP, "arguments": '{"id":"P-7"}'},
            },
            {
                "id": "tu_2",
                "type": "function",
                "function": {"name": "calc", "arguments": '{"expr":"2/0"}'},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "tu_1", "content": '{"status":"ok","rpm":1450}'},
    {"role": "tool", "tool_call_id": "tu_2", "content": "Error: division by zero"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "tu_3",
                "type": "function",
                "function": {"name": "calc", "arguments": '{"expr":"2+2"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "tu_3", "content": "4"},
    {"role": "user", "content": "Be quick."},
    {"role": "assistant", "content": "P-7 runs at 1450 rpm; 2+2 is 4."},
    {"role": "user", "content": "Thanks!"},
]


def test_openai_request_is_exact() -> None:
    body = openai_chat.encode_request(
        TRANSCRIPT, model="gpt-x", system=SYSTEM, tools=TOOLS, max_tokens=512, thinking=2048
    )
    assert body == {
        "model": "gpt-x",
        "messages": OPENAI_MESSAGES,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": LOOKUP,
                    "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
                    "description": "Look a pump up.",
                },
            },
            {
                "type": "function",
                "function": {
                    "name": "calc",
                    "parameters": {"type": "object", "properties": {"expr": {"type": "string"}}},
                },
            },
        ],
        "max_completion_tokens": 512,
    }


def test_openai_request_matches_the_sdk_type() -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(CompletionCreateParamsNonStreaming)
    body = openai_chat.encode_request(
        TRANSCRIPT, model="gpt-x", system=SYSTEM, tools=TOOLS, max_tokens=512, temperature=0.2
    )
    assert_matches_sdk_type(adapter, body)
    # the check has teeth: a field the SDK does not know is caught
    with pytest.raises(AssertionError):
        assert_matches_sdk_type(adapter, {**body, "thinking": {"budget": 1}})


def test_openai_old_servers_get_max_tokens_and_extra_knobs() -> None:
    body = openai_chat.encode_request(
        TRANSCRIPT[:1],
        model="llama",
        max_tokens=64,
        max_tokens_field="max_tokens",
        extra={"reasoning_effort": "low"},
    )
    assert body == {
        "model": "llama",
        "messages": [{"role": "user", "content": "Find pump P-7 and compute 2+2"}],
        "max_tokens": 64,
        "reasoning_effort": "low",
    }


def test_openai_thinking_only_assistant_message_gets_empty_content() -> None:
    messages = [
        Message(role="user", parts=(TextPart(text="hi"),)),
        Message(role="assistant", parts=(ThinkingPart(text="t", signature="s"),)),
    ]
    assert openai_chat.encode_messages(messages)[1] == {"role": "assistant", "content": ""}


# -- Anthropic Messages ------------------------------------------------------------

ANTHROPIC_MESSAGES = [
    {"role": "user", "content": [{"type": "text", "text": "Find pump P-7 and compute 2+2"}]},
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Need two tools.", "signature": "sig-A/+=="},
            {"type": "text", "text": "Looking up."},
            {"type": "tool_use", "id": "tu_1", "name": LOOKUP, "input": {"id": "P-7"}},
            {"type": "tool_use", "id": "tu_2", "name": "calc", "input": {"expr": "2/0"}},
        ],
    },
    {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "tu_1",
                "content": '{"status":"ok","rpm":1450}',
                "is_error": False,
            },
            {
                "type": "tool_result",
                "tool_use_id": "tu_2",
                "content": "division by zero",
                "is_error": True,
            },
        ],
    },
    {
        "role": "assistant",
        "content": [
            {"type": "redacted_thinking", "data": REDACTED.decode()},
            {"type": "thinking", "thinking": "Retry calc.", "signature": "sig-B"},
            {"type": "tool_use", "id": "tu_3", "name": "calc", "input": {"expr": "2+2"}},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "tu_3", "content": "4", "is_error": False},
            {"type": "text", "text": "Be quick."},
        ],
    },
    {
        "role": "assistant",
        "content": [{"type": "text", "text": "P-7 runs at 1450 rpm; 2+2 is 4."}],
    },
    {"role": "user", "content": [{"type": "text", "text": "Thanks!"}]},
]


def test_anthropic_request_is_exact() -> None:
    body = anthropic_messages.encode_request(
        TRANSCRIPT, model="claude-x", system=SYSTEM, tools=TOOLS, max_tokens=4096, thinking=2048
    )
    assert body == {
        "model": "claude-x",
        "max_tokens": 4096,
        "messages": ANTHROPIC_MESSAGES,
        "system": "You are terse.",
        "tools": [
            {
                "name": LOOKUP,
                "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}},
                "description": "Look a pump up.",
            },
            {
                "name": "calc",
                "input_schema": {"type": "object", "properties": {"expr": {"type": "string"}}},
            },
        ],
        "thinking": {"type": "enabled", "budget_tokens": 2048},
    }


def test_anthropic_request_matches_the_sdk_type() -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(MessageCreateParamsNonStreaming)
    body = anthropic_messages.encode_request(
        TRANSCRIPT,
        model="claude-x",
        system=SYSTEM,
        tools=TOOLS,
        max_tokens=4096,
        thinking=2048,
    )
    assert_matches_sdk_type(adapter, body)
    # the check has teeth: this SDK's request type has no temperature
    with pytest.raises(AssertionError):
        assert_matches_sdk_type(adapter, {**body, "temperature": 1.0})
    bad = {**body, "messages": [{"role": "user", "content": [{"type": "tool_result"}]}]}
    with pytest.raises(Exception, match="tool_use_id"):
        materialize(adapter.validate_python(bad))


def test_anthropic_refuses_redacted_bytes_that_are_not_its_data_string() -> None:
    messages = [
        Message(role="user", parts=(TextPart(text="hi"),)),
        Message(role="assistant", parts=(ThinkingPart(redacted=b"\xff\xfe"),)),
    ]
    with pytest.raises(EncodingError, match="not UTF-8"):
        anthropic_messages.encode_messages(messages)


# -- Bedrock Converse --------------------------------------------------------------

BEDROCK_MESSAGES = [
    {"role": "user", "content": [{"text": "Find pump P-7 and compute 2+2"}]},
    {
        "role": "assistant",
        "content": [
            {
                "reasoningContent": {
                    "reasoningText": {"text": "Need two tools.", "signature": "sig-A/+=="}
                }
            },
            {"text": "Looking up."},
            {"toolUse": {"toolUseId": "tu_1", "name": LOOKUP, "input": {"id": "P-7"}}},
            {"toolUse": {"toolUseId": "tu_2", "name": "calc", "input": {"expr": "2/0"}}},
        ],
    },
    {
        "role": "user",
        "content": [
            {
                "toolResult": {
                    "toolUseId": "tu_1",
                    "content": [{"json": {"status": "ok", "rpm": 1450}}],
                    "status": "success",
                }
            },
            {
                "toolResult": {
                    "toolUseId": "tu_2",
                    "content": [{"text": "division by zero"}],
                    "status": "error",
                }
            },
        ],
    },
    {
        "role": "assistant",
        "content": [
            {"reasoningContent": {"redactedContent": REDACTED}},
            {"reasoningContent": {"reasoningText": {"text": "Retry calc.", "signature": "sig-B"}}},
            {"toolUse": {"toolUseId": "tu_3", "name": "calc", "input": {"expr": "2+2"}}},
        ],
    },
    {
        "role": "user",
        "content": [
            {
                "toolResult": {
                    "toolUseId": "tu_3",
                    "content": [{"text": "4"}],
                    "status": "success",
                }
            },
            {"text": "Be quick."},
        ],
    },
    {"role": "assistant", "content": [{"text": "P-7 runs at 1450 rpm; 2+2 is 4."}]},
    {"role": "user", "content": [{"text": "Thanks!"}]},
]


def converse_model() -> Any:
    return (
        botocore.session.get_session()
        .get_service_model("bedrock-runtime")
        .operation_model("Converse")
    )


def test_bedrock_request_is_exact() -> None:
    request = bedrock_converse.encode_request(
        TRANSCRIPT,
        model="anthropic.claude-x",
        system=SYSTEM,
        tools=TOOLS,
        max_tokens=4096,
        thinking=2048,
    )
    assert request == {
        "modelId": "anthropic.claude-x",
        "messages": BEDROCK_MESSAGES,
        "system": [{"text": "You are terse."}],
        "inferenceConfig": {"maxTokens": 4096},
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": LOOKUP,
                        "inputSchema": {
                            "json": {"type": "object", "properties": {"id": {"type": "string"}}}
                        },
                        "description": "Look a pump up.",
                    }
                },
                {
                    "toolSpec": {
                        "name": "calc",
                        "inputSchema": {
                            "json": {"type": "object", "properties": {"expr": {"type": "string"}}}
                        },
                    }
                },
            ]
        },
        "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 2048}},
    }
    # byte-exact: the very bytes object content survives, not a copy with other bytes
    assert request["messages"][3]["content"][0]["reasoningContent"]["redactedContent"] == REDACTED


def test_bedrock_request_passes_botocore_param_validation() -> None:
    request = bedrock_converse.encode_request(
        TRANSCRIPT,
        model="anthropic.claude-x",
        system=SYSTEM,
        tools=TOOLS,
        max_tokens=4096,
        thinking=2048,
        temperature=0.5,
    )
    shape = converse_model().input_shape
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()
    # the validator has teeth: a misspelt block is reported
    broken = {**request, "messages": [{"role": "user", "content": [{"txt": "x"}]}]}
    assert ParamValidator().validate(broken, shape).has_errors()


def test_bedrock_refuses_tool_blocks_without_tools() -> None:
    with pytest.raises(EncodingError, match="toolConfig"):
        bedrock_converse.encode_request(TRANSCRIPT, model="m")
    plain = [Message(role="user", parts=(TextPart(text="hi"),))]
    assert bedrock_converse.encode_request(plain, model="m") == {
        "modelId": "m",
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
    }


# -- tool names ----------------------------------------------------------------------


def test_wire_tool_names_fit_every_provider_and_stay_distinct() -> None:
    assert wire_tool_name("calc") == "calc"
    assert wire_tool_name("svc.lookup") == LOOKUP
    long = wire_tool_name("x" * 80)
    assert len(long) == 64
    names = {wire_tool_name(n) for n in ("a.b", "a_b", "a b", "a/b")}
    assert len(names) == 4
    assert all(len(n) <= 64 and n.replace("_", "").replace("-", "").isalnum() for n in names)
