"""Errors as JSON bodies that say what went wrong and where.

Every error response has the body::

    {"error": "<code>", "message": "<what>", "where": "<METHOD path>", "problems": [...]}

``problems`` (only for ``invalid_request``) lists each invalid field as
``{"where": "body.prompt", "what": "Field required"}``. Status codes:

- 400 ``bad_page_token``, 401 ``unauthorized``, 403 ``forbidden``,
  404 ``not_found``, 405 ``method_not_allowed``, 409 ``conflict``,
  422 ``invalid_request`` (pydantic validation of path, query and body);
- 503 ``unavailable`` for retriable failures (a projection behind, Kafka
  unreachable), with ``Retry-After``;
- 500 ``internal`` for anything else; the details go to the log, not the caller.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from runwire.errors import RunwireError
from runwire.projections.runtime.paging import BadPageToken

__all__ = ["ApiError", "error_body", "install_error_handlers"]

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "invalid_request",
    503: "unavailable",
}


class ApiError(Exception):
    """An error the API answers with: status, code, message (and headers)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        problems: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.problems = problems

    @classmethod
    def not_found(cls, what: str, ident: str) -> ApiError:
        """404 for ``what`` ``ident``: the same words whether it is missing or another user's."""
        return cls(404, "not_found", f"{what} {ident!r} not found")


def _where(request: Request) -> str:
    return f"{request.method} {request.url.path}"


def error_body(
    request: Request, code: str, message: str, problems: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "message": message, "where": _where(request)}
    if problems is not None:
        body["problems"] = problems
    return body


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with the JSON body above."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(request, error.code, error.message, error.problems),
            status_code=error.status,
            headers=error.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [{"where": _loc(e["loc"]), "what": str(e["msg"])} for e in error.errors()]
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        message = f"{count} in the request: " + "; ".join(
            f"{p['where']}: {p['what']}" for p in problems
        )
        return JSONResponse(
            error_body(request, "invalid_request", message, problems), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = _CODES.get(error.status_code, "error")
        message = str(error.detail)
        if error.status_code == 404:
            message = f"no route {request.url.path!r}"
        return JSONResponse(
            error_body(request, code, message),
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )

    @app.exception_handler(BadPageToken)
    async def _bad_page(request: Request, error: BadPageToken) -> JSONResponse:
        return JSONResponse(
            error_body(request, "bad_page_token", f"query.page: {error}"), status_code=400
        )

    @app.exception_handler(RunwireError)
    async def _runwire(request: Request, error: RunwireError) -> JSONResponse:
        if error.retriable:
            log.warning("%s: retriable failure: %s", _where(request), error)
            return JSONResponse(
                error_body(request, "unavailable", f"{type(error).__name__}: {error}"),
                status_code=503,
                headers={"Retry-After": "1"},
            )
        log.error("%s failed", _where(request), exc_info=error)
        return JSONResponse(
            error_body(request, "internal", f"{type(error).__name__} while serving the request"),
            status_code=500,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.error("%s failed", _where(request), exc_info=error)
        return JSONResponse(
            error_body(request, "internal", "internal error while serving the request"),
            status_code=500,
        )
