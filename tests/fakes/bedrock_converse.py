"""A fake Amazon Bedrock Runtime server for Converse and ConverseStream.

Wire format (rest-json): ``POST /model/{modelId}/converse`` answers a JSON
``ConverseResponse`` (blobs such as ``redactedContent`` in base64);
``POST /model/{modelId}/converse-stream`` answers
``application/vnd.amazon.eventstream`` frames (see
:mod:`tests.fakes.eventstream`): ``messageStart``, ``contentBlockStart`` (tool
use only), ``contentBlockDelta`` (``text``, ``toolUse.input`` pieces,
``reasoningContent`` text / signature / redactedContent),
``contentBlockStop``, ``messageStop``, ``metadata``. Errors carry the
exception name in ``x-amzn-ErrorType`` and ``{"message": ...}`` as body; a
mid-stream error is an exception frame.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runwire.contract import jsonvalues
from runwire.transcript.messages import TextPart, ThinkingPart, ToolUsePart
from tests.fakes import eventstream
from tests.fakes.server import (
    Fail,
    FakeProviderServer,
    RecordedRequest,
    StreamFail,
    Turn,
    json_response,
    pieces,
)

EXCEPTIONS = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}

_MODEL_IN_PATH = re.compile(r"^/model/(.+?)/converse(?:-stream)?$")


class FakeBedrockServer(FakeProviderServer):
    provider = "bedrock"
    stream_media_type = "application/vnd.amazon.eventstream"

    def routes(self) -> list[Route]:
        return [
            Route("/model/{model_id:path}/converse-stream", self._stream, methods=["POST"]),
            Route("/model/{model_id:path}/converse", self._converse, methods=["POST"]),
        ]

    async def _converse(self, request: Request) -> Response:
        return await self._serve(request, stream=False)

    async def _stream(self, request: Request) -> Response:
        return await self._serve(request, stream=True)

    def model_of(self, recorded: RecordedRequest) -> str:
        match = _MODEL_IN_PATH.match(recorded.path)
        return match.group(1) if match else "fake-model"

    def render_json(self, turn: Turn, model: str) -> dict[str, Any]:
        return {
            "output": {
                "message": {"role": "assistant", "content": [_block(p) for p in turn.parts]}
            },
            "stopReason": _stop(turn),
            "usage": _usage(turn),
            "metrics": {"latencyMs": 1},
        }

    def render_stream(self, turn: Turn, model: str) -> Iterator[bytes]:
        yield eventstream.event("messageStart", {"role": "assistant"})
        for index, part in enumerate(turn.parts):
            deltas: list[dict[str, Any]]
            if isinstance(part, ThinkingPart) and part.redacted is not None:
                deltas = [{"reasoningContent": {"redactedContent": _b64(part.redacted)}}]
            elif isinstance(part, ThinkingPart):
                deltas = [
                    {"reasoningContent": {"text": piece}}
                    for piece in pieces(part.text or "", turn.chunk_chars)
                ]
                if part.signature is not None:
                    deltas.append({"reasoningContent": {"signature": part.signature}})
            elif isinstance(part, TextPart):
                deltas = [{"text": piece} for piece in pieces(part.text, turn.chunk_chars)]
            else:
                yield eventstream.event(
                    "contentBlockStart",
                    {
                        "contentBlockIndex": index,
                        "start": {"toolUse": {"toolUseId": part.id, "name": part.name}},
                    },
                )
                deltas = [
                    {"toolUse": {"input": piece}}
                    for piece in pieces(jsonvalues.dumps_text(part.input), turn.chunk_chars)
                ]
            for delta in deltas:
                yield eventstream.event(
                    "contentBlockDelta", {"contentBlockIndex": index, "delta": delta}
                )
            yield eventstream.event("contentBlockStop", {"contentBlockIndex": index})
        yield eventstream.event("messageStop", {"stopReason": _stop(turn)})
        yield eventstream.event("metadata", {"usage": _usage(turn), "metrics": {"latencyMs": 1}})

    def render_stream_error(self, fail: StreamFail) -> bytes:
        return eventstream.exception(fail.error_type, fail.message)

    def render_error(self, fail: Fail) -> Response:
        code = fail.error_type or EXCEPTIONS.get(
            fail.status, "InternalServerException" if fail.status >= 500 else "ValidationException"
        )
        return json_response(
            fail.status,
            {"message": fail.message},
            {
                "x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/",
                "x-amzn-RequestId": "fake-request-id",
                **fail.headers,
            },
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _block(part: ThinkingPart | TextPart | ToolUsePart) -> dict[str, Any]:
    if isinstance(part, ThinkingPart):
        if part.redacted is not None:
            return {"reasoningContent": {"redactedContent": _b64(part.redacted)}}
        text: dict[str, Any] = {"text": part.text or ""}
        if part.signature is not None:
            text["signature"] = part.signature
        return {"reasoningContent": {"reasoningText": text}}
    if isinstance(part, TextPart):
        return {"text": part.text}
    return {"toolUse": {"toolUseId": part.id, "name": part.name, "input": part.input}}


def _stop(turn: Turn) -> str:
    return turn.stop(tool_use="tool_use", end_turn="end_turn")


def _usage(turn: Turn) -> dict[str, Any]:
    u = turn.usage
    return {
        "inputTokens": u.input_tokens,
        "outputTokens": u.output_tokens,
        "totalTokens": u.input_tokens + u.output_tokens,
        "cacheReadInputTokens": u.cache_read_tokens,
        "cacheWriteInputTokens": u.cache_write_tokens,
    }
