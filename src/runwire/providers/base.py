"""The model-provider seam: one Protocol that every model adapter implements.

Contract:
- ``complete(request)`` makes exactly ONE attempt at one model call. It never
  retries on its own (every adapter turns its SDK's retries off); retrying is
  the job of :func:`runwire.providers.retry.call_with_retries`, so that one
  policy rules.
- Every failure it raises is a :class:`runwire.errors.RunwireError`; provider
  and transport failures are :class:`runwire.errors.ProviderError` carrying
  ``retriable``, ``retry_after``, ``status`` and ``kind``.
- The response's parts are the assistant message in canonical order
  (thinking, then text, then tool_use), thinking signatures and redacted
  bytes exactly as the provider sent them.
- With ``on_chunk`` the call streams and reports deltas as they arrive; those
  deltas are for live views only. The returned response is the same as the
  non-streaming one would have been, and it is what the transcript keeps.
- Cancelling the awaiting task aborts the call in flight.
- Providers are async resources: ``async with provider:`` or ``await
  provider.close()``; ``close()`` is idempotent and a closed provider refuses
  new calls.
"""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, Protocol, Self, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from runwire.errors import ProviderError
from runwire.providers.encoders.common import TokenUsage, ToolSpec
from runwire.transcript.messages import Message, Part, TextPart, ThinkingPart, ToolUsePart

__all__ = [
    "AssistantPart",
    "ChunkHandler",
    "ModelProvider",
    "ModelRequest",
    "ModelResponse",
    "ProviderLifecycle",
    "StopReason",
    "StreamDelta",
    "TokenUsage",
    "ToolSpec",
    "assistant_parts",
    "model_response",
]

AssistantPart = ThinkingPart | TextPart | ToolUsePart
StopReason = Literal["end_turn", "tool_use", "max_tokens", "stop_sequence", "refusal", "other"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _rank(part: AssistantPart) -> int:
    if isinstance(part, ThinkingPart):
        return 0
    return 1 if isinstance(part, TextPart) else 2


def assistant_parts(provider: str, parts: Sequence[Part]) -> tuple[AssistantPart, ...]:
    """Decoded parts as an assistant message's parts, in canonical order.

    The order within each kind is the provider's; a provider that puts text
    after a tool call has it moved before the calls (stable by kind), since a
    canonical assistant message is thinking, then text, then tool_use.
    A tool_result cannot come from a model and is refused.
    """
    out: list[AssistantPart] = []
    for part in parts:
        if not isinstance(part, ThinkingPart | TextPart | ToolUsePart):
            raise ProviderError(
                f"{provider}: the response holds a {part.kind} part, which an assistant "
                "message cannot keep",
                kind="unsupported_response",
            )
        out.append(part)
    return tuple(sorted(out, key=_rank))


class ModelRequest(_Frozen):
    """Everything one model call needs.

    ``messages`` is the canonical transcript the model sees (session history
    included), ending with the user message or tool results to answer.
    ``model`` of ``None`` means the provider's configured model. ``timeout``
    (seconds) bounds waiting for the provider (``None``: the provider's
    default); :class:`runwire.providers.retry.RetryPolicy` bounds a whole
    attempt, however slowly a stream trickles.
    ``thinking`` asks for reasoning with a budget of ``thinking_budget_tokens``
    (providers that cannot think ignore it).
    """

    messages: tuple[Message, ...]
    system: str | None = None
    tools: tuple[ToolSpec, ...] = ()
    model: str | None = None
    max_tokens: int = Field(default=4096, gt=0)
    thinking: bool = False
    thinking_budget_tokens: int = Field(default=2048, gt=0)
    timeout: float | None = Field(default=None, gt=0)

    def tool_names(self) -> tuple[str, ...]:
        return tuple(tool.name for tool in self.tools)


class ModelResponse(_Frozen):
    """What the model said in one call: the assistant message's parts and its cost.

    ``stop_reason`` is normalised across providers; ``raw_stop_reason`` is the
    provider's own word for it.
    """

    parts: tuple[AssistantPart, ...]
    usage: TokenUsage = Field(default_factory=TokenUsage)
    stop_reason: StopReason = "end_turn"
    raw_stop_reason: str | None = None
    provider: str
    model: str

    def message(self) -> Message:
        """The assistant message the transcript keeps."""
        return Message(role="assistant", parts=self.parts)

    def tool_uses(self) -> tuple[ToolUsePart, ...]:
        return tuple(p for p in self.parts if isinstance(p, ToolUsePart))


def model_response(
    provider: str,
    *,
    parts: Sequence[Part],
    usage: TokenUsage,
    raw_stop_reason: str | None,
    stop_reasons: Mapping[str, StopReason],
    model: str,
) -> ModelResponse:
    """The response an adapter returns for decoded ``parts`` (see :func:`assistant_parts`);
    a stop reason missing from ``stop_reasons`` is ``"other"``."""
    return ModelResponse(
        parts=assistant_parts(provider, parts),
        usage=usage,
        stop_reason=stop_reasons.get(raw_stop_reason or "", "other"),
        raw_stop_reason=raw_stop_reason,
        provider=provider,
        model=model,
    )


class StreamDelta(_Frozen):
    """One streamed piece of an assistant message, for live views only.

    ``index`` names the block the piece belongs to: blocks are numbered in
    the order the provider starts them (for providers that stream blocks it
    cannot keep, such as redacted thinking, numbers may skip). ``kind`` says
    what grows: thinking text, answer text, or a tool call's input JSON
    (``tool_name`` / ``tool_use_id`` set; a call's first delta may be empty,
    announcing it). Concatenating the ``text`` of one block's deltas gives
    that block's content. A retried call streams again from the start, so a
    live view resets when the retry hook fires.
    """

    kind: Literal["thinking", "text", "tool_input"]
    index: int
    text: str
    tool_use_id: str | None = None
    tool_name: str | None = None


ChunkHandler = Callable[[StreamDelta], Awaitable[None]]


@runtime_checkable
class ModelProvider(Protocol):
    """A model behind one call; see the module docstring for the contract."""

    @property
    def name(self) -> str:
        """The provider's name (``local``, ``openai``, ``anthropic``, ``bedrock``)."""
        ...

    @property
    def default_model(self) -> str:
        """The model used when a request names none."""
        ...

    async def complete(
        self, request: ModelRequest, *, on_chunk: ChunkHandler | None = None
    ) -> ModelResponse:
        """Make one attempt at one model call (streaming when ``on_chunk`` is given)."""
        ...

    async def close(self) -> None:
        """Release the provider's connections; safe to call twice."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class ProviderLifecycle:
    """Shared lifecycle for adapters: ``async with``, idempotent close, leak warning.

    Subclasses release their clients in :meth:`_aclose` and call
    :meth:`_ensure_open` before using them. They call ``__init__`` after their
    clients exist, so a half-built instance never warns about a leak.
    """

    _closed: bool = True

    def __init__(self, name: str, default_model: str) -> None:
        self._name = name
        self._default_model = default_model
        self._closed = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def default_model(self) -> str:
        return self._default_model

    def model_for(self, request: ModelRequest) -> str:
        return request.model or self._default_model

    async def __aenter__(self) -> Self:
        self._ensure_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._aclose()

    async def _aclose(self) -> None:
        """Release the adapter's clients; called once."""

    def _ensure_open(self) -> None:
        if self._closed:
            raise ProviderError(
                f"model provider {self._name!r} is closed; create a new one",
                kind="provider_closed",
            )

    def __del__(self, _warn: Callable[..., Any] = warnings.warn) -> None:
        # A provider that is never closed leaks its HTTP connection pool;
        # say so where it happens rather than at interpreter exit.
        if not self._closed and self._needs_close():
            _warn(
                f"model provider {self._name!r} was never closed; use `async with` or close()",
                ResourceWarning,
                source=self,
                stacklevel=1,
            )

    def _needs_close(self) -> bool:
        """Whether an unclosed instance holds something worth warning about."""
        return True
