"""Anthropic Messages, on the official ``anthropic`` SDK.

Contract (beyond :mod:`runwire.providers.base`):
- The SDK's own retries are off (``max_retries=0``); errors are classified by
  :func:`runwire.providers.retry.classify_error`, including an ``error``
  event in the middle of a stream (decided by its error type).
- Thinking blocks keep their signatures and redacted thinking its data, byte
  for byte; streaming uses the SDK's own accumulator (``messages.stream``),
  so the streamed message decodes exactly like the non-streamed one.
- With ``request.thinking`` the request enables extended thinking with
  ``request.thinking_budget_tokens`` (which must stay below ``max_tokens``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anthropic

from runwire.providers.base import (
    ChunkHandler,
    ModelRequest,
    ModelResponse,
    ProviderLifecycle,
    StopReason,
    StreamDelta,
    model_response,
)
from runwire.providers.encoders import anthropic_messages as encoder
from runwire.providers.retry import classify_error

PROVIDER = "anthropic"

_STOP_REASONS: dict[str, StopReason] = {
    "end_turn": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "refusal": "refusal",
    "pause_turn": "other",
}


class AnthropicMessagesProvider(ProviderLifecycle):
    """A Claude model behind the Messages API (or a server that speaks it).

    ``api_key`` of ``None`` reads ``ANTHROPIC_API_KEY``. ``extra`` is merged
    into every request body.
    """

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        extra: Mapping[str, Any] | None = None,
        client: anthropic.AsyncAnthropic | None = None,
    ) -> None:
        if client is None:
            if api_key is None and base_url is not None:
                api_key = "not-needed"  # a local server ignores it; the SDK wants one
            client = anthropic.AsyncAnthropic(
                api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0
            )
        self._client = client
        self._timeout = timeout
        self._extra = dict(extra or {})
        super().__init__(PROVIDER, model)

    async def _aclose(self) -> None:
        await self._client.close()

    async def complete(
        self, request: ModelRequest, *, on_chunk: ChunkHandler | None = None
    ) -> ModelResponse:
        self._ensure_open()
        model = self.model_for(request)
        body = encoder.encode_request(
            request.messages,
            model=model,
            max_tokens=request.max_tokens,
            system=request.system,
            tools=request.tools,
            thinking=request.thinking_budget_tokens if request.thinking else None,
            extra=self._extra,
        )
        timeout = request.timeout or self._timeout
        try:
            if on_chunk is None:
                message = await self._client.messages.create(**body, timeout=timeout)
            else:
                message = await self._stream(body, timeout, on_chunk)
        except anthropic.AnthropicError as exc:
            raise classify_error(exc, provider=PROVIDER) from exc
        raw = message.model_dump()
        return model_response(
            PROVIDER,
            parts=encoder.decode_response(raw, tools=request.tools),
            usage=encoder.decode_usage(raw),
            raw_stop_reason=raw.get("stop_reason"),
            stop_reasons=_STOP_REASONS,
            model=str(raw.get("model") or model),
        )

    async def _stream(
        self, body: dict[str, Any], read_timeout: float, on_chunk: ChunkHandler
    ) -> anthropic.types.Message:
        tools: dict[int, tuple[str, str]] = {}  # block index -> (tool_use id, name)
        async with self._client.messages.stream(**body, timeout=read_timeout) as stream:
            async for event in stream:
                delta: StreamDelta | None = None
                if event.type == "content_block_start" and event.content_block.type == "tool_use":
                    block = event.content_block
                    tools[event.index] = (block.id, block.name)
                    delta = StreamDelta(
                        kind="tool_input",
                        index=event.index,
                        text="",
                        tool_use_id=block.id,
                        tool_name=block.name,
                    )
                elif event.type == "content_block_delta":
                    if event.delta.type == "text_delta":
                        delta = StreamDelta(kind="text", index=event.index, text=event.delta.text)
                    elif event.delta.type == "thinking_delta":
                        delta = StreamDelta(
                            kind="thinking", index=event.index, text=event.delta.thinking
                        )
                    elif event.delta.type == "input_json_delta":
                        tool_id, tool_name = tools.get(event.index, (None, None))
                        delta = StreamDelta(
                            kind="tool_input",
                            index=event.index,
                            text=event.delta.partial_json,
                            tool_use_id=tool_id,
                            tool_name=tool_name,
                        )
                if delta is not None:
                    await on_chunk(delta)
            return await stream.get_final_message()
