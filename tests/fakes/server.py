"""A scripted HTTP server in the running event loop, the base of every fake provider.

Contract:
- ``async with Fake() as fake:`` binds 127.0.0.1 on an ephemeral port;
  ``fake.base_url`` is what the SDK under test points at.
- Replies are taken in order from the script (``fake.enqueue(...)``); when the
  script is empty the ``responder`` (if any) decides, otherwise the server
  answers 418 so a test that forgot a reply fails loudly instead of looping.
- Every request is recorded in ``fake.requests`` (method, path, headers, JSON
  body) before it is answered; a request whose client went away before the
  reply was complete is also recorded in ``fake.aborted``.
- A :class:`Turn` is rendered as JSON or as a stream, whichever the request
  asked for, from the same canonical parts, so both paths can be compared.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from runwire.contract import jsonvalues
from runwire.providers.base import AssistantPart, TokenUsage
from runwire.transcript.messages import ToolUsePart


@dataclass(frozen=True)
class Turn:
    """A successful model answer, rendered in the provider's wire format.

    ``stop_reason`` is the provider's own word (default: tool use when the
    parts call tools, else end of turn). ``delay`` holds the response back
    before its headers; ``chunk_delay`` spaces the streamed events.
    """

    parts: tuple[AssistantPart, ...]
    stop_reason: str | None = None
    usage: TokenUsage = field(
        default_factory=lambda: TokenUsage(
            input_tokens=21, output_tokens=13, cache_read_tokens=5, cache_write_tokens=3
        )
    )
    delay: float = 0.0
    chunk_delay: float = 0.0
    chunk_chars: int = 4

    def stop(self, *, tool_use: str, end_turn: str) -> str:
        """The stop reason in the provider's words (given, or from the parts)."""
        if self.stop_reason:
            return self.stop_reason
        return tool_use if any(isinstance(p, ToolUsePart) for p in self.parts) else end_turn


@dataclass(frozen=True)
class Fail:
    """An error response: ``status`` with the provider's error body."""

    status: int
    message: str
    error_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class StreamFail:
    """A stream that starts fine and then reports an error event."""

    after_events: int
    message: str
    error_type: str = "overloaded_error"
    turn: Turn | None = None


@dataclass(frozen=True)
class StreamDrop:
    """A stream that starts fine and then just ends (the connection dropped mid-answer)."""

    after_events: int
    turn: Turn


Reply = Turn | Fail | StreamFail | StreamDrop


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    received_at: float
    raw: bytes = b""
    """The body's bytes as sent (``body`` is parsed with floats)."""


Responder = Callable[[RecordedRequest], Reply]


class FakeProviderServer:
    """Base of the fakes; subclasses give routes and render replies."""

    provider = "fake"

    def __init__(self, responder: Responder | None = None) -> None:
        self._script: deque[Reply] = deque()
        self._responder = responder
        self.requests: list[RecordedRequest] = []
        self.aborted: list[RecordedRequest] = []
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._port = 0

    # --- lifecycle ---------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"fake {self.provider} server is not started")
        return f"http://127.0.0.1:{self._port}{self.url_suffix}"

    @property
    def url_suffix(self) -> str:
        return ""

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            Starlette(routes=self.routes()),
            lifespan="off",
            log_level="error",
            access_log=False,
            ws="none",
            http="h11",
            timeout_graceful_shutdown=1,
        )
        config.load()
        server = uvicorn.Server(config)
        # startup/shutdown directly: serve() would take over the test
        # process's signal handlers.
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[sock])
        self._server, self._socket = server, sock

    async def stop(self) -> None:
        server, sock = self._server, self._socket
        self._server = self._socket = None
        if server is not None:
            server.force_exit = True
            await server.shutdown(sockets=[sock] if sock is not None else None)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- scripting -----------------------------------------------------------------

    def enqueue(self, *replies: Reply) -> None:
        self._script.extend(replies)

    @property
    def pending(self) -> int:
        return len(self._script)

    def _next_reply(self, recorded: RecordedRequest) -> Reply:
        if self._script:
            return self._script.popleft()
        if self._responder is not None:
            return self._responder(recorded)
        return Fail(418, f"fake {self.provider} server: no scripted reply left")

    # --- serving -------------------------------------------------------------------

    def routes(self) -> list[Route]:
        raise NotImplementedError

    async def _record(self, request: Request) -> RecordedRequest:
        raw = await request.body()
        body: Any
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        recorded = RecordedRequest(
            method=request.method,
            path=request.url.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            received_at=time.monotonic(),
            raw=raw,
        )
        self.requests.append(recorded)
        return recorded

    async def _serve(self, request: Request, *, stream: bool) -> Response:
        recorded = await self._record(request)
        reply = self._next_reply(recorded)
        delay = reply.delay if isinstance(reply, Turn | Fail) else 0.0
        if delay and not await self._wait_or_disconnect(request, delay):
            self.aborted.append(recorded)
            return Response(status_code=499)
        if isinstance(reply, Fail):
            return self.render_error(reply)
        if isinstance(reply, StreamDrop):
            turn = reply.turn
        else:
            turn = reply if isinstance(reply, Turn) else (reply.turn or Turn(parts=()))
        model = self.model_of(recorded)
        if not stream:
            if isinstance(reply, StreamFail):
                return self.render_error(Fail(500, reply.message, reply.error_type))
            if isinstance(reply, StreamDrop):
                return self.render_error(Fail(502, "connection dropped"))
            return json_response(200, self.render_json(turn, model))
        frames = list(self.render_stream(turn, model))
        if isinstance(reply, StreamFail):
            frames = [*frames[: reply.after_events], self.render_stream_error(reply)]
        elif isinstance(reply, StreamDrop):
            frames = frames[: reply.after_events]
        return StreamingResponse(
            self._paced(frames, turn.chunk_delay, recorded),
            media_type=self.stream_media_type,
        )

    async def _paced(
        self, frames: Iterable[bytes], delay: float, recorded: RecordedRequest
    ) -> AsyncIterator[bytes]:
        finished = False
        try:
            for frame in frames:
                if delay:
                    await asyncio.sleep(delay)
                yield frame
            finished = True
        finally:
            if not finished:
                self.aborted.append(recorded)

    async def _wait_or_disconnect(self, request: Request, delay: float) -> bool:
        """Sleep ``delay``; False if the client disconnected first."""

        async def disconnected() -> None:
            while True:
                message = await request.receive()
                if message["type"] == "http.disconnect":
                    return

        watcher = asyncio.ensure_future(disconnected())
        try:
            done, _ = await asyncio.wait({watcher}, timeout=delay)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        return not done

    # --- rendering (per provider) -----------------------------------------------

    stream_media_type = "text/event-stream"

    def model_of(self, recorded: RecordedRequest) -> str:
        body = recorded.body
        if isinstance(body, dict) and isinstance(body.get("model"), str):
            return str(body["model"])
        return "fake-model"

    def render_json(self, turn: Turn, model: str) -> dict[str, Any]:
        raise NotImplementedError

    def render_stream(self, turn: Turn, model: str) -> Iterable[bytes]:
        raise NotImplementedError

    def render_stream_error(self, fail: StreamFail) -> bytes:
        raise NotImplementedError

    def render_error(self, fail: Fail) -> Response:
        raise NotImplementedError


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    # Written by runwire's exact JSON writer: a reply's numbers keep every digit.
    return Response(
        jsonvalues.dumps(body),
        status_code=status,
        headers=dict(headers or {}),
        media_type="application/json",
    )


def pieces(text: str, size: int) -> list[str]:
    """``text`` cut into ``size``-character pieces (at least one, maybe empty)."""
    size = max(1, size)
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
