"""Canonical messages <-> OpenAI Chat Completions (also any OpenAI-compatible server).

Encoding contract:
- Messages keep their order; within a message, parts keep theirs.
- A user message becomes one ``tool`` message per tool_result (declaration
  order, as the ledger keeps them), then one ``user`` message with its text.
- An assistant message becomes one ``assistant`` message: its text as
  ``content`` and its tool_uses as ``tool_calls`` with JSON-text arguments.
- Thinking is dropped: Chat Completions has no field that takes reasoning
  back (a provider signature means nothing to OpenAI). An assistant message
  left with neither text nor tool calls gets empty content.
- Tool results are text: strings as they are, other JSON values as compact
  JSON; an error result is prefixed with ``"Error: "`` because the ``tool``
  message has no error flag.
- Tool names that providers refuse (``svc.search``) go out as
  :func:`wire_tool_name`; ``decode_response(..., tools=...)`` maps them back.
- ``thinking`` (a budget) has no Chat Completions equivalent and is ignored;
  pass ``extra={"reasoning_effort": ...}`` for reasoning models.

Decoding contract: ``decode_response`` turns a chat completion's first
choice into assistant parts in the order the message gives them: text
(``content``, else ``refusal``), then one tool_use per function tool call.
Reasoning fields some compatible servers add (``reasoning_content``) carry no
signature and are not kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from runwire.providers.encoders.common import (
    TokenUsage,
    ToolSpec,
    as_mapping,
    json_text,
    parse_tool_arguments,
    unsupported,
    wire_names,
    wire_tool_name,
)
from runwire.transcript.messages import (
    Message,
    Part,
    TextPart,
    ToolResultPart,
    ToolUsePart,
)

__all__ = ["decode_response", "decode_usage", "encode_messages", "encode_request"]

PROVIDER = "openai"
ERROR_PREFIX = "Error: "


def encode_messages(
    messages: Sequence[Message], *, system: str | None = None
) -> list[dict[str, Any]]:
    """The Chat Completions ``messages`` list for ``messages``."""
    out: list[dict[str, Any]] = []
    if system:
        out.append({"role": "system", "content": system})
    for message in messages:
        if message.role == "user":
            out.extend(_user(message))
        else:
            out.append(_assistant(message))
    return out


def encode_request(
    messages: Sequence[Message],
    *,
    model: str,
    system: str | None = None,
    tools: Sequence[ToolSpec] = (),
    max_tokens: int | None = None,
    thinking: int | None = None,
    temperature: float | None = None,
    max_tokens_field: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The body of ``POST /chat/completions`` (``client.chat.completions.create(**body)``).

    ``max_tokens_field`` picks the field for servers that only know the old
    ``max_tokens``; ``thinking`` is accepted for a uniform signature and ignored.
    """
    del thinking  # no thinking budget in Chat Completions (see the module doc)
    body: dict[str, Any] = {"model": model, "messages": encode_messages(messages, system=system)}
    if tools:
        body["tools"] = [_tool(t) for t in tools]
    if max_tokens is not None:
        body[max_tokens_field] = max_tokens
    if temperature is not None:
        body["temperature"] = temperature
    if extra:
        body.update(extra)
    return body


def decode_response(resp: Any, *, tools: Sequence[ToolSpec] = ()) -> list[Part]:
    """Assistant parts of a chat completion (a ``ChatCompletion`` or its JSON)."""
    body = as_mapping(resp)
    choices = body.get("choices") or []
    if not choices:
        raise unsupported(PROVIDER, "no choices")
    message = as_mapping(choices[0]).get("message") or {}
    names = wire_names(tools)
    parts: list[Part] = []
    text = message.get("content") or message.get("refusal")
    if text:
        parts.append(TextPart(text=text))
    for call in message.get("tool_calls") or []:
        if call.get("type", "function") != "function":
            raise unsupported(PROVIDER, f"a {call.get('type')!r} tool call")
        function = call["function"]
        parts.append(
            ToolUsePart(
                id=call["id"],
                name=names.get(function["name"], function["name"]),
                input=parse_tool_arguments(PROVIDER, call["id"], function.get("arguments")),
            )
        )
    return parts


def decode_usage(resp: Any) -> TokenUsage:
    """Token counts of a chat completion (zeros when the server sent none).

    ``prompt_tokens`` counts the cached ones too (``prompt_tokens_details``):
    they are taken out of ``input_tokens`` so that each prompt token is
    priced once (:class:`TokenUsage`). ``completion_tokens`` already includes
    ``completion_tokens_details.reasoning_tokens``.
    """
    usage = as_mapping(resp).get("usage") or {}
    prompt = usage.get("prompt_tokens_details") or {}
    completion = usage.get("completion_tokens_details") or {}
    cached = prompt.get("cached_tokens") or 0
    return TokenUsage(
        input_tokens=max(0, (usage.get("prompt_tokens") or 0) - cached),
        output_tokens=usage.get("completion_tokens") or 0,
        cache_read_tokens=cached,
        reasoning_tokens=completion.get("reasoning_tokens") or 0,
    )


def _user(message: Message) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    texts: list[str] = []
    for part in message.parts:
        if isinstance(part, ToolResultPart):
            content = json_text(part.content)
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": part.tool_use_id,
                    "content": ERROR_PREFIX + content if part.is_error else content,
                }
            )
        elif isinstance(part, TextPart):
            texts.append(part.text)
    if texts:
        out.append({"role": "user", "content": _content(texts)})
    return out


def _assistant(message: Message) -> dict[str, Any]:
    texts = [p.text for p in message.parts if isinstance(p, TextPart)]
    calls = [
        {
            "id": p.id,
            "type": "function",
            "function": {"name": wire_tool_name(p.name), "arguments": json_text(p.input)},
        }
        for p in message.parts
        if isinstance(p, ToolUsePart)
    ]
    out: dict[str, Any] = {"role": "assistant"}
    if texts:
        out["content"] = _content(texts)
    elif calls:
        out["content"] = None
    else:
        out["content"] = ""  # only thinking, which has no place here
    if calls:
        out["tool_calls"] = calls
    return out


def _content(texts: list[str]) -> str | list[dict[str, Any]]:
    if len(texts) == 1:
        return texts[0]
    return [{"type": "text", "text": t} for t in texts]


def _tool(spec: ToolSpec) -> dict[str, Any]:
    function: dict[str, Any] = {"name": wire_tool_name(spec.name), "parameters": spec.input_schema}
    if spec.description:
        function["description"] = spec.description
    return {"type": "function", "function": function}
