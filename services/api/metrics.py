"""Request counts and latency for Prometheus (``GET /metrics``).

Each app has its own registry (two apps in one process, as in tests, do not
collide), except under ``runwire serve api``, which gives it the process
registry of :mod:`runwire.telemetry.metrics` (one ``/metrics`` for all). Requests are labelled by the route's template (``/v1/runs/{run_id}``),
never by the raw path, so ids do not explode the label space; a path no route
matches counts as ``<unmatched>``. Likewise the method is a label only when it
is one of HTTP's own (:data:`METHODS`): any other token a client sends (the
server takes any, before authentication) counts as ``<other>``. The latency of
an event stream is how long the stream stayed open; ``runwire_api_open_streams``
counts the open ones.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["METHODS", "ApiMetrics", "MetricsMiddleware"]

METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
"""The methods labelled as themselves (RFC 9110 and PATCH); the rest are ``<other>``."""

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ApiMetrics:
    """The API's collectors on a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "runwire_api_requests",
            "HTTP requests answered, by method, route template and status code",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "runwire_api_request_duration_seconds",
            "Time from request to the end of the response, by method and route template",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.open_streams = Gauge(
            "runwire_api_open_streams",
            "Event streams (GET /v1/runs/{run_id}/events) open now",
            registry=self.registry,
        )


def _method_of(scope: Scope) -> str:
    method = scope["method"]
    return method if method in METHODS else "<other>"


def _route_of(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "<unmatched>"


class MetricsMiddleware:
    """Pure ASGI middleware (it does not buffer streamed bodies) feeding :class:`ApiMetrics`."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            method = _method_of(scope)
            route = _route_of(scope)
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)
