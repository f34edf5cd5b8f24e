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
- Tool input keeps every digit the model wrote: the SDK parses numbers as
  floats, so tool_use inputs are taken from the response body (or the
  streamed ``input_json_delta`` text) parsed by :mod:`runwire.contract.jsonvalues`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anthropic

from runwire.contract import jsonvalues
from runwire.errors import ProviderError
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
from runwire.providers.encoders.common import parse_tool_arguments
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
        inputs: dict[int, Any] = {}  # content block index -> its exact tool input
        try:
            if on_chunk is None:
                response = await self._client.messages.with_raw_response.create(
                    **body, timeout=timeout
                )
                message = await response.parse()
                inputs = _exact_inputs(await response.read())
            else:
                message = await self._stream(body, timeout, on_chunk, inputs)
        except anthropic.AnthropicError as exc:
            raise classify_error(exc, provider=PROVIDER) from exc
        raw = message.model_dump()
        for index, value in inputs.items():
            raw["content"][index]["input"] = value
        return model_response(
            PROVIDER,
            parts=encoder.decode_response(raw, tools=request.tools),
            usage=encoder.decode_usage(raw),
            raw_stop_reason=raw.get("stop_reason"),
            stop_reasons=_STOP_REASONS,
            model=str(raw.get("model") or model),
        )

    async def _stream(
        self,
        body: dict[str, Any],
        read_timeout: float,
        on_chunk: ChunkHandler,
        inputs: dict[int, Any],
    ) -> anthropic.types.Message:
        """The final message; ``inputs`` gets each tool_use block's input parsed
        exactly from its streamed JSON text."""
        tools: dict[int, tuple[str, str]] = {}  # block index -> (tool_use id, name)
        texts: dict[int, list[str]] = {}
        stopped = False
        async with self._client.messages.stream(**body, timeout=read_timeout) as stream:
            async for event in stream:
                delta: StreamDelta | None = None
                if event.type == "message_stop":
                    stopped = True
                elif event.type == "content_block_start" and event.content_block.type == "tool_use":
                    block = event.content_block
                    tools[event.index] = (block.id, block.name)
                    delta = StreamDelta(
                        kind="tool_input",
                        index=event.index,
                        text="",
                        tool_use_id=block.id,
                        tool_name=block.name,
                    )
                    texts[event.index] = []
                elif event.type == "content_block_delta":
                    if event.delta.type == "text_delta":
                        delta = StreamDelta(kind="text", index=event.index, text=event.delta.text)
                    elif event.delta.type == "thinking_delta":
                        delta = StreamDelta(
                            kind="thinking", index=event.index, text=event.delta.thinking
                        )
                    elif event.delta.type == "input_json_delta":
                        tool_id, tool_name = tools.get(event.index, (None, None))
                        texts.setdefault(event.index, []).append(event.delta.partial_json)
                        delta = StreamDelta(
                            kind="tool_input",
                            index=event.index,
                            text=event.delta.partial_json,
                            tool_use_id=tool_id,
                            tool_name=tool_name,
                        )
                if delta is not None:
                    await on_chunk(delta)
            if not stopped:
                # The connection ended mid-answer: what arrived is half a message.
                raise ProviderError(
                    f"{PROVIDER}: the stream ended without a message_stop event",
                    retriable=True,
                    kind="incomplete_stream",
                )
            message = await stream.get_final_message()
        for index, pieces in texts.items():
            tool_id = tools.get(index, ("?", ""))[0]
            inputs[index] = parse_tool_arguments(PROVIDER, tool_id, "".join(pieces))
        return message


def _exact_inputs(body: bytes) -> dict[int, Any]:
    """Each tool_use block's input in a Messages response body, numbers exact."""
    try:
        content = jsonvalues.loads(body).get("content") or []
    except (ValueError, AttributeError):
        return {}  # the SDK parsed it; what it made of it is decoded as usual
    return {
        i: block.get("input")
        for i, block in enumerate(content)
        if isinstance(block, dict) and block.get("type") == "tool_use"
    }
