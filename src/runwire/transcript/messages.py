"""Canonical transcript messages: what every store keeps and every provider gets.

Contract:
- A message has a role (``user`` or ``assistant``) and ordered parts.
- An assistant message holds thinking part(s), then text part(s), then
  tool_use part(s); order is never changed by any store or encoder.
- A thinking part carries either ``text`` + ``signature`` or ``redacted``
  bytes; both must survive every store byte-for-byte.
- Tool input and result content are JSON values.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JsonValue = Any
Role = Literal["user", "assistant"]


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ThinkingPart(_Part):
    kind: Literal["thinking"] = "thinking"
    text: str | None = None
    signature: str | None = None
    redacted: bytes | None = None


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
