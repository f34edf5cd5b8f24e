"""The OpenTelemetry side of :mod:`runwire.telemetry.tracing` (imported only when tracing is on).

Contract:
- Spans are made per *operation*, never per record, so that tracing at 100%
  sampling stays cheap on the data path (``bench/bench_tracing.py``):
  a PRODUCER span ``send <topic>`` per publish call made outside any
  other operation (the log's publish scope, :data:`runwire.log.hooks.scope`:
  a client's, the watchdog's; a publish inside a handled delta or an HTTP
  request is covered by that span), a CONSUMER span per handled
  delta (:meth:`Tracing.handling`: the orchestrator's answer, the tool
  runner's call), one per trace in each batch a projector applies
  (:meth:`Tracing.applying`), and spans for model and tool calls.
- Every record written carries the W3C ``traceparent`` (and
  ``tracestate``) of the span current when it is encoded: the publish
  call's (:class:`Tracing` is a :class:`runwire.log.hooks.LogHook`). A
  record written with no current span carries the context of the record
  its event was caused by, if this process read it recently.
- Every record read has its ``traceparent`` remembered by event id
  (:data:`REMEMBERED` of them, the oldest forgotten first; parsed only when
  used) so the work it causes, later and in another task, joins its trace.
  One longer than :data:`TRACEPARENT_MAX_BYTES` is remembered as malformed,
  not at its size (a hostile producer's header may be as large as a record).
- A missing or malformed ``traceparent`` starts a new trace where it is
  used (the span says ``runwire.trace.malformed`` when a header was
  there); it never fails the record.
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
import sys
from collections import OrderedDict
from collections.abc import Iterator, Mapping, MutableSequence, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from opentelemetry import context as context_api
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
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from runwire.errors import ConfigurationError
from runwire.log import hooks
from runwire.telemetry.metrics import SPANS_DROPPED

if TYPE_CHECKING:
    from runwire.contract.events import Event
    from runwire.log.records import SourceRecord

__all__ = [
    "REMEMBERED",
    "TRACEPARENT_MAX_BYTES",
    "CountingExporter",
    "Tracing",
    "from_env",
    "provider_from_env",
]

log = logging.getLogger(__name__)

REMEMBERED = 65_536
"""Contexts of read records kept by event id (about 20 MB at most)."""

TRACEPARENT_MAX_BYTES = 128
"""The longest ``traceparent`` remembered as it is: version 00 has 55 bytes,
and a later version may append fields (W3C Trace Context, "versioning")."""

_MALFORMED = b"!"
"""Remembered for a header too long to keep: parsed as malformed, never written on."""


def _event_attributes(event: Event) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "runwire.event.type": event.type.value,
        "runwire.event.id": event.event_id,
    }
    if event.run_id is not None:
        attributes["runwire.run.id"] = event.run_id
    if event.session_id is not None:
        attributes["runwire.session.id"] = event.session_id
    return attributes


_HEX = frozenset("0123456789abcdef")


def _parent(raw: bytes | None) -> tuple[Context, bool]:
    """The context a ``traceparent`` header names, and whether it was malformed.

    Parsed by hand (the propagator's regular expression costs several times
    as much, once per handled delta): version ``00``, 32 and 16 lowercase hex
    digits not all zero, 2 hex digits of flags; a later version may append
    fields (W3C Trace Context, "versioning"). Anything else gives no parent
    (a new trace), never the reader's own current span.
    """
    if raw is None:
        return Context(), False
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return Context(), True
    parts = text.split("-")
    if (
        len(parts) < 4
        or len(parts[0]) != 2
        or parts[0] == "ff"
        or (parts[0] == "00" and len(parts) != 4)
        or len(parts[1]) != 32
        or len(parts[2]) != 16
        or len(parts[3]) != 2
        or not _HEX.issuperset(parts[0] + parts[1] + parts[2] + parts[3])
    ):
        return Context(), True
    trace_id, span_id = int(parts[1], 16), int(parts[2], 16)
    if not trace_id or not span_id:
        return Context(), True
    span_context = SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(parts[3], 16))
    )
    return trace.set_span_in_context(NonRecordingSpan(span_context), Context()), False


def _traceparent(record: SourceRecord) -> bytes | None:
    for key, value in record.headers:
        if key == "traceparent":
            return value
    return None


def _encode(span_context: SpanContext) -> list[tuple[str, bytes]] | None:
    """The ``traceparent`` (and ``tracestate``) headers of ``span_context``; None: not valid."""
    if not span_context.is_valid:
        return None
    encoded = [
        (
            "traceparent",
            f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
            f"{span_context.trace_flags:02x}".encode(),
        )
    ]
    if span_context.trace_state:
        encoded.append(("tracestate", span_context.trace_state.to_header().encode()))
    return encoded


class _Current:
    """``span`` current for a block, ended after it (lighter than the SDK's
    generator-based ``start_as_current_span``: this runs once per operation).

    While current it is also :data:`_OURS`'s value, so the records written in
    the block find its headers without looking the span up (formatted once,
    at the first record).
    """

    __slots__ = ("_headers", "_ours", "_span", "_token", "context")

    def __init__(self, span: Span) -> None:
        self._span = span
        self._headers: list[tuple[str, bytes]] | bool | None = False  # False: not yet

    def headers(self) -> list[tuple[str, bytes]] | None:
        encoded = self._headers
        if encoded is False:
            encoded = self._headers = _encode(self._span.get_span_context())
        return encoded  # type: ignore[return-value]

    def __enter__(self) -> Span:
        self.context = trace.set_span_in_context(self._span)
        self._token = context_api.attach(self.context)
        self._ours = _OURS.set(self)
        return self._span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _OURS.reset(self._ours)
        context_api.detach(self._token)
        if isinstance(exc, Exception):
            self._span.record_exception(exc)
            self._span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        self._span.end()


_OURS: ContextVar[_Current | None] = ContextVar("runwire_traced_block", default=None)
"""The innermost span runwire made current in this task (see :class:`_Current`)."""

_NOTHING: AbstractContextManager[None] = contextlib.nullcontext()


class Tracing:
    """Spans for operations, context for records; see the module contract."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer("runwire")
        # Oldest first. Not a dict: deleting a dict's first key leaves a hole that
        # every later next(iter(...)) walks over, ~25 µs per record read once full.
        self._contexts: OrderedDict[str, bytes] = OrderedDict()
        # The headers of the last context seen that is not one of runwire's own
        # spans (those keep theirs: _Current; one slot here would be evicted by
        # every other turn in flight). None: no valid span in it. A context is
        # immutable and attaching makes a new one, so while the same one is
        # current its span and headers are the same.
        self._last: tuple[Context | None, list[tuple[str, bytes]] | None] = (None, None)

    def _headers(self) -> list[tuple[str, bytes]] | None:
        """The ``traceparent`` (and ``tracestate``) of the current span; None: there is none."""
        context = context_api.get_current()
        ours = _OURS.get()
        if ours is not None and ours.context is context:
            return ours.headers()  # the common case: one of runwire's own spans
        # Another library's span (an HTTP request's), or none: remembered for
        # the last context seen, as a request's records share one.
        last, encoded = self._last
        if context is last:
            return encoded
        encoded = _encode(trace.get_current_span(context).get_span_context())
        self._last = (context, encoded)
        return encoded

    # -- the log hook: context only, per record -----------------------------------

    def writing(
        self, event: Event, topic: str, headers: MutableSequence[tuple[str, bytes]]
    ) -> None:
        encoded = self._headers()
        if encoded is not None:
            headers.extend(encoded)
            return
        cause = event.causation_id
        raw = self._contexts.get(cause) if cause is not None else None
        if raw is not None and raw is not _MALFORMED:
            headers.append(("traceparent", raw))

    def read(self, record: SourceRecord) -> None:
        for key, value in record.headers:
            if key == "traceparent":
                self.remember(record.event.event_id, value)
                return

    def remember(self, event_id: str, traceparent: bytes) -> None:
        contexts = self._contexts
        contexts[event_id] = (
            traceparent if len(traceparent) <= TRACEPARENT_MAX_BYTES else _MALFORMED
        )
        if len(contexts) > REMEMBERED:
            contexts.popitem(last=False)

    # -- spans per operation ------------------------------------------------------

    def publishing(self, topic: str, events: Sequence[Event]) -> AbstractContextManager[object]:
        """The span of one publish call (the log's publish scope).

        Inside another operation's span (a handled delta, an HTTP request) the
        publish is part of that operation: its records carry that span and no
        span of their own is made (the cost of tracing is per operation).
        """
        if self._headers() is not None:
            return _NOTHING
        first = events[0]
        cause = first.causation_id
        parent = _parent(self._contexts.get(cause) if cause is not None else None)[0]
        attributes = _event_attributes(first)
        attributes["messaging.system"] = "kafka"
        attributes["messaging.operation.type"] = "send"
        attributes["messaging.destination.name"] = topic
        attributes["messaging.batch.message_count"] = len(events)
        return _Current(
            self._tracer.start_span(
                f"send {topic}", context=parent, kind=SpanKind.PRODUCER, attributes=attributes
            )
        )

    def handling(
        self, event_id: str | None, name: str, attributes: Mapping[str, Any] | None = None
    ) -> AbstractContextManager[Span]:
        """A span for handling the read event ``event_id``, current for the block."""
        raw = self._contexts.get(event_id) if event_id is not None else None
        parent, malformed = _parent(raw)
        # One mapping, given at the start: the SDK checks each attribute once.
        attributes = {**attributes} if attributes else {}
        if event_id is not None:
            attributes["runwire.event.id"] = event_id
        if malformed:
            attributes["runwire.trace.malformed"] = True
        return _Current(
            self._tracer.start_span(
                name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes
            )
        )

    @contextlib.contextmanager
    def applying(self, name: str, records: Sequence[SourceRecord]) -> Iterator[None]:
        """Spans for applying a batch: one per trace its records belong to."""
        traces: dict[bytes | None, list[SourceRecord]] = {}
        for record in records:
            traces.setdefault(_traceparent(record), []).append(record)
        spans: list[Span] = []
        for raw, mine in traces.items():
            parent, malformed = _parent(raw)
            last = mine[-1]
            attributes = _event_attributes(last.event)
            attributes["messaging.system"] = "kafka"
            attributes["messaging.operation.type"] = "process"
            attributes["messaging.destination.name"] = last.topic
            attributes["messaging.destination.partition.id"] = str(last.partition)
            attributes["messaging.kafka.offset"] = last.offset
            attributes["messaging.batch.message_count"] = len(mine)
            attributes["messaging.consumer.group.name"] = hooks.reader.get() or name
            if malformed:
                attributes["runwire.trace.malformed"] = True
            spans.append(
                self._tracer.start_span(
                    f"{name} apply", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
                )
            )
        try:
            yield
        finally:
            for span in spans:
                span.end()

    def span(
        self, name: str, attributes: Mapping[str, Any] | None = None, *, client: bool = False
    ) -> AbstractContextManager[Span]:
        """A span under the current one, current for the block."""
        return _Current(
            self._tracer.start_span(
                name,
                kind=SpanKind.CLIENT if client else SpanKind.INTERNAL,
                attributes=attributes,
            )
        )

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


def _one_line(span: ReadableSpan) -> str:
    """A span as one line (the SDK's indented JSON costs ~10x as much per span)."""
    context = span.context
    parent = f"{span.parent.span_id:016x}" if span.parent is not None else "-"
    seconds = ((span.end_time or 0) - (span.start_time or 0)) / 1e9
    ids = f"{context.trace_id:032x} {context.span_id:016x}" if context is not None else "- -"
    attributes = span.attributes
    # The SDK hands a read-only view of its bounded mapping: its copy() is the
    # inner dict's (dict() of the view takes a lock and a lookup per key).
    shown = (
        attributes.copy() if isinstance(attributes, MappingProxyType) else dict(attributes or {})
    )
    return f"{span.name} trace={ids} parent={parent} {seconds * 1000:.3f}ms {shown}\n"


def _exporter(name: str, environ: Mapping[str, str], console: TextIO | None) -> SpanExporter | None:
    if name == "none":
        return None
    if name == "console":
        return ConsoleSpanExporter(out=console or sys.stdout, formatter=_one_line)
    if name == "otlp":
        protocol = environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        )
        if protocol != "http/protobuf":
            raise ConfigurationError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: runwire ships the OTLP "
                "http/protobuf exporter only (point it at port 4318)"
            )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        if endpoint is None and base is not None:
            endpoint = base.rstrip("/") + "/v1/traces"
        timeout = environ.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") or environ.get(
            "OTEL_EXPORTER_OTLP_TIMEOUT"
        )
        # (Headers, certificates and compression: the exporter reads them from os.environ.)
        return OTLPSpanExporter(
            endpoint=endpoint, timeout=float(timeout) if timeout is not None else None
        )
    raise ConfigurationError(
        f"OTEL_TRACES_EXPORTER names {name!r}; runwire knows otlp, console and none"
    )


def provider_from_env(
    service: str, environ: Mapping[str, str] = os.environ, *, console: TextIO | None = None
) -> TracerProvider:
    """A tracer provider as the ``OTEL_*`` variables describe it (nothing global is touched).

    ``console``: where the console exporter writes (standard output by default).
    """
    names = [
        n.strip() for n in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()
    ] or ["otlp"]
    exporters = [_exporter(name, environ, console) for name in names]
    attributes = {} if environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"runwire-{service}"}
    # Flushed by runwire.telemetry.process with a time limit, not at exit without one.
    provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
    for name, exporter in zip(names, exporters, strict=True):
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(CountingExporter(exporter, name)))
    return provider


def from_env(service: str, environ: Mapping[str, str] = os.environ) -> Tracing:
    """The process's tracing from the ``OTEL_*`` variables (see the module contract):
    its provider becomes the global one, and the libraries' instrumentations use it."""
    provider = provider_from_env(service, environ)
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
