"""The request body limits: no body over ``max_bytes`` is read into memory, and
none may take more than ``timeout`` seconds to arrive.

Contract (pure ASGI middleware, :class:`BodyLimit`):
- A request whose ``Content-Length`` is over the limit is answered 413
  ``too_large`` at once; not a byte of its body is read.
- A body without ``Content-Length`` (chunked) is counted while it streams in;
  the read that takes it over the limit raises :class:`BodyTooLarge`, which
  the app answers 413 like any HTTP error (the error body of
  :mod:`.errors`). Neither the over-limit chunk nor any later one is kept.
- Either 413 carries ``Connection: close``: the rest of the body is not
  waited for on that connection.
- A body that has not arrived whole ``timeout`` seconds after the app first
  read from it raises :class:`BodyTimeout` (408 ``body_timeout``, also with
  ``Connection: close``). Once the body is whole, reads wait as long as they
  like (an event stream listens for the client's disconnect that way).
"""

from __future__ import annotations

import asyncio

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runwire.services.api.errors import error_body

__all__ = ["BodyLimit", "BodyTimeout", "BodyTooLarge"]


class BodyTooLarge(HTTPException):
    """The request body is over the API's limit (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"the request body is larger than the limit of {limit} bytes",
            headers={"Connection": "close"},
        )


class BodyTimeout(HTTPException):
    """The request body did not arrive within the API's time (408)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            408,
            f"the request body did not arrive within {seconds:g} s",
            headers={"Connection": "close"},
        )


def _declared_length(scope: Scope) -> int | None:
    raw = Headers(scope=scope).get("content-length")
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None  # the server refuses such a request before the app sees it


class BodyLimit:
    """Pure ASGI middleware enforcing the body limit (see the module contract)."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False
        whole = False
        deadline: float | None = None

        async def counting() -> Message:
            nonlocal received, whole, deadline
            if whole:
                return await receive()
            if deadline is None:
                deadline = asyncio.get_running_loop().time() + self.timeout
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout(self.timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
                whole = not message.get("more_body", False)
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting, sending)
        except BodyTooLarge:
            # Only reached when the app let it escape (its error handlers answer it otherwise).
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = BodyTooLarge(self.max_bytes)
        response = JSONResponse(
            error_body(Request(scope), "too_large", error.detail),
            status_code=413,
            headers=error.headers,
        )
        await response(scope, receive, send)
