"""Spans the SDK makes when their operation ends, with the identity they had all along.

Contract:
- :meth:`LateTracer.start` decides at once what the SDK's ``start_span``
  would (the trace id: the parent's, or a new one; a new span id; the
  sampler's decision, flags and trace state, asked once with the same
  arguments) and returns a :class:`LateSpan` carrying that identity. It is
  an OpenTelemetry span like any other while its operation runs: current,
  it parents the spans started under it (HTTP, database, model calls) and
  the records written under it carry its ``traceparent``; attributes,
  events, links, status and name may be set on it.
- When it ends, the SDK's tracer makes the span, with the start time noted
  at the start, the identity and decision already given (its sampler and id
  generator answer from :class:`LateSpan` while it is being made), then
  everything set on it in the order it was set, its end time: what the
  span processors and exporters get is what the SDK would have made had
  the span been started at the start. A span not to be recorded is never
  made (as the SDK makes a non-recording one).
- The one difference: the processors' ``on_start`` runs at the end, just
  before their ``on_end`` (the batch and simple processors do nothing in
  it).

Why: a span made by the SDK at the start is a dozen objects the garbage
collector tracks (its lock, bounded attributes, events and links, each with
a lock and a container) for as long as its operation awaits; a service
answering a backlog keeps hundreds in flight, and the collector walked them
with every full collection: most of what tracing cost a turn
(``bench/bench_tracing.py``, ``docs/operations.md``). A late span is one
object and its attributes until it ends, and the SDK's objects live a
moment.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from types import TracebackType
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Tracer
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState
from opentelemetry.util import types

__all__ = ["LateSpan", "LateTracer", "trace_flags"]

_MAKING: ContextVar[LateSpan | None] = ContextVar("runwire_late_span", default=None)
"""The late span the SDK is making now, in this thread or task (its sampler and
id generator answer from it)."""


_FLAGS = tuple(TraceFlags(value) for value in range(256))


def trace_flags(value: int) -> TraceFlags:
    """``TraceFlags(value)``, one shared object per value (0-255): a span context
    holds one for as long as its span is under way."""
    return _FLAGS[value]


class LateSpan(Span):
    """A span whose SDK span is made when it ends; see the module contract."""

    __slots__ = (
        "_attributes",
        "_context",
        "_decision",
        "_end_time",
        "_kind",
        "_later",
        "_maker",
        "_name",
        "_parent",
        "_start_time",
        "_trace_state",
        "memo",
    )

    def __init__(
        self,
        maker: LateTracer,
        name: str,
        kind: SpanKind,
        parent: Context | SpanContext,
        span_context: SpanContext,
        result: SamplingResult,
        attributes: Mapping[str, types.AnyValue] | None,
    ) -> None:
        self._maker = maker
        self._name = name
        self._kind = kind
        self._parent = parent
        self._context = span_context
        self._decision = result.decision
        self._trace_state = result.trace_state
        # The sampler's attributes are the span's first (the SDK's rule); most
        # samplers give back the ones they were given.
        given = result.attributes
        self._attributes: dict[str, types.AnyValue] = (
            dict(given) if given else dict(attributes) if attributes else {}
        )
        self._later: list[Callable[[Span], None]] | None = None
        self._start_time = time.time_ns()
        self._end_time: int | None = None
        self.memo: Any = None
        """Whatever its starter keeps with it while it is under way (runwire's
        tracing: the headers of the records written under it)."""

    # -- what the SDK asks while making it ------------------------------------

    def _sampling(self) -> SamplingResult:
        return SamplingResult(self._decision, self._attributes, self._trace_state)

    # -- the Span API ------------------------------------------------------------

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if self._end_time is None:
            self._attributes.update(attributes)

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self._end_time is None:
            self._attributes[key] = value

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def _then(self, call: Callable[[Span], None]) -> None:
        if self._end_time is not None:
            return
        if self._later is None:
            self._later = []
        self._later.append(call)

    def add_event(
        self,
        name: str,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
    ) -> None:
        stamp = timestamp if timestamp is not None else time.time_ns()
        self._then(functools.partial(_add_event, name=name, attributes=attributes, stamp=stamp))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        self._then(functools.partial(_add_link, context=context, attributes=attributes))

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        stamp = timestamp if timestamp is not None else time.time_ns()
        self._then(
            functools.partial(
                _record_exception,
                exception=exception,
                attributes=attributes,
                stamp=stamp,
                escaped=escaped,
            )
        )

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        self._then(functools.partial(_set_status, status=status, description=description))

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            return
        self._end_time = end_time if end_time is not None else time.time_ns()
        self._maker.make(self)  # made only when recording (LateTracer.start)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        # As the SDK's span used as a context manager.
        if exc_val is not None and self.is_recording():
            self.record_exception(exc_val, escaped=True)
            self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        self.end()

    def __repr__(self) -> str:
        return f'LateSpan(name="{self._name}", context={self._context})'


def _add_event(span: Span, *, name: str, attributes: types.Attributes, stamp: int) -> None:
    span.add_event(name, attributes, stamp)


def _add_link(span: Span, *, context: SpanContext, attributes: types.Attributes) -> None:
    span.add_link(context, attributes)


def _record_exception(
    span: Span,
    *,
    exception: BaseException,
    attributes: types.Attributes,
    stamp: int,
    escaped: bool,
) -> None:
    span.record_exception(exception, attributes, stamp, escaped)


def _set_status(span: Span, *, status: Status | StatusCode, description: str | None) -> None:
    span.set_status(status, description)


class _Decided(Sampler):
    """The tracer's sampler, but for a late span being made: the decision made at its start."""

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        making = _MAKING.get()
        if making is not None:
            return making._sampling()
        return self.inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return self.inner.get_description()


class _Preset(IdGenerator):
    """The tracer's id generator, but for a late span being made: the ids it already has."""

    def __init__(self, inner: IdGenerator) -> None:
        self.inner = inner

    def generate_span_id(self) -> int:
        making = _MAKING.get()
        return making._context.span_id if making is not None else self.inner.generate_span_id()

    def generate_trace_id(self) -> int:
        making = _MAKING.get()
        return making._context.trace_id if making is not None else self.inner.generate_trace_id()

    def is_trace_id_random(self) -> bool:
        return self.inner.is_trace_id_random()


class LateTracer:
    """Starts :class:`LateSpan` s of an SDK tracer (see the module contract).

    - The tracer's sampler and id generator are wrapped (its public
      ``sampler`` and ``id_generator``): they answer as before for every
      span but a late one being made. Give it a tracer of its own scope.
    - A tracer not the SDK's (a no-op one) starts its spans as it always does.
    """

    _sampler: Sampler
    _ids: IdGenerator

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer
        if not isinstance(tracer, Tracer):
            self._plain = True
            return
        self._plain = False
        sampler, ids = tracer.sampler, tracer.id_generator
        self._sampler = sampler.inner if isinstance(sampler, _Decided) else sampler
        self._ids = ids.inner if isinstance(ids, _Preset) else ids
        tracer.sampler = _Decided(self._sampler)
        tracer.id_generator = _Preset(self._ids)

    def start(
        self,
        name: str,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, types.AnyValue] | None = None,
        parent: SpanContext | None = None,
    ) -> Span:
        """A span as the tracer's ``start_span`` would start it, made by the SDK when
        it ends.

        - ``parent`` None: under the current span; a span context: under that
          span (a remote one: a record's), or a new trace if it is not valid.
        """
        under: Context | SpanContext
        if parent is None:
            current = under = context_api.get_current()
            parent = trace.get_current_span(current).get_span_context()
        else:
            # Held as the span context alone while under way (not a context
            # made for it): the context is made again when the span is.
            under = parent
        if self._plain:
            return self._tracer.start_span(name, _context(under), kind, attributes)
        if parent.is_valid:
            trace_id = parent.trace_id
            random_trace_id = parent.trace_flags.random_trace_id
        else:
            trace_id = self._ids.generate_trace_id()
            random_trace_id = self._ids.is_trace_id_random()
        result = self._sampler.should_sample(_context(under), trace_id, name, kind, attributes)
        flags = TraceFlags.SAMPLED if result.decision is Decision.RECORD_AND_SAMPLE else 0
        if random_trace_id:
            flags |= TraceFlags.RANDOM_TRACE_ID
        span_context = SpanContext(
            trace_id,
            self._ids.generate_span_id(),
            is_remote=False,
            trace_flags=_FLAGS[flags],
            trace_state=result.trace_state,
        )
        if result.decision is Decision.DROP:
            return trace.NonRecordingSpan(span_context)
        return LateSpan(self, name, kind, under, span_context, result, attributes)

    def make(self, late: LateSpan) -> None:
        """The SDK's span of ``late``, ended (see the module contract)."""
        token = _MAKING.set(late)
        try:
            span = self._tracer.start_span(
                late._name,
                context=_context(late._parent),
                kind=late._kind,
                attributes=late._attributes,
                start_time=late._start_time,
                # What the span's own __exit__ would record is recorded already.
                record_exception=False,
                set_status_on_exception=False,
            )
        finally:
            _MAKING.reset(token)
        for call in late._later or ():
            call(span)
        span.end(late._end_time)


def _context(parent: Context | SpanContext) -> Context:
    """The context a span is started in, under ``parent``."""
    if isinstance(parent, Context):
        return parent
    if not parent.is_valid:
        return Context()
    return trace.set_span_in_context(trace.NonRecordingSpan(parent), Context())
