"""OpenAI-compatible Chat Completions, on the official ``openai`` SDK.

Serves OpenAI itself and every server that speaks its chat API (vLLM,
Ollama, llama.cpp, LM Studio...) through ``base_url``.

Contract (beyond :mod:`runwire.providers.base`):
- The SDK's own retries are off (``max_retries=0``); errors are classified by
  :func:`runwire.providers.retry.classify_error`.
- Streaming and non-streaming calls build the same completion shape (the
  SDK's own chunk accumulator) and go through the same decoder, so they give
  the same parts. Usage is asked for in the stream (``include_usage``).
- Chat Completions has no signed reasoning: reasoning text some servers add
  is neither kept nor streamed (see the encoder's contract).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import openai
from openai.lib.streaming.chat import ChatCompletionStreamState

from runwire.errors import ConfigurationError, ProviderError
from runwire.providers.base import (
    ChunkHandler,
    ModelRequest,
    ModelResponse,
    ProviderLifecycle,
    StopReason,
    StreamDelta,
    model_response,
)
from runwire.providers.encoders import openai_chat as encoder
from runwire.providers.retry import classify_error

PROVIDER = "openai"

_STOP_REASONS: dict[str, StopReason] = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}


class OpenAIChatProvider(ProviderLifecycle):
    """A model behind an OpenAI-compatible ``/chat/completions`` endpoint.

    ``api_key`` of ``None`` reads ``OPENAI_API_KEY`` for OpenAI itself; servers
    at a custom ``base_url`` usually need none. ``max_tokens_field`` is
    ``max_completion_tokens`` for OpenAI and ``max_tokens`` for servers that
    only know the older name. ``extra`` is merged into every request body
    (e.g. ``{"reasoning_effort": "low"}``).
    """

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_tokens_field: Literal["max_completion_tokens", "max_tokens"] | None = None,
        extra: Mapping[str, Any] | None = None,
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        if client is None:
            if api_key is None and base_url is not None:
                api_key = "not-needed"  # local servers ignore it; the SDK insists on one
            try:
                client = openai.AsyncOpenAI(
                    api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0
                )
            except openai.OpenAIError as exc:
                raise ConfigurationError(
                    "the openai provider needs an API key: set RUNWIRE_PROVIDER_API_KEY "
                    "(or OPENAI_API_KEY), or RUNWIRE_PROVIDER_BASE_URL for a local server"
                ) from exc
        self._client = client
        self._timeout = timeout
        self._max_tokens_field: Literal["max_completion_tokens", "max_tokens"] = (
            max_tokens_field or ("max_tokens" if base_url else "max_completion_tokens")
        )
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
            system=request.system,
            tools=request.tools,
            max_tokens=request.max_tokens,
            max_tokens_field=self._max_tokens_field,
            extra=self._extra,
        )
        timeout = request.timeout or self._timeout
        try:
            if on_chunk is None:
                completion = await self._client.chat.completions.create(**body, timeout=timeout)
                raw: Mapping[str, Any] = completion.model_dump()
            else:
                raw = await self._stream(body, timeout, on_chunk)
        except openai.OpenAIError as exc:
            raise classify_error(exc, provider=PROVIDER) from exc
        return self._response(raw, request, model)

    async def _stream(
        self, body: dict[str, Any], read_timeout: float, on_chunk: ChunkHandler
    ) -> Mapping[str, Any]:
        state: ChatCompletionStreamState[None] = ChatCompletionStreamState()
        blocks: dict[object, int] = {}  # block key -> index, in the order blocks start
        stream = await self._client.chat.completions.create(
            **body, stream=True, stream_options={"include_usage": True}, timeout=read_timeout
        )
        async with stream:
            async for chunk in stream:
                for event in state.handle_chunk(chunk):
                    delta: StreamDelta | None = None
                    if (event.type == "content.delta" or event.type == "refusal.delta") and (
                        event.delta
                    ):
                        index = blocks.setdefault("text", len(blocks))
                        delta = StreamDelta(kind="text", index=index, text=event.delta)
                    elif event.type == "tool_calls.function.arguments.delta":
                        index = blocks.setdefault(("tool", event.index), len(blocks))
                        calls = (
                            state.current_completion_snapshot.choices[0].message.tool_calls or []
                        )
                        call_id = calls[event.index].id if event.index < len(calls) else None
                        delta = StreamDelta(
                            kind="tool_input",
                            index=index,
                            text=event.arguments_delta,
                            tool_use_id=call_id,
                            tool_name=event.name,
                        )
                    if delta is not None:
                        await on_chunk(delta)
        snapshot = state.current_completion_snapshot
        if not snapshot.choices or snapshot.choices[0].finish_reason is None:
            # The connection ended mid-answer: what arrived is half a message.
            raise ProviderError(
                f"{PROVIDER}: the stream ended without a finish_reason",
                retriable=True,
                kind="incomplete_stream",
            )
        return snapshot.model_dump(exclude_unset=False)

    def _response(self, raw: Mapping[str, Any], request: ModelRequest, model: str) -> ModelResponse:
        choices = raw.get("choices") or []
        if not choices:
            raise ProviderError(f"{PROVIDER}: the response has no choices", kind="empty_response")
        return model_response(
            PROVIDER,
            parts=encoder.decode_response(raw, tools=request.tools),
            usage=encoder.decode_usage(raw),
            raw_stop_reason=choices[0].get("finish_reason"),
            stop_reasons=_STOP_REASONS,
            model=str(raw.get("model") or model),
        )
