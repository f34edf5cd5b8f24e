"""Canonical transcript messages: what every store keeps and every provider gets.

Contract:
- A message has a role (``user`` or ``assistant``) and ordered parts.
- An assistant message holds thinking part(s), then text part(s), then
  tool_use part(s); order is never changed by any store or encoder.
- A thinking part carries either ``text`` + ``signature`` or ``redacted``
  bytes; both must survive every store byte-for-byte (bytes are base64 in
  JSON, so a JSON dump and load gives back the same bytes).
- A user message holds its tool_result part(s) first, then its text part(s)
  (Anthropic refuses text before tool results).
- Tool input and result content are JSON values.
- Models are permissive on purpose: they can hold a transcript that breaks
  the rules, so that :mod:`runwire.transcript.validation` can name the rule.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JsonValue = Any
Role = Literal["user", "assistant"]


class _Part(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64"
    )


class ThinkingPart(_Part):
    kind: Literal["thinking"] = "thinking"
    text: str | None = None
    signature: str | None = None
    redacted: bytes | None = None

    @property
    def complete(self) -> bool:
        """True when a provider can be given this part back: redacted bytes, or
        text with its signature.

        The text may be empty when signed: Anthropic's ``display: "omitted"``
        returns signed thinking blocks with empty text, and they must go back.
        Unsigned thinking (a streamed preview, a local model's reasoning) is
        never kept in a transcript.
        """
        return bool(self.redacted) or bool(self.signature)


class TextPart(_Part):
    kind: Literal["text"] = "text"
    text: str


class ToolUsePart(_Part):
    kind: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, JsonValue] = Field(default_factory=dict)


class ToolResultPart(_Part):
    kind: Literal["tool_result"] = "tool_result"
    tool_use_id: str
    content: JsonValue = None
    is_error: bool = False


Part = Annotated[
    ThinkingPart | TextPart | ToolUsePart | ToolResultPart, Field(discriminator="kind")
]


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    parts: tuple[Part, ...]

    def tool_uses(self) -> list[ToolUsePart]:
        return [p for p in self.parts if isinstance(p, ToolUsePart)]

    def tool_results(self) -> list[ToolResultPart]:
        return [p for p in self.parts if isinstance(p, ToolResultPart)]

    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))
