"""Errors as JSON bodies that say what went wrong and where.

Every error response has the body::

    {"error": "<code>", "message": "<what>", "where": "<METHOD path>", "problems": [...]}

``problems`` (only for ``invalid_request``) lists each invalid field as
``{"where": "body.prompt", "what": "Field required"}``. Status codes:

- 400 ``bad_page_token``, 401 ``unauthorized``, 403 ``forbidden``,
  404 ``not_found``, 405 ``method_not_allowed``, 409 ``conflict``,
  409 ``session_busy`` (:class:`~runwire.sessions.errors.SessionBusy`: a
  write named a session version that is no longer current, or another
  writer holds the session; the message says the version to retry on),
  409 ``erased`` (a write to an erased session, or for an erased user:
  docs/sealing.md),
  408 ``body_timeout`` (a body that did not arrive in time),
  413 ``too_large`` (a body over the API's limit),
  422 ``invalid_request`` (pydantic validation of path, query and body);
- 503 ``unavailable`` with ``Retry-After`` for retriable failures: a
  :class:`~runwire.errors.RunwireError` that is ``retriable``, and every
  error of an outage (:data:`OUTAGES`: Postgres, its pool, Redis or Kafka
  unreachable or too slow, a timeout);
- 500 ``internal`` for anything else; the details go to the log, not the caller.

:class:`ErrorBody` is that body as a model, and :data:`ERROR_DESCRIPTIONS`
what each status means, for the OpenAPI document.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import psycopg
import redis.exceptions
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from runwire.contract.codec import EventTooLargeError
from runwire.contract.sealing import SessionErasedError, UserErasedError
from runwire.errors import InputError, RunwireError
from runwire.projections.runtime.paging import BadPageToken
from runwire.sessions.errors import SessionBusy

__all__ = [
    "ERROR_DESCRIPTIONS",
    "OUTAGES",
    "RETRY_AFTER",
    "ApiError",
    "ErrorBody",
    "Problem",
    "Unavailable",
    "error_body",
    "install_error_handlers",
]

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    408: "body_timeout",
    413: "too_large",
    422: "invalid_request",
    503: "unavailable",
}

RETRY_AFTER = "1"
"""Seconds a caller is asked to wait after a 503 (the ``Retry-After`` header)."""

OUTAGES: tuple[type[Exception], ...] = (
    psycopg.OperationalError,  # connection lost or refused; psycopg_pool's PoolTimeout too
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    KafkaConnectionError,
    KafkaTimeoutError,
    TimeoutError,
    ConnectionError,
)
"""Errors that mean a backend is down or too slow, not that the request is wrong:
each is answered 503 with ``Retry-After``, never 500."""

ERROR_DESCRIPTIONS = {
    400: "bad_page_token: `?page=` is not a token this API handed out",
    401: "unauthorized: no API key, another scheme, or an unknown key",
    403: "forbidden: a read-only API key on a write",
    404: "not_found: an unknown, deleted or another user's session or run",
    409: "conflict: the run has ended, or does not await that tool call; "
    "erasure_unavailable: erasing a session needs sealing on; session_busy: "
    "another writer got to the session first (read its version again and retry)",
    408: "body_timeout: the request body did not arrive in time (`Options.body_timeout`)",
    413: "too_large: the request body is over the API's limit",
    422: "invalid_request: the request does not validate (`problems` says where)",
    503: "unavailable: a backend is down or behind; retry after `Retry-After` seconds",
}
"""What each error status of the API means (the OpenAPI document's descriptions)."""


class Problem(BaseModel):
    """One invalid field of a request."""

    where: str
    what: str


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: str
    message: str
    where: str
    problems: list[Problem] | None = None


class Unavailable(RunwireError):
    """A backend did not answer in time (answered 503 with ``Retry-After``)."""

    retriable = True


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


@contextlib.contextmanager
def input_as_422(part: str, names: Mapping[str, str] | None = None) -> Iterator[None]:
    """An :class:`InputError` about a request value as a 422 naming it: ``part`` is
    ``query`` or ``body``, ``names`` maps the library's field names to the request's."""
    try:
        yield
    except InputError as e:
        where = f"{part}.{(names or {}).get(e.field, e.field)}"
        raise ApiError(
            422,
            "invalid_request",
            f"{where}: {e.reason}",
            problems=[{"where": where, "what": e.reason}],
        ) from None


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
            error_body(request, code, message, getattr(error, "problems", None)),
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
        if isinstance(error, SessionBusy):  # retriable, but by the caller on a new version
            return JSONResponse(error_body(request, "session_busy", str(error)), status_code=409)
        if isinstance(error, SessionErasedError | UserErasedError):  # for good: never again
            return JSONResponse(error_body(request, "erased", str(error)), status_code=409)
        if error.retriable:
            return _unavailable(request, error)
        if isinstance(error, EventTooLargeError):  # the request asked to write too much
            return JSONResponse(error_body(request, "too_large", str(error)), status_code=413)
        if isinstance(error, InputError):  # a value the SDK's edge check refuses
            problems = [{"where": f"body.{error.field}", "what": error.reason}]
            return JSONResponse(
                error_body(request, "invalid_request", str(error), problems), status_code=422
            )
        log.error("%s failed", _where(request), exc_info=error)
        return JSONResponse(
            error_body(request, "internal", f"{type(error).__name__} while serving the request"),
            status_code=500,
        )

    async def _outage(request: Request, error: Exception) -> JSONResponse:
        # The library's own words may name hosts and ports: they go to the log only.
        backend = _BACKENDS.get(type(error).__module__.split(".")[0], "a backend")
        return _unavailable(request, error, f"{backend} is unavailable ({type(error).__name__})")

    for outage in OUTAGES:
        app.add_exception_handler(outage, _outage)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.error("%s failed", _where(request), exc_info=error)
        return JSONResponse(
            error_body(request, "internal", "internal error while serving the request"),
            status_code=500,
        )


_BACKENDS = {
    "psycopg": "Postgres",
    "psycopg_pool": "Postgres",
    "redis": "Redis",
    "aiokafka": "Kafka",
}


def _unavailable(
    request: Request, error: BaseException, message: str | None = None
) -> JSONResponse:
    log.warning("%s: retriable failure: %s: %s", _where(request), type(error).__name__, error)
    return JSONResponse(
        error_body(request, "unavailable", message or f"{type(error).__name__}: {error}"),
        status_code=503,
        headers={"Retry-After": RETRY_AFTER},
    )
