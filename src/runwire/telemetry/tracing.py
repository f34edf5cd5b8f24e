"""Tracing as services call it: free while off, OpenTelemetry while on.

Contract:
- Off by default. :func:`configure` switches it on for the process when the
  environment asks for it (:func:`wanted`: ``OTEL_TRACES_EXPORTER`` or an
  ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`` is set, and ``OTEL_SDK_DISABLED``
  is not ``true``); ``OTEL_TRACES_EXPORTER=none`` traces (the context goes
  on in the headers, a sampler decides) without exporting.
- While off, nothing of OpenTelemetry is imported and :func:`handling` /
  :func:`span` return one shared no-op context manager (one global read).
- While on, :mod:`runwire.telemetry.otel` gives every publish call its span
  and carries the W3C trace context in every record's headers;
  :func:`handling` opens the span of handling a read event (the
  orchestrator answering a delta, the tool runner running a call) under
  that event's record, :func:`applying` the spans of a projector's batch,
  and :func:`span` a span under the current one (a model call, a tool). Both yield the span (``None`` while off) for
  attributes known at the end (tokens, outcome).
- :func:`enable` / :func:`disable` install a given :class:`~runwire.telemetry.otel.Tracing`
  (tests use an in-memory exporter).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from runwire.log import hooks

if TYPE_CHECKING:
    from runwire.log.records import SourceRecord
    from runwire.telemetry.otel import Tracing

__all__ = [
    "applying",
    "configure",
    "disable",
    "enable",
    "enabled",
    "handling",
    "span",
    "wanted",
]

_active: Tracing | None = None
_OFF: AbstractContextManager[Any] = contextlib.nullcontext(None)


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for tracing (see the module contract)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(
        environ.get(name)
        for name in (
            "OTEL_TRACES_EXPORTER",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        )
    )


def configure(service: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Switch tracing on for this process if the environment asks for it; True if on."""
    if _active is not None:
        return True
    if not wanted(environ):
        return False
    try:
        from runwire.telemetry import otel
    except ImportError as e:
        from runwire.errors import ConfigurationError

        raise ConfigurationError(
            f"tracing is asked for (OTEL_* variables) but OpenTelemetry is not installed: "
            f"{e}; install runwire[tracing]"
        ) from e
    enable(otel.from_env(service, environ))
    return True


def enable(tracing: Tracing) -> None:
    """Trace with ``tracing`` from now on (replacing any other)."""
    global _active
    if _active is not None:
        hooks.uninstall(_active)
    _active = tracing
    hooks.install(tracing)
    hooks.set_scope(tracing.publishing)


def disable() -> Tracing | None:
    """Stop tracing; returns what was on (its provider is not shut down)."""
    global _active
    tracing, _active = _active, None
    if tracing is not None:
        hooks.uninstall(tracing)
        hooks.set_scope(None)
    return tracing


def enabled() -> bool:
    return _active is not None


def handling(
    event_id: str | None, name: str, attributes: Mapping[str, Any] | None = None
) -> AbstractContextManager[Any]:
    """The span of handling the read event ``event_id`` (see the module contract)."""
    tracing = _active
    if tracing is None:
        return _OFF
    return tracing.handling(event_id, name, attributes)


def applying(name: str, records: Sequence[SourceRecord]) -> AbstractContextManager[Any]:
    """Spans for a projector applying ``records`` (one per trace among them)."""
    tracing = _active
    if tracing is None:
        return _OFF
    return tracing.applying(name, records)


def span(
    name: str, attributes: Mapping[str, Any] | None = None, *, client: bool = False
) -> AbstractContextManager[Any]:
    """A span under the current one (``client``: a call to another system)."""
    tracing = _active
    if tracing is None:
        return _OFF
    return tracing.span(name, attributes, client=client)
