"""Canonical messages <-> Amazon Bedrock Converse API (boto3 ``bedrock-runtime``).

Encoding contract:
- One Converse message per canonical message, one content block per part, in
  the same order: ``reasoningContent`` (``reasoningText{text, signature}``, or
  ``redactedContent`` bytes exactly as stored), ``text``, ``toolUse``,
  ``toolResult`` (``status`` ``"error"`` for error results, else
  ``"success"``).
- Tool result content: a JSON object goes as ``{"json": ...}``, a string as
  ``{"text": ...}``, any other JSON value as compact JSON text; so does an
  object holding a number a float cannot carry (boto3 writes ``json`` blocks
  with Python's ``json``, which would round it): the text keeps every digit.
- Tool input holding such a number is refused with :class:`EncodingError`
  (a ``toolUse`` input must be a JSON document; docs/json-numbers.md).
- Converse refuses ``toolUse`` / ``toolResult`` blocks without a
  ``toolConfig``, so a transcript with tools and no ``tools`` given is refused
  here with :class:`EncodingError` rather than by the service.
- ``thinking`` is the budget in tokens, sent the way Bedrock passes it to
  Anthropic models: ``additionalModelRequestFields.thinking``.
- Tool names that providers refuse go out as :func:`wire_tool_name`;
  ``decode_response(..., tools=...)`` maps them back.

Decoding contract: ``decode_response`` turns ``output.message.content`` into
parts in the order given; an unknown block raises a non-retriable
:class:`ProviderError`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from runwire.contract.jsonvalues import has_decimal
from runwire.providers.encoders.common import (
    EncodingError,
    TokenUsage,
    ToolSpec,
    as_mapping,
    json_text,
    require_float_numbers,
    unsupported,
    wire_names,
    wire_tool_name,
)
from runwire.transcript.messages import (
    Message,
    Part,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
)

__all__ = ["decode_response", "decode_usage", "encode_messages", "encode_request"]

PROVIDER = "bedrock"


def encode_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The Converse ``messages`` list for ``messages``."""
    return [{"role": m.role, "content": [_block(p) for p in m.parts]} for m in messages]


def encode_request(
    messages: Sequence[Message],
    *,
    model: str,
    max_tokens: int | None = None,
    system: str | None = None,
    tools: Sequence[ToolSpec] = (),
    thinking: int | None = None,
    temperature: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``bedrock_runtime.converse(**request)``."""
    if not tools and any(
        isinstance(p, ToolUsePart | ToolResultPart) for m in messages for p in m.parts
    ):
        raise EncodingError(
            "bedrock: the transcript holds tool_use/tool_result but no tools were given; "
            "Converse refuses tool blocks without a toolConfig"
        )
    request: dict[str, Any] = {"modelId": model, "messages": encode_messages(messages)}
    if system:
        request["system"] = [{"text": system}]
    inference: dict[str, Any] = {}
    if max_tokens is not None:
        inference["maxTokens"] = max_tokens
    if temperature is not None:
        inference["temperature"] = temperature
    if inference:
        request["inferenceConfig"] = inference
    if tools:
        request["toolConfig"] = {"tools": [_tool(t) for t in tools]}
    if thinking is not None:
        request["additionalModelRequestFields"] = {
            "thinking": {"type": "enabled", "budget_tokens": thinking}
        }
    if extra:
        request.update(extra)
    return request


def decode_response(resp: Any, *, tools: Sequence[ToolSpec] = ()) -> list[Part]:
    """Assistant parts of a ``converse`` response."""
    names = wire_names(tools)
    output = as_mapping(resp).get("output") or {}
    message = output.get("message") or {}
    parts: list[Part] = []
    for block in message.get("content") or []:
        if "reasoningContent" in block:
            parts.append(_reasoning(block["reasoningContent"]))
        elif "text" in block:
            if block["text"]:
                parts.append(TextPart(text=block["text"]))
        elif "toolUse" in block:
            use = block["toolUse"]
            input_ = use.get("input") or {}
            if not isinstance(input_, dict):
                raise unsupported(
                    PROVIDER, f"toolUse {use['toolUseId']!r} whose input is not an object"
                )
            parts.append(
                ToolUsePart(
                    id=use["toolUseId"], name=names.get(use["name"], use["name"]), input=input_
                )
            )
        else:
            raise unsupported(PROVIDER, f"a content block with {sorted(block)}")
    return parts


def decode_usage(resp: Any) -> TokenUsage:
    """Token counts of a Converse answer. ``inputTokens`` leaves the cache's
    tokens out (``totalTokens`` is the sum of all four); reasoning is in
    ``outputTokens`` and not reported apart (``reasoning_tokens`` stays 0)."""
    usage = as_mapping(resp).get("usage") or {}
    return TokenUsage(
        input_tokens=usage.get("inputTokens") or 0,
        output_tokens=usage.get("outputTokens") or 0,
        cache_read_tokens=usage.get("cacheReadInputTokens") or 0,
        cache_write_tokens=usage.get("cacheWriteInputTokens") or 0,
    )


def _reasoning(content: Mapping[str, Any]) -> ThinkingPart:
    if "redactedContent" in content:
        raw = content["redactedContent"]
        # boto3 hands blobs over as bytes; the raw JSON wire form is base64 text.
        return ThinkingPart(redacted=base64.b64decode(raw) if isinstance(raw, str) else bytes(raw))
    text = content.get("reasoningText") or {}
    return ThinkingPart(text=text.get("text", ""), signature=text.get("signature"))


def _block(part: Part) -> dict[str, Any]:
    if isinstance(part, ThinkingPart):
        if part.redacted:
            return {"reasoningContent": {"redactedContent": part.redacted}}
        reasoning: dict[str, Any] = {"text": part.text or ""}
        if part.signature:
            reasoning["signature"] = part.signature
        return {"reasoningContent": {"reasoningText": reasoning}}
    if isinstance(part, TextPart):
        return {"text": part.text}
    if isinstance(part, ToolUsePart):
        return {
            "toolUse": {
                "toolUseId": part.id,
                "name": wire_tool_name(part.name),
                "input": require_float_numbers(
                    PROVIDER, part.input, f"the input of tool_use {part.id!r}"
                ),
            }
        }
    return {"toolResult": _result(part)}


def _result(part: ToolResultPart) -> dict[str, Any]:
    if isinstance(part.content, dict) and not has_decimal(part.content):
        content: dict[str, Any] = {"json": part.content}
    else:
        content = {"text": json_text(part.content)}
    return {
        "toolUseId": part.tool_use_id,
        "content": [content],
        "status": "error" if part.is_error else "success",
    }


def _tool(spec: ToolSpec) -> dict[str, Any]:
    tool: dict[str, Any] = {
        "name": wire_tool_name(spec.name),
        "inputSchema": {"json": spec.input_schema},
    }
    if spec.description:
        tool["description"] = spec.description
    return {"toolSpec": tool}
