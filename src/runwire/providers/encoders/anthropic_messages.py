"""Canonical messages <-> Anthropic Messages API.

Encoding contract:
- One Anthropic message per canonical message, one content block per part,
  in the same order: ``thinking`` (text + signature), ``redacted_thinking``
  (``data``), ``text``, ``tool_use``, ``tool_result`` (with ``is_error``).
- Signatures go out exactly as stored. Redacted thinking is stored as the
  UTF-8 bytes of the ``data`` string Anthropic returned, so it goes back as
  the very same string; bytes that are not UTF-8 did not come from Anthropic
  and are refused with :class:`EncodingError`.
- Tool result content is text: strings as they are, other JSON values as
  compact JSON with every digit. Tool input holding a number a float cannot
  carry is refused with :class:`EncodingError`: the SDK writes the request
  with Python's ``json``, which would round it (docs/json-numbers.md).
- ``thinking`` is the thinking budget in tokens: it adds
  ``{"type": "enabled", "budget_tokens": thinking}``.
- Tool names that providers refuse go out as :func:`wire_tool_name`;
  ``decode_response(..., tools=...)`` maps them back.

Decoding contract: ``decode_response`` turns a Message's content blocks into
parts in the order given; a block a transcript cannot keep (server tools,
citations-only blocks...) raises a non-retriable :class:`ProviderError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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

PROVIDER = "anthropic"


def encode_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The Messages API ``messages`` list for ``messages``."""
    return [
        {"role": m.role, "content": [_block(p, i) for p in m.parts]} for i, m in enumerate(messages)
    ]


def encode_request(
    messages: Sequence[Message],
    *,
    model: str,
    max_tokens: int,
    system: str | None = None,
    tools: Sequence[ToolSpec] = (),
    thinking: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The body of ``POST /v1/messages`` (``client.messages.create(**body)``).

    There is no ``temperature``: the Messages API the installed SDK speaks has
    no such field (its request type is what the tests check against).
    """
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "messages": encode_messages(messages),
    }
    if system:
        body["system"] = system
    if tools:
        body["tools"] = [_tool(t) for t in tools]
    if thinking is not None:
        body["thinking"] = {"type": "enabled", "budget_tokens": thinking}
    if extra:
        body.update(extra)
    return body


def decode_response(resp: Any, *, tools: Sequence[ToolSpec] = ()) -> list[Part]:
    """Assistant parts of a Messages API response (a ``Message`` or its JSON)."""
    names = wire_names(tools)
    parts: list[Part] = []
    for raw in as_mapping(resp).get("content") or []:
        block = as_mapping(raw)
        kind = block.get("type")
        if kind == "thinking":
            parts.append(ThinkingPart(text=block["thinking"], signature=block["signature"]))
        elif kind == "redacted_thinking":
            parts.append(ThinkingPart(redacted=block["data"].encode("utf-8")))
        elif kind == "text":
            if block["text"]:
                parts.append(TextPart(text=block["text"]))
        elif kind == "tool_use":
            input_ = block.get("input") or {}
            if not isinstance(input_, dict):
                raise unsupported(
                    PROVIDER, f"tool_use {block['id']!r} whose input is not an object"
                )
            parts.append(
                ToolUsePart(
                    id=block["id"], name=names.get(block["name"], block["name"]), input=input_
                )
            )
        else:
            raise unsupported(PROVIDER, f"a {kind!r} content block")
    return parts


def decode_usage(resp: Any) -> TokenUsage:
    """Token counts of a message. ``input_tokens`` already leaves the cache's
    tokens out; thinking is in ``output_tokens`` and not reported apart
    (``reasoning_tokens`` stays 0)."""
    usage = as_mapping(resp).get("usage") or {}
    return TokenUsage(
        input_tokens=usage.get("input_tokens") or 0,
        output_tokens=usage.get("output_tokens") or 0,
        cache_read_tokens=usage.get("cache_read_input_tokens") or 0,
        cache_write_tokens=usage.get("cache_creation_input_tokens") or 0,
    )


def _block(part: Part, index: int) -> dict[str, Any]:
    if isinstance(part, ThinkingPart):
        if part.redacted:
            try:
                data = part.redacted.decode("utf-8")
            except UnicodeDecodeError as e:
                raise EncodingError(
                    f"message {index}: redacted thinking bytes are not UTF-8, so they are not "
                    "an Anthropic redacted_thinking data string"
                ) from e
            return {"type": "redacted_thinking", "data": data}
        return {"type": "thinking", "thinking": part.text or "", "signature": part.signature or ""}
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ToolUsePart):
        return {
            "type": "tool_use",
            "id": part.id,
            "name": wire_tool_name(part.name),
            "input": require_float_numbers(
                PROVIDER, part.input, f"the input of tool_use {part.id!r}"
            ),
        }
    return _result(part)


def _result(part: ToolResultPart) -> dict[str, Any]:
    return {
        "type": "tool_result",
        "tool_use_id": part.tool_use_id,
        "content": json_text(part.content),
        "is_error": part.is_error,
    }


def _tool(spec: ToolSpec) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": wire_tool_name(spec.name), "input_schema": spec.input_schema}
    if spec.description:
        tool["description"] = spec.description
    return tool
