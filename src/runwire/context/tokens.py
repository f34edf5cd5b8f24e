"""Measuring history in tokens.

Contract:
- A token counter is any ``Callable[[str], int]``: plug a provider's tokenizer
  in where one works offline (``lambda s: len(enc.encode(s))``). tiktoken is
  not a dependency: it downloads its encodings at run time.
- :func:`estimate_tokens` is the default: one token per
  :data:`CHARS_PER_TOKEN` characters, rounded up.
- :func:`message_tokens` counts one message: the text a provider is sent for
  each part (text, thinking text or its base64 redacted bytes, tool name and
  JSON input, JSON result content) through the counter, plus
  :data:`MESSAGE_OVERHEAD` for the framing every chat format adds. Pure and
  deterministic for a deterministic counter.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable

from runwire.providers.encoders.common import json_text
from runwire.transcript.messages import (
    Message,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
)

__all__ = [
    "CHARS_PER_TOKEN",
    "MESSAGE_OVERHEAD",
    "TokenCounter",
    "estimate_tokens",
    "message_tokens",
    "messages_tokens",
]

TokenCounter = Callable[[str], int]

CHARS_PER_TOKEN = 4
"""The usual figure for English text with BPE tokenizers."""

MESSAGE_OVERHEAD = 4
"""Tokens of role and separators per message (OpenAI's chat format spends 3-4)."""


def estimate_tokens(text: str) -> int:
    """``len(text) / CHARS_PER_TOKEN``, rounded up."""
    return -(-len(text) // CHARS_PER_TOKEN)


def _part_texts(message: Message) -> Iterable[str]:
    for part in message.parts:
        if isinstance(part, TextPart):
            yield part.text
        elif isinstance(part, ThinkingPart):
            if part.redacted:
                yield base64.b64encode(part.redacted).decode()
            else:
                yield part.text or ""
        elif isinstance(part, ToolUsePart):
            yield part.name
            yield json_text(part.input)
        elif isinstance(part, ToolResultPart):
            yield json_text(part.content)


def message_tokens(message: Message, count: TokenCounter = estimate_tokens) -> int:
    """The tokens of one message; see the module contract."""
    return MESSAGE_OVERHEAD + sum(count(text) for text in _part_texts(message) if text)


def messages_tokens(messages: Iterable[Message], count: TokenCounter = estimate_tokens) -> int:
    return sum(message_tokens(m, count) for m in messages)
