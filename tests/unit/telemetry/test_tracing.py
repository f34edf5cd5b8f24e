"""Tracing through the log hooks: context in the headers, spans for records and the work they cause."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any, NamedTuple

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from runwire.contract.codec import default_codec
from runwire.contract.events import EventType
from runwire.log import Publisher, decode_record, hooks
from runwire.settings import Settings
from runwire.telemetry import tracing
from runwire.telemetry.metrics import SPANS_DROPPED
from runwire.telemetry.otel import CountingExporter
from tests.support.event_samples import sample_event


class _Consumed(NamedTuple):
    """What decode_record reads of an aiokafka ConsumerRecord."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


@pytest.fixture
def publisher() -> Publisher:
    # record_for encodes without Kafka: what publish would write.
    return Publisher(Settings(topic_prefix="trace-test."), codec=default_codec())


def _consumed(record: Any, offset: int = 7) -> _Consumed:
    return _Consumed(record.topic, 0, offset, 0, record.key, record.value, list(record.headers))


def _named(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]


def test_a_published_record_carries_its_span_in_a_traceparent_header(
    spans: InMemorySpanExporter, publisher: Publisher
) -> None:
    record = publisher.record_for(sample_event(EventType.USER_MESSAGE, causation_id=None))
    (sent,) = _named(spans, "send ")
    assert sent.kind is SpanKind.PRODUCER
    assert sent.parent is None  # nothing caused it here: a new trace
    headers = dict(record.headers)
    _version, trace_id, span_id, _flags = headers["traceparent"].decode().split("-")
    assert sent.context is not None
    assert int(trace_id, 16) == sent.context.trace_id
    assert int(span_id, 16) == sent.context.span_id
    assert sent.attributes is not None
    assert sent.attributes["runwire.event.type"] == "user_message"
    assert sent.attributes["runwire.run.id"] == "run-1"


def test_reading_a_record_continues_its_trace_and_what_it_causes_joins_it(
    spans: InMemorySpanExporter, publisher: Publisher
) -> None:
    cause = sample_event(EventType.USER_MESSAGE, causation_id=None)
    written = publisher.record_for(cause)
    hooks.reader.set("runwire-orchestrator")
    decoded = decode_record(publisher._codec, _consumed(written))
    assert decoded.event == cause
    (sent,) = _named(spans, "send ")
    (processed,) = _named(spans, "process ")
    assert processed.kind is SpanKind.CONSUMER
    assert processed.parent is not None
    assert sent.context is not None
    assert processed.parent.span_id == sent.context.span_id
    assert processed.attributes is not None
    assert processed.attributes["messaging.kafka.offset"] == 7
    assert processed.attributes["messaging.consumer.group.name"] == "runwire-orchestrator"

    # Handled later, in another task: the handling span hangs under the read record,
    # and what it publishes under the handling span.
    with tracing.handling(cause.event_id, "orchestrator answer"):
        publisher.record_for(
            sample_event(EventType.RUN_STATUS_CHANGED, causation_id=cause.event_id)
        )
    (handled,) = _named(spans, "orchestrator answer")
    answer = _named(spans, "send ")[-1]
    assert processed.context is not None
    assert handled.context is not None
    assert handled.parent is not None
    assert handled.parent.span_id == processed.context.span_id
    assert answer.parent is not None
    assert answer.parent.span_id == handled.context.span_id

    # Published with no current span, an event still joins its cause's trace.
    publisher.record_for(sample_event(EventType.TOOL_RESULT, causation_id=cause.event_id))
    late = _named(spans, "send ")[-1]
    assert late.parent is not None
    assert late.parent.span_id == processed.context.span_id
    assert {s.context.trace_id for s in spans.get_finished_spans() if s.context} == {
        sent.context.trace_id
    }


@pytest.mark.parametrize(
    "traceparent",
    [b"00-not-a-trace-01", b"zz-" + b"0" * 32 + b"-" + b"0" * 16 + b"-01", b"\xff\xfe", b""],
)
def test_a_malformed_traceparent_starts_a_new_trace_and_the_record_goes_on(
    spans: InMemorySpanExporter, publisher: Publisher, traceparent: bytes
) -> None:
    event = sample_event(EventType.USER_MESSAGE, causation_id=None)
    written = _consumed(publisher.record_for(event))
    headers = [(k, traceparent if k == "traceparent" else v) for k, v in written.headers]
    decoded = decode_record(publisher._codec, written._replace(headers=headers))
    assert decoded.event == event
    (processed,) = _named(spans, "process ")
    (sent,) = _named(spans, "send ")
    assert processed.parent is None
    assert processed.context is not None
    assert sent.context is not None
    assert processed.context.trace_id != sent.context.trace_id
    assert processed.attributes is not None
    assert processed.attributes.get("runwire.trace.malformed") is True


def test_exports_that_fail_are_counted_as_dropped() -> None:
    class Down(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            raise ConnectionRefusedError("collector down")

    class Refusing(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.FAILURE

    down = SPANS_DROPPED.labels("down_export_failed")
    refusing = SPANS_DROPPED.labels("refusing_export_failed")
    before = (down._value.get(), refusing._value.get())
    assert CountingExporter(Down(), "down").export([object(), object()]) is SpanExportResult.FAILURE  # type: ignore[list-item]
    assert CountingExporter(Refusing(), "refusing").export([object()]) is SpanExportResult.FAILURE  # type: ignore[list-item]
    assert (down._value.get(), refusing._value.get()) == (before[0] + 2, before[1] + 1)


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x"}, False),
        ({"OTEL_TRACES_EXPORTER": "none"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_tracing_is_on_only_when_the_environment_asks(environ: dict[str, str], on: bool) -> None:
    assert tracing.wanted(environ) is on


def test_while_off_nothing_of_opentelemetry_is_imported() -> None:
    code = (
        "import sys\n"
        "from runwire.telemetry import tracing\n"
        "import runwire.services.orchestrator.service, runwire.services.tools.runner\n"
        "import runwire.projections.serve, runwire.services.follower\n"
        "assert tracing.configure('orchestrator') is False\n"
        "with tracing.handling('e', 'x') as span, tracing.span('y') as inner:\n"
        "    assert span is None and inner is None\n"
        "from runwire.log import hooks\n"
        "assert not hooks.installed\n"
        # (redis >= 8 imports the OpenTelemetry SDK's metrics by itself when it is
        # installed; the tracing SDK and runwire's side of it stay unloaded.)
        "loaded = sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk.trace', \n"
        "    'opentelemetry.exporter', 'opentelemetry.instrumentation', 'runwire.telemetry.otel')))\n"
        "assert not loaded, loaded\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_an_unknown_exporter_is_refused_by_name() -> None:
    from runwire.errors import ConfigurationError
    from runwire.telemetry.otel import from_env

    with pytest.raises(ConfigurationError, match="'jaeger'"):
        from_env("tools", {"OTEL_TRACES_EXPORTER": "jaeger"})
