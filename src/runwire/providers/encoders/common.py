"""What every provider encoder shares: tool specs, usage, names, JSON text.

JSON text is written and read by :mod:`runwire.contract.jsonvalues`, numbers
exact: tool arguments and text tool results carry every digit. Encoders whose
SDK writes the request with Python's ``json`` (Anthropic, Bedrock) cannot put a
``Decimal`` (a number no float writes) into a JSON object of the request:
:func:`require_float_numbers` refuses it with :class:`EncodingError` rather than
letting it be rounded (docs/json-numbers.md).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from runwire.contract import jsonvalues
from runwire.errors import ContractError, ProviderError

__all__ = [
    "EncodingError",
    "TokenUsage",
    "ToolSpec",
    "as_mapping",
    "json_text",
    "parse_tool_arguments",
    "require_float_numbers",
    "unsupported",
    "wire_names",
    "wire_tool_name",
]


class EncodingError(ContractError):
    """Canonical messages cannot be put into a provider's request as they are."""


class ToolSpec(BaseModel):
    """A tool the model may call: canonical name, description, JSON schema of its input."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str = ""
    input_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )


class TokenUsage(BaseModel):
    """Tokens one provider call used (what a ``usage`` event carries).

    One meaning whatever the provider, so one price table prices them all:
    ``input_tokens`` are the prompt tokens billed at the input price (cache
    reads and writes are apart, as Anthropic and Bedrock count them; an
    OpenAI count that includes its cached tokens is reduced by them), and
    ``output_tokens`` include ``reasoning_tokens`` (as every provider bills
    them). A count the provider does not report is 0.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


_WIRE_NAME_OK = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_WIRE_NAME_BAD_CHAR = re.compile(r"[^A-Za-z0-9_-]")


def wire_tool_name(name: str) -> str:
    """The tool name a provider accepts for canonical ``name``.

    OpenAI, Anthropic and Bedrock all take ``[A-Za-z0-9_-]{1,64}``. A name
    that fits is sent unchanged; any other (``svc.search``) gets its bad
    characters replaced and a short hash of the original appended, so that
    two canonical names never share a wire name.
    """
    if _WIRE_NAME_OK.match(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{_WIRE_NAME_BAD_CHAR.sub('_', name)[:55]}_{digest}"


def wire_names(tools: Iterable[ToolSpec]) -> dict[str, str]:
    """Canonical name by wire name, to turn a response's tool names back."""
    return {wire_tool_name(t.name): t.name for t in tools}


def json_text(value: Any) -> str:
    """A JSON value as text for providers that only take text; strings pass as they are."""
    if isinstance(value, str):
        return value
    return jsonvalues.dumps_text(value)


def require_float_numbers(provider: str, value: Any, where: str) -> Any:
    """``value`` when every number in it is an int or a float (what the provider's
    SDK writes exactly), else :class:`EncodingError` naming the place."""
    if jsonvalues.has_decimal(value):
        raise EncodingError(
            f"{provider}: {where} holds a number a float cannot carry exactly "
            f"({jsonvalues.dumps_text(value)[:200]}), and the SDK would round it: "
            "refused rather than changed (see docs/json-numbers.md)"
        )
    return value


def parse_tool_arguments(provider: str, tool_use_id: str, arguments: str | None) -> dict[str, Any]:
    """Tool-call arguments (JSON text) as a JSON object.

    Models sometimes send invalid JSON or a non-object: that is the
    provider's answer being unusable, so it is a retriable
    :class:`ProviderError` (another call usually gets it right).
    """
    if not arguments or not arguments.strip():
        return {}
    try:
        value = jsonvalues.loads(arguments)  # numbers exact
    except ValueError as e:
        raise ProviderError(
            f"{provider}: tool call {tool_use_id!r} has arguments that are not JSON "
            f"({e}): {arguments[:200]!r}",
            retriable=True,
            kind="invalid_tool_arguments",
        ) from e
    if not isinstance(value, dict):
        raise ProviderError(
            f"{provider}: tool call {tool_use_id!r} has arguments that are not a JSON "
            f"object: {arguments[:200]!r}",
            retriable=True,
            kind="invalid_tool_arguments",
        )
    # What a transcript keeps of a tool input (runwire.transcript.depth): deeper, the
    # ledger would refuse the call and fail the run; another call usually fits.
    if jsonvalues.deeper_than(value, jsonvalues.MAX_HELD_DEPTH):
        raise ProviderError(
            f"{provider}: tool call {tool_use_id!r} has arguments nested deeper than "
            f"{jsonvalues.MAX_HELD_DEPTH} levels",
            retriable=True,
            kind="invalid_tool_arguments",
        )
    return value


def unsupported(provider: str, what: str) -> ProviderError:
    """The error for a response holding something a canonical transcript cannot keep."""
    return ProviderError(
        f"{provider}: the response holds {what}, which a runwire transcript cannot keep",
        retriable=False,
        kind="unsupported_response",
    )


def as_mapping(value: Any) -> Mapping[str, Any]:
    """A response as a mapping: SDK models (pydantic) are dumped, mappings pass."""
    if isinstance(value, Mapping):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        dumped = dump()
        if isinstance(dumped, Mapping):
            return dumped
    raise TypeError(f"expected a mapping or an SDK response model, got {type(value).__name__}")
