"""The OpenTelemetry side of :mod:`runwire.telemetry.tracing` (imported only when tracing is on).

Contract:
- :class:`Tracing` is a :class:`runwire.log.hooks.LogHook`:
  ``writing`` starts and ends a PRODUCER span ``send <topic>`` for the
  record and writes its W3C ``traceparent`` (and ``tracestate``) into the
  record's headers; ``read`` extracts the context from a record's headers
  and starts and ends a CONSUMER span ``process <topic>`` under it.
- A publish's parent is the current span when there is one (a handler's,
  a model call's, an HTTP request's); otherwise the span of the record its
  event was caused by (``causation_id``), if this process read that record
  recently; otherwise it starts a trace.
- A missing or malformed ``traceparent`` starts a new trace (the span says
  ``runwire.trace.malformed`` when a header was there); it never fails
  the record.
- The contexts of recently read records are remembered by event id
  (:data:`REMEMBERED` of them, the oldest forgotten first) so that the work
  they cause, published later from another task, joins their trace.
- :func:`from_env` builds the provider from the standard variables:
  ``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``, ``none``; a comma list),
  ``OTEL_EXPORTER_OTLP_*``, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
  ``OTEL_TRACES_SAMPLER[_ARG]``; spans leave through a batch processor (a
  bounded queue, exported on its own thread: the data path never waits for
  the backend), and spans an exporter fails to deliver are counted in
  ``runwire_spans_dropped_total``.
- The instrumentations of psycopg, redis, httpx and FastAPI are switched on
  when installed, so database, cache, model-API and HTTP-request spans join
  the same traces.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, MutableSequence, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from runwire.errors import ConfigurationError
from runwire.log import hooks
from runwire.telemetry.metrics import SPANS_DROPPED

if TYPE_CHECKING:
    from runwire.contract.events import Event
    from runwire.log.records import SourceRecord

__all__ = ["REMEMBERED", "CountingExporter", "Tracing", "from_env"]

log = logging.getLogger(__name__)

REMEMBERED = 65_536
"""Contexts of read records kept by event id (about 10 MB at most)."""

_TRACE_HEADERS = frozenset({"traceparent", "tracestate"})
_PROPAGATOR = TraceContextTextMapPropagator()


def _event_attributes(event: Event) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "runwire.event.type": event.type.value,
        "runwire.event.id": event.event_id,
        "messaging.message.id": event.event_id,
    }
    if event.run_id is not None:
        attributes["runwire.run.id"] = event.run_id
    if event.session_id is not None:
        attributes["runwire.session.id"] = event.session_id
    if event.causation_id is not None:
        attributes["runwire.causation.id"] = event.causation_id
    return attributes


class Tracing:
    """Spans for records and for the work they cause; see the module contract."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer("runwire")
        self._contexts: dict[str, Context] = {}

    # -- the log hook ------------------------------------------------------------

    def writing(
        self, event: Event, topic: str, headers: MutableSequence[tuple[str, bytes]]
    ) -> None:
        parent: Context | None = None  # the current context
        if not trace.get_current_span().get_span_context().is_valid:
            cause = event.causation_id
            parent = (self._contexts.get(cause) if cause is not None else None) or Context()
        attributes = _event_attributes(event)
        attributes["messaging.system"] = "kafka"
        attributes["messaging.operation.type"] = "send"
        attributes["messaging.destination.name"] = topic
        span = self._tracer.start_span(
            f"send {topic}", context=parent, kind=SpanKind.PRODUCER, attributes=attributes
        )
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        headers[:] = [h for h in headers if h[0] not in _TRACE_HEADERS]
        headers.extend((k, v.encode("latin-1")) for k, v in carrier.items())
        span.end()

    def read(self, record: SourceRecord) -> None:
        carrier = {k: v.decode("latin-1") for k, v in record.headers if k in _TRACE_HEADERS}
        # Extracted onto an empty context: a malformed header gives no parent
        # (a new trace), never the reader's own current span.
        parent = _PROPAGATOR.extract(carrier, context=Context())
        event = record.event
        attributes = _event_attributes(event)
        attributes["messaging.system"] = "kafka"
        attributes["messaging.operation.type"] = "process"
        attributes["messaging.destination.name"] = record.topic
        attributes["messaging.destination.partition.id"] = str(record.partition)
        attributes["messaging.kafka.offset"] = record.offset
        group = hooks.reader.get()
        if group:
            attributes["messaging.consumer.group.name"] = group
        if (
            "traceparent" in carrier
            and not trace.get_current_span(parent).get_span_context().is_valid
        ):
            attributes["runwire.trace.malformed"] = True
        span = self._tracer.start_span(
            f"process {record.topic}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        )
        span.end()
        self.remember(event.event_id, trace.set_span_in_context(span, Context()))

    # -- what services call ------------------------------------------------------

    def remember(self, event_id: str, context: Context) -> None:
        contexts = self._contexts
        contexts.pop(event_id, None)
        contexts[event_id] = context
        if len(contexts) > REMEMBERED:
            del contexts[next(iter(contexts))]

    @contextlib.contextmanager
    def handling(
        self, event_id: str | None, name: str, attributes: Mapping[str, Any] | None = None
    ) -> Iterator[Span]:
        """A span for handling the event ``event_id``, current for the block."""
        parent = self._contexts.get(event_id) if event_id is not None else None
        with self._tracer.start_as_current_span(
            name, context=parent, attributes=dict(attributes or {})
        ) as span:
            yield span

    @contextlib.contextmanager
    def span(
        self, name: str, attributes: Mapping[str, Any] | None = None, *, client: bool = False
    ) -> Iterator[Span]:
        """A span under the current one, current for the block."""
        with self._tracer.start_as_current_span(
            name,
            kind=SpanKind.CLIENT if client else SpanKind.INTERNAL,
            attributes=dict(attributes or {}),
        ) as span:
            yield span

    def shutdown(self) -> None:
        self.provider.shutdown()


class CountingExporter(SpanExporter):
    """An exporter that counts the spans its inner exporter could not deliver."""

    def __init__(self, inner: SpanExporter, name: str) -> None:
        self._inner = inner
        self._name = name

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self._inner.export(spans)
        except Exception as e:
            log.warning("trace exporter %s failed; %d spans dropped: %s", self._name, len(spans), e)
            result = SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            SPANS_DROPPED.labels(f"{self._name}_export_failed").inc(len(spans))
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


def _exporter(name: str) -> SpanExporter | None:
    if name == "none":
        return None
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        protocol = os.environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        )
        if protocol != "http/protobuf":
            raise ConfigurationError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: runwire ships the OTLP "
                "http/protobuf exporter only (point it at port 4318)"
            )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    raise ConfigurationError(
        f"OTEL_TRACES_EXPORTER names {name!r}; runwire knows otlp, console and none"
    )


def from_env(service: str, environ: Mapping[str, str] = os.environ) -> Tracing:
    """The process's tracing from the ``OTEL_*`` variables (see the module contract)."""
    names = [
        n.strip() for n in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()
    ] or ["otlp"]
    attributes = {} if environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"runwire-{service}"}
    # Flushed by runwire.telemetry.process with a time limit, not at exit without one.
    provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
    for name in names:
        exporter = _exporter(name)
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(CountingExporter(exporter, name)))
    trace.set_tracer_provider(provider)
    _instrument(provider)
    return Tracing(provider)


def _instrument(provider: TracerProvider) -> None:
    """Switch on the instrumentations of the libraries runwire uses, where installed."""
    instrumentors: list[tuple[str, str]] = [
        ("opentelemetry.instrumentation.psycopg", "PsycopgInstrumentor"),
        ("opentelemetry.instrumentation.redis", "RedisInstrumentor"),
        ("opentelemetry.instrumentation.httpx", "HTTPXClientInstrumentor"),
        ("opentelemetry.instrumentation.fastapi", "FastAPIInstrumentor"),
    ]
    import importlib

    for module_name, class_name in instrumentors:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            log.debug("%s is not installed; its spans are not recorded", module_name)
            continue
        instrumentor = getattr(module, class_name)()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=provider)
