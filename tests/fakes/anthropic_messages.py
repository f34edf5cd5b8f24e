"""A fake Anthropic Messages API server.

Wire format: ``POST /v1/messages``; a JSON ``message`` object, or with
``"stream": true`` Server-Sent Events: ``message_start``, ``ping``, per
content block ``content_block_start`` / ``content_block_delta``
(``thinking_delta`` then one ``signature_delta``, ``text_delta``,
``input_json_delta``) / ``content_block_stop``, then ``message_delta`` (stop
reason, output tokens) and ``message_stop``. Redacted thinking arrives whole
in its ``content_block_start``. Errors are ``{"type": "error", "error":
{"type", "message"}}``; a mid-stream error is an ``error`` event.
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

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class FakeAnthropicServer(FakeProviderServer):
    provider = "anthropic"

    def routes(self) -> list[Route]:
        return [Route("/v1/messages", self._messages, methods=["POST"])]

    async def _messages(self, request: Request) -> Response:
        body = json.loads(await request.body() or b"{}")
        return await self._serve(request, stream=bool(body.get("stream")))

    def render_json(self, turn: Turn, model: str) -> dict[str, Any]:
        return {
            **_message_head(model),
            "content": [_block(part) for part in turn.parts],
            "stop_reason": _stop(turn),
            "usage": _usage(turn),
        }

    def render_stream(self, turn: Turn, model: str) -> Iterator[bytes]:
        start_usage = {**_usage(turn), "output_tokens": 1}
        yield _sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    **_message_head(model),
                    "content": [],
                    "stop_reason": None,
                    "usage": start_usage,
                },
            },
        )
        yield _sse("ping", {"type": "ping"})
        for index, part in enumerate(turn.parts):
            if isinstance(part, ThinkingPart) and part.redacted is not None:
                start: dict[str, Any] = _block(part)
                deltas: list[dict[str, Any]] = []
            elif isinstance(part, ThinkingPart):
                start = {"type": "thinking", "thinking": "", "signature": ""}
                deltas = [
                    {"type": "thinking_delta", "thinking": piece}
                    for piece in pieces(part.text or "", turn.chunk_chars)
                ]
                deltas.append({"type": "signature_delta", "signature": part.signature or ""})
            elif isinstance(part, TextPart):
                start = {"type": "text", "text": ""}
                deltas = [
                    {"type": "text_delta", "text": piece}
                    for piece in pieces(part.text, turn.chunk_chars)
                ]
            else:
                start = {"type": "tool_use", "id": part.id, "name": part.name, "input": {}}
                deltas = [
                    {"type": "input_json_delta", "partial_json": piece}
                    for piece in pieces(jsonvalues.dumps_text(part.input), turn.chunk_chars)
                ]
            yield _sse(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
            for delta in deltas:
                yield _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
        yield _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": _stop(turn), "stop_sequence": None},
                "usage": {"output_tokens": turn.usage.output_tokens},
            },
        )
        yield _sse("message_stop", {"type": "message_stop"})

    def render_stream_error(self, fail: StreamFail) -> bytes:
        return _sse(
            "error",
            {"type": "error", "error": {"type": fail.error_type, "message": fail.message}},
        )

    def render_error(self, fail: Fail) -> Response:
        error_type = fail.error_type or ERROR_TYPES.get(
            fail.status, "api_error" if fail.status >= 500 else "invalid_request_error"
        )
        return json_response(
            fail.status,
            {"type": "error", "error": {"type": error_type, "message": fail.message}},
            {"request-id": "req_fake", **fail.headers},
        )


def _sse(event: str, payload: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(payload)}\n\n".encode()


def _message_head(model: str) -> dict[str, Any]:
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "stop_sequence": None,
    }


def _block(part: ThinkingPart | TextPart | ToolUsePart) -> dict[str, Any]:
    if isinstance(part, ThinkingPart):
        if part.redacted is not None:
            # Anthropic's redacted data is an opaque ASCII string; tests give
            # its bytes as the canonical redacted value.
            return {"type": "redacted_thinking", "data": part.redacted.decode()}
        return {"type": "thinking", "thinking": part.text or "", "signature": part.signature or ""}
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    return {"type": "tool_use", "id": part.id, "name": part.name, "input": part.input}


def _stop(turn: Turn) -> str:
    return turn.stop(tool_use="tool_use", end_turn="end_turn")


def _usage(turn: Turn) -> dict[str, Any]:
    u = turn.usage
    return {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cache_read_tokens,
    }
