"""Late spans: made by the SDK when they end, exported as the SDK's own span would be."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.span import TraceState
from opentelemetry.util import types

from runwire.telemetry.late_spans import LateSpan, LateTracer, trace_flags

REMOTE = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True, trace_flags(1))


def _made(
    sampler: Sampler = ALWAYS_ON, limits: SpanLimits | None = None
) -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider(sampler=sampler, span_limits=limits)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _same(late: ReadableSpan, direct: ReadableSpan) -> None:
    """Everything but the ids and the clock."""
    assert late.name == direct.name
    assert late.kind == direct.kind
    assert dict(late.attributes or {}) == dict(direct.attributes or {})
    assert late.dropped_attributes == direct.dropped_attributes
    assert [(e.name, dict(e.attributes or {})) for e in late.events] == [
        (e.name, dict(e.attributes or {})) for e in direct.events
    ]
    assert [(link.context, dict(link.attributes or {})) for link in late.links] == [
        (link.context, dict(link.attributes or {})) for link in direct.links
    ]
    assert late.status.status_code == direct.status.status_code
    assert late.status.description == direct.status.description
    assert late.resource == direct.resource
    assert late.instrumentation_scope == direct.instrumentation_scope
    assert late.parent == direct.parent
    assert late.context is not None
    assert direct.context is not None
    assert late.context.trace_flags == direct.context.trace_flags
    assert late.context.trace_state == direct.context.trace_state


def _operate(span: trace.Span) -> None:
    span.set_attribute("runwire.run.id", "run-1")
    span.set_attributes({"gen_ai.usage.input_tokens": 12, "runwire.event.type": "text"})
    span.add_event("chunk", {"n": 3}, timestamp=1_000)
    span.add_link(REMOTE, {"why": "caused by"})
    span.record_exception(ValueError("bad model"), timestamp=2_000)
    span.set_status(Status(StatusCode.ERROR, "ValueError: bad model"))
    span.update_name("chat model renamed")


def test_a_late_span_is_exported_as_the_sdks_own_span_would_be() -> None:
    provider, exporter = _made()
    # One tracer: its own spans are the SDK's as before, once wrapped.
    tracer = provider.get_tracer("runwire")
    late = LateTracer(tracer)
    direct = tracer.start_span(
        "chat model",
        trace.set_span_in_context(NonRecordingSpan(REMOTE)),
        SpanKind.CLIENT,
        {"gen_ai.system": "local"},
    )
    span = late.start("chat model", SpanKind.CLIENT, {"gen_ai.system": "local"}, REMOTE)
    assert isinstance(span, LateSpan)
    assert exporter.get_finished_spans() == ()  # nothing made while under way
    for s in (direct, span):
        _operate(s)
        s.end()
    made_direct, made_late = exporter.get_finished_spans()
    assert type(made_direct) is type(made_late)
    _same(made_late, made_direct)
    assert made_direct.context != made_late.context
    assert made_late.context == span.get_span_context()
    assert made_late.parent == REMOTE
    assert [e.timestamp for e in made_late.events] == [1_000, 2_000]
    assert made_late.start_time is not None
    assert made_late.end_time is not None
    assert made_late.start_time <= made_late.end_time


def test_the_spans_limits_apply_when_it_is_made() -> None:
    provider, exporter = _made(limits=SpanLimits(max_span_attributes=2))
    late = LateTracer(provider.get_tracer("late"))
    span = late.start("op", attributes={"a": 1})
    span.set_attributes({"b": 2, "c": 3})
    span.end()
    (made,) = exporter.get_finished_spans()
    assert len(made.attributes or {}) == 2
    assert made.dropped_attributes == 1


def test_spans_started_under_a_late_one_have_it_as_their_parent() -> None:
    provider, exporter = _made()
    late = LateTracer(provider.get_tracer("late"))
    other = provider.get_tracer("httpx")
    span = late.start("handle", SpanKind.CONSUMER, parent=REMOTE)
    token = context_api.attach(trace.set_span_in_context(span))
    try:
        child = other.start_span("POST /v1/messages")
        grandchild = late.start("tool")
        grandchild.end()
        child.end()
    finally:
        context_api.detach(token)
    span.end()
    by_name = {s.name: s for s in exporter.get_finished_spans()}
    handle = by_name["handle"]
    assert handle.context is not None
    assert handle.context.trace_id == REMOTE.trace_id
    assert by_name["POST /v1/messages"].parent == handle.context
    assert by_name["tool"].parent == handle.context
    # The children ended first, and were made first.
    assert [s.name for s in exporter.get_finished_spans()] == [
        "tool",
        "POST /v1/messages",
        "handle",
    ]


def test_a_root_keeps_the_trace_id_it_had_under_way() -> None:
    provider, exporter = _made()
    late = LateTracer(provider.get_tracer("late"))
    root = late.start("send run-events", SpanKind.PRODUCER, parent=INVALID_SPAN_CONTEXT)
    under_way = root.get_span_context()
    assert under_way.is_valid
    assert not under_way.is_remote
    root.end()
    (made,) = exporter.get_finished_spans()
    assert made.context == under_way
    assert made.parent is None


def test_no_parent_means_the_current_span() -> None:
    provider, exporter = _made()
    late = LateTracer(provider.get_tracer("late"))
    token = context_api.attach(trace.set_span_in_context(NonRecordingSpan(REMOTE)))
    try:
        span = late.start("op")
    finally:
        context_api.detach(token)
    span.end()
    (made,) = exporter.get_finished_spans()
    assert made.parent == REMOTE


class _Counting(Sampler):
    """Samples by the inner sampler, counting calls and marking what it decides."""

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner
        self.calls: list[tuple[int, str, SpanKind | None, dict[str, object]]] = []

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
        self.calls.append((trace_id, name, kind, dict(attributes or {})))
        result = self.inner.should_sample(parent_context, trace_id, name, kind, attributes, links)
        return SamplingResult(
            result.decision,
            {**(attributes or {}), "sampled.by": "counting"},
            TraceState([("vendor", "x")]),
        )

    def get_description(self) -> str:
        return "counting"


def test_the_sampler_is_asked_once_and_its_answer_kept() -> None:
    sampler = _Counting(ALWAYS_ON)
    provider, exporter = _made(sampler)
    late = LateTracer(provider.get_tracer("late"))
    span = late.start("op", SpanKind.CONSUMER, {"a": 1}, REMOTE)
    assert span.get_span_context().trace_state == TraceState([("vendor", "x")])
    assert span.get_span_context().trace_flags.sampled
    span.set_attribute("b", 2)
    span.end()
    assert sampler.calls == [(REMOTE.trace_id, "op", SpanKind.CONSUMER, {"a": 1})]
    (made,) = exporter.get_finished_spans()
    assert dict(made.attributes or {}) == {"a": 1, "sampled.by": "counting", "b": 2}
    assert made.context == span.get_span_context()
    # The tracer's other spans are sampled and numbered as before.
    other = provider.get_tracer("late").start_span("plain")
    other.end()
    assert len(sampler.calls) == 2
    assert other.get_span_context().span_id != span.get_span_context().span_id


@pytest.mark.parametrize(
    ("sampler", "parent"),
    [
        (TraceIdRatioBased(0.0), INVALID_SPAN_CONTEXT),
        (ParentBased(ALWAYS_ON), SpanContext(1, 2, True, trace_flags(0))),
    ],
)
def test_a_span_not_sampled_is_never_made(sampler: Sampler, parent: SpanContext) -> None:
    provider, exporter = _made(sampler)
    late = LateTracer(provider.get_tracer("late"))
    span = late.start("op", parent=parent)
    assert not isinstance(span, LateSpan)
    assert not span.is_recording()
    assert span.get_span_context().is_valid
    assert not span.get_span_context().trace_flags.sampled
    span.end()
    assert exporter.get_finished_spans() == ()
    if parent.is_valid:
        assert span.get_span_context().trace_id == parent.trace_id


def test_after_its_end_it_takes_nothing_and_is_made_once() -> None:
    provider, exporter = _made()
    late = LateTracer(provider.get_tracer("late"))
    span = late.start("op")
    span.end()
    assert not span.is_recording()
    _operate(span)
    span.end()
    (made,) = exporter.get_finished_spans()
    assert made.name == "op"
    assert dict(made.attributes or {}) == {}
    assert made.events == ()
    assert made.links == ()
    assert made.status.status_code is StatusCode.UNSET


class _Starts(SpanProcessor):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def on_start(self, span: trace.Span, parent_context: Context | None = None) -> None:
        self.seen.append(("start", span.name))  # type: ignore[attr-defined]

    def on_end(self, span: ReadableSpan) -> None:
        self.seen.append(("end", span.name))


def test_processors_see_its_start_then_its_end_when_it_is_made() -> None:
    provider = TracerProvider()
    starts = _Starts()
    provider.add_span_processor(starts)
    late = LateTracer(provider.get_tracer("late"))
    span = late.start("op")
    assert starts.seen == []
    span.end()
    assert starts.seen == [("start", "op"), ("end", "op")]


def test_as_a_context_manager_it_records_what_escaped() -> None:
    provider, exporter = _made()
    late = LateTracer(provider.get_tracer("late"))
    span = late.start("op")
    with pytest.raises(KeyError), span:
        raise KeyError("gone")
    (made,) = exporter.get_finished_spans()
    assert made.status.status_code is StatusCode.ERROR
    assert [e.name for e in made.events] == ["exception"]
    assert (made.events[0].attributes or {})["exception.escaped"] == "True"


def test_flags_are_shared_per_value() -> None:
    assert trace_flags(1) is trace_flags(1)
    assert trace_flags(1) == TraceFlags(1)
    assert isinstance(trace_flags(3), TraceFlags)


def test_a_wrapped_tracer_is_wrapped_once() -> None:
    provider, exporter = _made()
    tracer = provider.get_tracer("late")
    original = tracer.sampler  # type: ignore[attr-defined]
    LateTracer(tracer)
    second = LateTracer(tracer)
    assert tracer.sampler.inner is original  # type: ignore[attr-defined]
    span = second.start("op")
    span.end()
    assert len(exporter.get_finished_spans()) == 1
