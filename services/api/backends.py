"""What the routes read and write through, open for the app's lifetime.

Contract: a request of a tenant's API key gets its tenant's backends: the
run-status store and the session index read as that tenant (row-level
security, docs/tenants.md), and the transcript cache reads that tenant's
keys, so no query of a route can return another tenant's row. Every call a route makes through :class:`Backends` ends within
``Options.backend_timeout`` seconds (:func:`bounded` wraps each backend), so
a backend that hangs - Postgres not answering, a Kafka write that cannot
complete - costs a request a bounded wait and a 503, never a stuck request.
``wait_for`` (read-your-writes after a write) is the exception: it has its
own deadline, and a backend failing there means "not visible yet" (the write
already happened; a 503 would invite a retry that writes it twice). The live
event stream (``RunControl.events``) is not bounded: it stays open by design.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Protocol, TypeVar, cast, runtime_checkable

from fastapi import Depends, Request

from runwire.log.records import LogPosition
from runwire.projections.runtime.waiting import NotCaughtUpError
from runwire.projections.usage.prices import PriceTable
from runwire.projections.usage.reader import UsageSource
from runwire.services.api.auth import PRINCIPAL_SCOPE_KEY, Principal
from runwire.services.api.errors import OUTAGES, RETRY_AFTER, ApiError, Unavailable
from runwire.services.api.ports import (
    RunControl,
    RunReader,
    SessionEraser,
    SessionReader,
    TranscriptReader,
)

__all__ = ["Backends", "Options", "Using", "backends", "bounded", "by_tenant"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Options:
    """How the API behaves (constructor arguments of ``create_app``)."""

    visibility_timeout: float = 5.0
    """Seconds ``POST /v1/runs`` waits for the projections to show the new run."""
    keepalive_seconds: float = 15.0
    """Seconds between keepalive comments on an idle event stream."""
    max_body_bytes: int = 2 * 1024 * 1024
    """The largest request body taken, in bytes; a larger one is 413 (checked before it is
    read when ``Content-Length`` says so, else while it streams in). 2 MiB holds the
    largest prompt (200,000 characters) even with every character escaped."""
    backend_timeout: float = 5.0
    """Seconds one call to Postgres, Redis or Kafka may take before the request is 503."""
    body_timeout: float = 30.0
    """Seconds a request body may take to arrive, from the first read of it; a slower
    one is 408 (a client trickling its body holds no request open for long)."""


@dataclass(frozen=True, slots=True)
class Backends:
    runs: RunReader
    sessions: SessionReader
    transcripts: TranscriptReader
    control: RunControl
    options: Options
    usage: UsageSource
    prices: PriceTable
    eraser: SessionEraser | None = None
    """None: the deployment cannot erase (sealing is off)."""
    tenants: Mapping[str, Backends] = field(default_factory=dict)
    """The same backends reading as each tenant (:func:`by_tenant`)."""


def backends(request: Request) -> Backends:
    """The app's open backends, a tenant key's tenant's; 503 while the app starts or stops
    (lifespan not running)."""
    current = getattr(request.app.state, "backends", None)
    if not isinstance(current, Backends):
        raise ApiError(
            503,
            "unavailable",
            "the API is starting or stopping; try again",
            headers={"Retry-After": RETRY_AFTER},
        )
    principal = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if isinstance(principal, Principal) and principal.tenant is not None:
        return current.tenants.get(principal.tenant, current)
    return current


Using = Annotated[Backends, Depends(backends)]
"""A route parameter: the app's open backends."""


@runtime_checkable
class TenantScoped(Protocol):
    """A reader that can read as one tenant (the Postgres readers, the transcript cache)."""

    def for_tenant(self, tenant: str) -> Any: ...


def by_tenant(given: Backends, tenants: Iterable[str]) -> Backends:
    """``given`` with, for each tenant, its readers reading as that tenant.

    Readers that cannot be scoped (test twins) are kept as they are: the
    routes' own ownership checks (:mod:`~runwire.services.api.access`) still
    compare the tenant.
    """
    runs, sessions, transcripts = given.runs, given.sessions, given.transcripts
    if not (isinstance(runs, TenantScoped) and isinstance(sessions, TenantScoped)):
        return given
    return replace(
        given,
        tenants={
            tenant: replace(
                given,
                runs=cast(RunReader, runs.for_tenant(tenant)),
                sessions=cast(SessionReader, sessions.for_tenant(tenant)),
                # The transcript cache keeps each tenant's runs in its own keys.
                transcripts=(
                    cast(TranscriptReader, transcripts.for_tenant(tenant))
                    if isinstance(transcripts, TenantScoped)
                    else transcripts
                ),
            )
            for tenant in tenants
        },
    )


def bounded(given: Backends) -> Backends:
    """``given`` with every call bounded by ``given.options.backend_timeout`` (see the module)."""
    timeout = given.options.backend_timeout
    return replace(
        given,
        runs=cast(RunReader, _Bounded(given.runs, "the run-status store", timeout)),
        sessions=cast(SessionReader, _Bounded(given.sessions, "the session index", timeout)),
        transcripts=cast(
            TranscriptReader, _Bounded(given.transcripts, "the transcript cache", timeout)
        ),
        control=cast(RunControl, _Bounded(given.control, "the log (Kafka)", timeout)),
        usage=cast(UsageSource, _Bounded(given.usage, "the usage store", timeout)),
        tenants={tenant: bounded(scoped) for tenant, scoped in given.tenants.items()},
    )


class _Bounded:
    """``inner`` with each of its coroutine methods bounded by ``timeout`` seconds.

    A proxy rather than one class per port, so a method added to a port is
    bounded without a change here. What is not a coroutine method (the live
    event stream) passes through as it is; ``wait_for`` keeps its own deadline.
    A write that times out may still have been written (as with any lost reply).
    """

    def __init__(self, inner: object, name: str, timeout: float) -> None:
        self._inner = inner
        self._name = name
        self._timeout = timeout

    def __getattr__(self, attr: str) -> Any:
        member = getattr(self._inner, attr)
        if attr == "wait_for":
            return functools.partial(self._wait_for, member)
        if not inspect.iscoroutinefunction(member):
            return member
        return functools.partial(self._call, attr, member)

    async def _call(self, attr: str, call: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T:
        try:
            async with asyncio.timeout(self._timeout):
                return await call(*args, **kw)
        except TimeoutError:
            raise Unavailable(
                f"{self._name} did not answer ({attr}) within {self._timeout:g} s"
            ) from None

    async def _wait_for(
        self,
        wait_for: Callable[..., Awaitable[None]],
        position: LogPosition,
        timeout: float = 10.0,  # noqa: ASYNC109 - the port's own deadline, handed on
    ) -> None:
        try:
            async with asyncio.timeout(timeout + self._timeout):
                await wait_for(position, timeout=timeout)
        except OUTAGES as e:  # TimeoutError among them
            log.warning("%s: waiting for %s failed: %r", self._name, position, e)
            raise NotCaughtUpError(f"{self._name} cannot tell whether it is at {position}") from e
