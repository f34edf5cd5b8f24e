"""Pure functions between canonical messages and provider payloads (no network).

One module per provider API, each with the same functions:

- ``encode_request(messages, *, model, system=None, tools=(), max_tokens=...,
  thinking=None, extra=None) -> dict`` — the request body (OpenAI,
  Anthropic) or the ``converse(**kwargs)`` arguments (Bedrock).
  ``thinking`` is a thinking budget in tokens (``None``: off; ignored by
  OpenAI Chat). ``extra`` is merged into the top level for provider-specific
  knobs. OpenAI and Bedrock also take ``temperature``; the Anthropic SDK's
  request type has no such field.
- ``encode_messages(messages, ...) -> list[dict]`` — just the messages.
- ``decode_response(resp, *, tools=()) -> list[Part]`` — the assistant parts
  of a response (an SDK response object or its JSON), in provider order;
  feed them to ``Ledger.append_part`` or publish them as events.
- ``decode_usage(resp) -> TokenUsage``.

Modules: :mod:`.openai_chat` (OpenAI Chat Completions and OpenAI-compatible
servers), :mod:`.anthropic_messages`, :mod:`.bedrock_converse`. (The
``local`` provider takes canonical messages as they are.) Validate the
transcript first (:func:`runwire.transcript.validation.validate`); encoders
never reorder parts and keep signatures and redacted bytes byte-exact.
"""

from runwire.providers.encoders import anthropic_messages, bedrock_converse, openai_chat
from runwire.providers.encoders.common import EncodingError, TokenUsage, ToolSpec, wire_tool_name

__all__ = [
    "EncodingError",
    "TokenUsage",
    "ToolSpec",
    "anthropic_messages",
    "bedrock_converse",
    "openai_chat",
    "wire_tool_name",
]
