"""Provider errors become retry decisions here, and only here.

Contract:
- :func:`classify_error` turns any exception an SDK raises (OpenAI, Anthropic,
  botocore) into a :class:`ProviderError` whose ``retriable``,
  ``retry_after``, ``status`` and ``kind`` say what to do. Retriable: HTTP
  408, 409, 429 and 5xx (Anthropic's 529 "overloaded" included), timeouts,
  connection failures, and errors a provider reports mid-stream as
  overloaded / rate limited / internal. Final: every other 4xx. A provider's
  explicit ``x-should-retry`` header wins over the status.
- ``retry-after-ms`` (milliseconds) is preferred over ``retry-after``
  (seconds or an HTTP date); either becomes ``retry_after`` in seconds.
- :func:`call_with_retries` runs one call under a :class:`RetryPolicy`: a
  timeout per attempt, at most ``max_attempts`` attempts, waiting
  ``retry_after`` when the provider asked for it and exponential backoff
  with jitter otherwise. It gives up early when the provider asks for a wait
  longer than ``max_retry_after``.
- Cancellation is prompt: cancelling the awaiting task, or setting the
  ``cancel`` event, aborts the attempt in flight (or the wait between two
  attempts). The event makes it raise :class:`CallCanceled`.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from runwire.errors import ProviderError, RunwireError
from runwire.settings import Settings

T = TypeVar("T")

RETRIABLE_STATUSES = frozenset({408, 409, 429})
"""4xx statuses worth another attempt; every 5xx is too."""

# Error types providers report inside a body (Anthropic SSE ``error`` events,
# Bedrock exception names) that mean "try again later".
_RETRIABLE_ERROR_TYPES = frozenset(
    {
        "overloaded_error",
        "api_error",
        "rate_limit_error",
        "timeout_error",
        "server_error",
        "rate_limit_exceeded",
        "ThrottlingException",
        "ServiceUnavailableException",
        "InternalServerException",
        "ModelNotReadyException",
        "ModelTimeoutException",
        "ModelStreamErrorException",
        "throttlingException",
        "serviceUnavailableException",
        "internalServerException",
        "modelStreamErrorException",
    }
)

_KIND_BY_STATUS = {
    400: "invalid_request",
    401: "authentication",
    403: "permission_denied",
    404: "not_found",
    408: "timeout",
    409: "conflict",
    413: "request_too_large",
    422: "invalid_request",
    429: "rate_limited",
    529: "overloaded",
}


class CallCanceled(RunwireError):
    """The call was canceled through its ``cancel`` event (e.g. the run was canceled)."""

    kind = "canceled"


@dataclass(frozen=True)
class RetryPolicy:
    """How one model call is retried.

    ``max_attempts`` counts the first attempt; ``timeout`` bounds each attempt
    (``None``: unbounded). The n-th retry waits ``base_delay *
    multiplier**(n-1)`` capped at ``max_delay``, of which the ``jitter``
    fraction is random, unless the provider said how long to wait.
    """

    max_attempts: int = 5
    timeout: float | None = 60.0
    base_delay: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 20.0
    jitter: float = 0.5
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be >= 1, got {self.max_attempts}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"RetryPolicy.jitter must be within [0, 1], got {self.jitter}")

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """``model_max_retries`` retries after the first attempt, each bounded by
        ``model_timeout_seconds``."""
        return cls(
            max_attempts=max(1, settings.model_max_retries + 1),
            timeout=settings.model_timeout_seconds,
        )

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        """The wait before retry number ``retry_number`` (1-based) when the
        provider gave no ``retry_after``."""
        ceiling = min(self.max_delay, self.base_delay * self.multiplier ** max(0, retry_number - 1))
        spread = ceiling * self.jitter
        draw = (rng or random).random()
        return ceiling - spread + spread * draw

    def delay_for(
        self, error: ProviderError, retry_number: int, rng: random.Random | None = None
    ) -> float:
        if error.retry_after is not None:
            return max(0.0, error.retry_after)
        return self.backoff(retry_number, rng)


RetryHook = Callable[[int, ProviderError, float], Awaitable[None]]
"""Called before each retry with (attempt that failed, its error, the wait)."""


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    cancel: asyncio.Event | None = None,
    on_retry: RetryHook | None = None,
    rng: random.Random | None = None,
) -> T:
    """Run ``fn`` until it succeeds, fails finally, or runs out of attempts.

    Raises the last :class:`ProviderError` (SDK exceptions are classified
    first), any other :class:`RunwireError` as it came (retried only if it is
    ``retriable``), :class:`CallCanceled` when ``cancel`` is set, and
    ``asyncio.CancelledError`` when the awaiting task is cancelled. Other
    exceptions are bugs and propagate untouched on the first attempt.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return await _cancellable(_one_attempt(fn, policy.timeout), cancel)
        except CallCanceled:
            raise
        except RunwireError as err:
            error = err
        except Exception as exc:
            if not _is_sdk_error(exc):
                raise
            error = classify_error(exc)
            if error is not exc:
                error.__cause__ = exc
        if not error.retriable or attempt >= policy.max_attempts:
            raise error
        provider_error = (
            error
            if isinstance(error, ProviderError)
            else ProviderError(str(error), retriable=True, kind=getattr(error, "kind", "error"))
        )
        delay = policy.delay_for(provider_error, attempt, rng)
        if delay > policy.max_retry_after:
            raise ProviderError(
                f"{provider_error} (the provider asked to wait {delay:.0f}s, more than "
                f"the {policy.max_retry_after:.0f}s this policy allows)",
                status=provider_error.status,
                retriable=False,
                retry_after=provider_error.retry_after,
                kind=provider_error.kind,
            ) from error
        if on_retry is not None:
            await on_retry(attempt, provider_error, delay)
        await _cancellable(asyncio.sleep(delay), cancel)


async def _one_attempt(fn: Callable[[], Awaitable[T]], limit: float | None) -> T:
    try:
        async with asyncio.timeout(limit):
            return await fn()
    except TimeoutError as exc:
        raise ProviderError(
            f"model call timed out after {limit}s", retriable=True, kind="timeout"
        ) from exc


async def _cancellable(awaitable: Awaitable[T], cancel: asyncio.Event | None) -> T:
    """Await ``awaitable``; if ``cancel`` is set first, abort it and raise CallCanceled."""
    if cancel is None:
        return await awaitable
    if cancel.is_set():
        if asyncio.iscoroutine(awaitable):
            awaitable.close()
        raise CallCanceled("the model call was canceled before it started")
    work = asyncio.ensure_future(awaitable)
    stop = asyncio.ensure_future(cancel.wait())
    try:
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Reached on success, on the cancel event, and when the awaiting task
        # itself is cancelled: in every case nothing may keep running.
        for task in (stop, work):
            if not task.done():
                task.cancel()
        await asyncio.gather(stop, work, return_exceptions=True)
    if work.cancelled():
        raise CallCanceled("the model call was canceled")
    return work.result()


# --- classification -----------------------------------------------------------


def _is_sdk_error(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] in {"openai", "anthropic", "botocore"}


def classify_error(exc: BaseException, *, provider: str | None = None) -> ProviderError:
    """The retry decision for ``exc``, as a ProviderError (returned, not raised).

    A ProviderError is returned as is; SDK exceptions are recognised by the
    SDK they come from, imported only when such an exception is seen.
    """
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return ProviderError(_prefix(provider, f"timed out: {exc}"), retriable=True, kind="timeout")
    root = type(exc).__module__.split(".")[0]
    if root in {"openai", "anthropic"}:
        return _from_stainless_sdk(exc, provider or root)
    if root == "botocore":
        return _from_botocore(exc, provider or "bedrock")
    return ProviderError(
        _prefix(provider, f"{type(exc).__name__}: {exc}"), retriable=False, kind="provider_error"
    )


def decide(
    status: int | None,
    *,
    message: str,
    provider: str | None = None,
    headers: Mapping[str, str] | None = None,
    error_type: str | None = None,
) -> ProviderError:
    """The retry decision for an HTTP status (and the provider's error type)."""
    headers = headers or {}
    retry_after = parse_retry_after(headers)
    retriable = _retriable_status(status) or (error_type in _RETRIABLE_ERROR_TYPES)
    should_retry = _header(headers, "x-should-retry")
    if should_retry == "true":
        retriable = True
    elif should_retry == "false":
        retriable = False
    kind = _KIND_BY_STATUS.get(status or 0) or (
        "server_error" if status is not None and status >= 500 else "provider_error"
    )
    if error_type in {"overloaded_error", "ServiceUnavailableException"}:
        kind = "overloaded"
    elif error_type in {"rate_limit_error", "ThrottlingException", "throttlingException"}:
        kind = "rate_limited"
    text = f"{status} {message}" if status is not None else message
    return ProviderError(
        _prefix(provider, text),
        status=status,
        retriable=retriable,
        retry_after=retry_after,
        kind=kind,
    )


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    millis = _header(headers, "retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = _header(headers, "retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _retriable_status(status: int | None) -> bool:
    return status is not None and (status in RETRIABLE_STATUSES or status >= 500)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = {k.lower(): v for k, v in headers.items()}
        value = lowered.get(name)
    return value


def _prefix(provider: str | None, text: str) -> str:
    return f"{provider}: {text}" if provider else text


def _from_stainless_sdk(exc: BaseException, provider: str) -> ProviderError:
    """OpenAI and Anthropic SDKs share one exception layout."""
    if provider == "anthropic" or type(exc).__module__.startswith("anthropic"):
        import anthropic as sdk
    else:
        import openai as sdk  # type: ignore[no-redef]

    if isinstance(exc, sdk.APITimeoutError):
        return ProviderError(f"{provider}: request timed out", retriable=True, kind="timeout")
    if isinstance(exc, sdk.APIConnectionError):
        return ProviderError(
            f"{provider}: connection failed: {exc.__cause__ or exc}",
            retriable=True,
            kind="connection_error",
        )
    if isinstance(exc, sdk.APIStatusError):
        error_type, message = _error_body(exc.body, exc.message)
        status = exc.status_code
        if 200 <= status < 300:
            # An error event inside a successful stream: decide by its type.
            return decide(
                None,
                message=f"{error_type or 'error'} during the stream: {message}",
                provider=provider,
                error_type=error_type,
            )
        return decide(
            status,
            message=f"{error_type}: {message}" if error_type else message,
            provider=provider,
            headers=dict(exc.response.headers),
            error_type=error_type,
        )
    if isinstance(exc, sdk.APIError):
        error_type, message = _error_body(exc.body, exc.message)
        return decide(
            None, message=message, provider=provider, error_type=error_type or "api_error"
        )
    return ProviderError(f"{provider}: {type(exc).__name__}: {exc}", kind="provider_error")


def _error_body(body: object, fallback: str) -> tuple[str | None, str]:
    """(error type, human message) from an OpenAI / Anthropic error body."""
    if isinstance(body, dict):
        inner: Any = body.get("error", body)
        if isinstance(inner, dict):
            message = inner.get("message")
            error_type = inner.get("type") or inner.get("code")
            return (
                str(error_type) if error_type else None,
                str(message) if message else fallback,
            )
    if isinstance(body, str) and body:
        return None, body
    return None, fallback


def _from_botocore(exc: BaseException, provider: str) -> ProviderError:
    from botocore import exceptions as bx

    if isinstance(exc, bx.ClientError):
        response: dict[str, Any] = exc.response
        error = response.get("Error", {})
        meta = response.get("ResponseMetadata", {})
        status = meta.get("HTTPStatusCode")
        code = str(error.get("Code") or "")
        message = str(error.get("Message") or exc)
        return decide(
            status if isinstance(status, int) and status >= 400 else None,
            message=f"{code}: {message}" if code else message,
            provider=provider,
            headers=meta.get("HTTPHeaders") or {},
            error_type=code or None,
        )
    if isinstance(exc, bx.ReadTimeoutError | bx.ConnectTimeoutError):
        return ProviderError(
            f"{provider}: request timed out: {exc}", retriable=True, kind="timeout"
        )
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectionClosedError | bx.HTTPClientError):
        return ProviderError(
            f"{provider}: connection failed: {exc}", retriable=True, kind="connection_error"
        )
    return ProviderError(f"{provider}: {type(exc).__name__}: {exc}", kind="provider_error")
