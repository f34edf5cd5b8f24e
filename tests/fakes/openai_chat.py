"""A fake OpenAI Chat Completions server (what vLLM, Ollama and llama.cpp also speak).

Wire format: ``POST /v1/chat/completions``; JSON ``chat.completion`` objects,
or with ``"stream": true`` Server-Sent Events of ``chat.completion.chunk``
objects (role, ``reasoning_content`` / ``content`` pieces, ``tool_calls``
deltas carrying index / id / name first and argument pieces after, a
``finish_reason`` chunk, a usage chunk with empty ``choices``) ending with
``data: [DONE]``. Errors are ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runwire.contract import jsonvalues
from runwire.transcript.messages import TextPart, ThinkingPart, ToolUsePart
from tests.fakes.server import Fail, FakeProviderServer, StreamFail, Turn, json_response, pieces

CREATED = 1_700_000_000


class FakeOpenAIServer(FakeProviderServer):
    provider = "openai"

    @property
    def url_suffix(self) -> str:
        return "/v1"

    def routes(self) -> list[Route]:
        return [Route("/v1/chat/completions", self._completions, methods=["POST"])]

    async def _completions(self, request: Request) -> Response:
        body = json.loads(await request.body() or b"{}")
        return await self._serve(request, stream=bool(body.get("stream")))

    def render_json(self, turn: Turn, model: str) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": _text(turn), "refusal": None}
        reasoning = _reasoning(turn)
        if reasoning:
            message["reasoning_content"] = reasoning
        calls = [
            {
                "id": p.id,
                "type": "function",
                "function": {"name": p.name, "arguments": jsonvalues.dumps_text(p.input)},
            }
            for p in turn.parts
            if isinstance(p, ToolUsePart)
        ]
        if calls:
            message["tool_calls"] = calls
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": _finish(turn),
                }
            ],
            "usage": _usage(turn),
            "system_fingerprint": None,
        }

    def render_stream(self, turn: Turn, model: str) -> Iterator[bytes]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return _sse(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": CREATED,
                    "model": model,
                    "system_fingerprint": None,
                    "choices": [
                        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                    ],
                }
            )

        yield chunk({"role": "assistant", "content": "", "refusal": None})
        reasoning = _reasoning(turn)
        if reasoning:
            for piece in pieces(reasoning, turn.chunk_chars):
                yield chunk({"reasoning_content": piece})
        text = _text(turn)
        if text:
            for piece in pieces(text, turn.chunk_chars):
                yield chunk({"content": piece})
        calls = [p for p in turn.parts if isinstance(p, ToolUsePart)]
        for index, call in enumerate(calls):
            yield chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": ""},
                        }
                    ]
                }
            )
            for piece in pieces(jsonvalues.dumps_text(call.input), turn.chunk_chars):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        yield chunk({}, _finish(turn))
        yield _sse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": model,
                "choices": [],
                "usage": _usage(turn),
            }
        )
        yield b"data: [DONE]\n\n"

    def render_stream_error(self, fail: StreamFail) -> bytes:
        return _sse({"error": {"message": fail.message, "type": fail.error_type, "code": None}})

    def render_error(self, fail: Fail) -> Response:
        default_type = "invalid_request_error" if fail.status < 500 else "server_error"
        if fail.status == 429:
            default_type = "rate_limit_exceeded"
        return json_response(
            fail.status,
            {
                "error": {
                    "message": fail.message,
                    "type": fail.error_type or default_type,
                    "param": None,
                    "code": None,
                }
            },
            fail.headers,
        )


def _sse(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def _text(turn: Turn) -> str | None:
    return "".join(p.text for p in turn.parts if isinstance(p, TextPart)) or None


def _reasoning(turn: Turn) -> str:
    return "".join(p.text or "" for p in turn.parts if isinstance(p, ThinkingPart))


def _finish(turn: Turn) -> str:
    return turn.stop(tool_use="tool_calls", end_turn="stop")


def _usage(turn: Turn) -> dict[str, Any]:
    # OpenAI counts cached tokens inside prompt_tokens and reasoning inside
    # completion_tokens; runwire's input_tokens leaves the cached ones out.
    u = turn.usage
    prompt = u.input_tokens + u.cache_read_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": u.output_tokens,
        "total_tokens": prompt + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_read_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": u.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
