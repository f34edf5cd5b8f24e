"""Tracing through the log hooks: context in the headers, spans for records and the work they cause."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from runwire.contract.codec import default_codec
from runwire.contract.events import EventType
from runwire.log import Publisher, decode_record, hooks
from runwire.settings import Settings
from runwire.telemetry import otel, tracing
from runwire.telemetry.metrics import SPANS_DROPPED
from runwire.telemetry.otel import CountingExporter
from tests.support.consumed import Consumed
from tests.support.event_samples import sample_event


@pytest.fixture
def publisher() -> Publisher:
    # record_for encodes without Kafka: what publish would write.
    return Publisher(Settings(topic_prefix="trace-test."), codec=default_codec())


def _consumed(record: Any, offset: int = 7) -> Consumed:
    return Consumed(record.topic, 0, offset, 0, record.key, record.value, list(record.headers))


def _named(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]


def _header(span: ReadableSpan) -> bytes:
    assert span.context is not None
    c = span.context
    return f"00-{c.trace_id:032x}-{c.span_id:016x}-{c.trace_flags:02x}".encode()


def test_a_record_carries_the_span_it_was_written_in(
    spans: InMemorySpanExporter, publisher: Publisher
) -> None:
    with tracing.span("client work"):
        record = publisher.record_for(sample_event(EventType.USER_MESSAGE, causation_id=None))
        again = publisher.record_for(sample_event(EventType.USER_MESSAGE, causation_id=None))
    (work,) = _named(spans, "client work")
    assert dict(record.headers)["traceparent"] == _header(work)
    assert dict(again.headers)["traceparent"] == _header(work)
    # No span current and no cause known: nothing to carry, nothing made up.
    alone = publisher.record_for(sample_event(EventType.USER_MESSAGE, causation_id=None))
    assert "traceparent" not in dict(alone.headers)


def test_records_carry_the_span_current_at_each_write_as_spans_nest_and_end(
    spans: InMemorySpanExporter, publisher: Publisher
) -> None:
    # The headers are looked up once per current context: each change of the
    # current span (a nested one, its end, none) must show in the next record.
    def written() -> bytes | None:
        record = publisher.record_for(sample_event(EventType.USER_MESSAGE, causation_id=None))
        return dict(record.headers).get("traceparent")

    with tracing.span("outer"):
        first = written()
        with tracing.span("inner"):
            nested = written()
        after = written()
    alone = written()
    (outer,) = _named(spans, "outer")
    (inner,) = _named(spans, "inner")
    assert first == after == _header(outer)
    assert nested == _header(inner)
    assert alone is None
    with tracing.span("later"):
        later = written()
    (again,) = _named(spans, "later")
    assert later == _header(again)


def test_a_publish_call_is_one_producer_span_its_records_carry(
    spans: InMemorySpanExporter,
) -> None:
    assert hooks.scope is not None
    events = [sample_event(EventType.THINKING), sample_event(EventType.ASSISTANT_TEXT)]
    with hooks.scope("t.run-events", events):
        pass
    (sent,) = _named(spans, "send ")
    assert sent.kind is SpanKind.PRODUCER
    assert sent.attributes is not None
    assert sent.attributes["messaging.batch.message_count"] == 2
    assert sent.attributes["messaging.destination.name"] == "t.run-events"


def test_what_a_read_record_causes_joins_its_trace(
    spans: InMemorySpanExporter, publisher: Publisher
) -> None:
    cause = sample_event(EventType.USER_MESSAGE, causation_id=None)
    with tracing.span("client work"):
        written = publisher.record_for(cause)
    (origin,) = _named(spans, "client work")
    decoded = decode_record(publisher._codec, _consumed(written))
    assert decoded.event == cause

    # Handled later, in another task: the handling span hangs under the record's
    # span, and what it publishes carries the handling span.
    with tracing.handling(cause.event_id, "orchestrator answer"):
        answer = publisher.record_for(
            sample_event(EventType.RUN_STATUS_CHANGED, causation_id=cause.event_id)
        )
    (handled,) = _named(spans, "orchestrator answer")
    assert handled.kind is SpanKind.CONSUMER
    assert origin.context is not None
    assert handled.parent is not None
    assert handled.parent.span_id == origin.context.span_id
    assert dict(answer.headers)["traceparent"] == _header(handled)

    # Published with no current span, an event still carries its cause's context.
    late = publisher.record_for(sample_event(EventType.TOOL_RESULT, causation_id=cause.event_id))
    assert dict(late.headers)["traceparent"] == dict(written.headers)["traceparent"]

    # A projector's batch: one span per trace, under the record's span.
    hooks.reader.set("runwire-projector-runs")
    with tracing.applying("projector-runs", [decoded, decoded]):
        pass
    (applied,) = _named(spans, "projector-runs apply")
    assert applied.parent is not None
    assert applied.parent.span_id == origin.context.span_id
    assert applied.attributes is not None
    assert applied.attributes["messaging.batch.message_count"] == 2
    assert applied.attributes["messaging.consumer.group.name"] == "runwire-projector-runs"
    assert {s.context.trace_id for s in spans.get_finished_spans() if s.context} == {
        origin.context.trace_id
    }


def test_the_oldest_remembered_contexts_are_forgotten_first(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(otel, "REMEMBERED", 3)
    active = tracing.disable()
    assert active is not None
    tracing.enable(active)
    header = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    for event_id in ("e1", "e2", "e3", "e2", "e4", "e5"):  # e2 again: kept where it was
        active.remember(event_id, header)
    for event_id in ("e1", "e2", "e3", "e4", "e5"):
        with tracing.handling(event_id, f"handle {event_id}"):
            pass
    parented = {
        s.name.removeprefix("handle ")
        for s in _named(spans, "handle ")
        if s.parent is not None and s.parent.span_id == 0xB7AD6B7169203331
    }
    assert parented == {"e3", "e4", "e5"}


def test_an_oversized_traceparent_is_kept_as_malformed_not_at_its_size(
    spans: InMemorySpanExporter, publisher: Publisher
) -> None:
    # A hostile producer's header as large as a record may be: every traced
    # reader would otherwise keep REMEMBERED of them and write them on.
    event = sample_event(EventType.USER_MESSAGE, causation_id=None)
    with tracing.span("client work"):
        written = _consumed(publisher.record_for(event))
    (origin,) = _named(spans, "client work")
    huge = _header(origin) + b"-" + b"a" * 500_000
    headers = [(k, huge if k == "traceparent" else v) for k, v in written.headers]
    decoded = decode_record(publisher._codec, written._replace(headers=headers))
    assert decoded.event == event
    active = tracing.disable()
    assert active is not None
    tracing.enable(active)
    assert sum(len(v) for v in active._contexts.values()) <= otel.TRACEPARENT_MAX_BYTES
    # What the event causes starts a new trace that says why, and records
    # published for it carry no header of the reader's making.
    with tracing.handling(event.event_id, "orchestrator answer"):
        pass
    (span,) = _named(spans, "orchestrator answer")
    assert span.parent is None
    assert span.attributes is not None
    assert span.attributes.get("runwire.trace.malformed") is True
    late = publisher.record_for(sample_event(EventType.TOOL_RESULT, causation_id=event.event_id))
    assert all(len(v) <= otel.TRACEPARENT_MAX_BYTES for k, v in late.headers if k == "traceparent")


@pytest.mark.parametrize(
    "traceparent",
    [b"00-not-a-trace-01", b"zz-" + b"0" * 32 + b"-" + b"0" * 16 + b"-01", b"\xff\xfe", b""],
)
def test_a_malformed_traceparent_starts_a_new_trace_and_the_record_goes_on(
    spans: InMemorySpanExporter, publisher: Publisher, traceparent: bytes
) -> None:
    event = sample_event(EventType.USER_MESSAGE, causation_id=None)
    with tracing.span("client work"):
        written = _consumed(publisher.record_for(event))
    headers = [(k, traceparent if k == "traceparent" else v) for k, v in written.headers]
    decoded = decode_record(publisher._codec, written._replace(headers=headers))
    assert decoded.event == event
    with tracing.handling(event.event_id, "orchestrator answer"):
        pass
    with tracing.applying("projector-runs", [decoded]):
        pass
    (origin,) = _named(spans, "client work")
    for name in ("orchestrator answer", "projector-runs apply"):
        (span,) = _named(spans, name)
        assert span.parent is None, name
        assert span.context is not None
        assert origin.context is not None
        assert span.context.trace_id != origin.context.trace_id
        assert span.attributes is not None
        assert span.attributes.get("runwire.trace.malformed") is True


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


@pytest.mark.parametrize(
    "header",
    [
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
        "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future-field",
    ],
)
def test_a_well_formed_traceparent_is_the_parent(header: str) -> None:
    from opentelemetry import trace

    from runwire.telemetry.otel import _parent

    context, malformed = _parent(header.encode())
    assert not malformed
    span_context = trace.get_current_span(context).get_span_context()
    assert span_context.is_remote
    assert f"{span_context.trace_id:032x}" == header.split("-")[1]
    assert f"{span_context.span_id:016x}" == header.split("-")[2]
    assert int(span_context.trace_flags) == int(header.split("-")[3], 16)


@pytest.mark.parametrize(
    "header",
    [
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # all-zero trace id
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # all-zero span id
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",  # upper case
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # forbidden version
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",  # 00 has 4 fields
    ],
)
def test_an_invalid_traceparent_is_no_parent(header: str) -> None:
    from runwire.telemetry.otel import _parent

    assert _parent(header.encode())[1] is True


def test_a_trace_backend_that_is_down_neither_slows_nor_fails_publishing(
    publisher: Publisher,
) -> None:
    import socket
    import time

    from runwire.telemetry.otel import Tracing, provider_from_env

    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    provider = provider_from_env(
        "tools",
        {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
        },
    )
    dropped = SPANS_DROPPED.labels("otlp_export_failed")
    before = dropped._value.get()
    tracing.enable(Tracing(provider))
    try:
        started = time.perf_counter()
        for _ in range(200):
            with hooks.scope("t.run-events", [sample_event(EventType.USER_MESSAGE)]):  # type: ignore[misc]
                record = publisher.record_for(sample_event(EventType.USER_MESSAGE))
        took = time.perf_counter() - started
        assert "traceparent" in dict(record.headers)
        assert took < 1.0, f"200 traced publishes took {took:.2f}s with the backend down"
        provider.force_flush()  # the export fails on the processor's thread, not here
    finally:
        tracing.disable()
        provider.shutdown()
    assert dropped._value.get() - before == 200


async def test_turns_in_flight_together_each_write_their_own_span(
    spans: InMemorySpanExporter, publisher: Publisher
) -> None:
    # Many operations interleave on one loop (a backlog of runs): each task's
    # records carry its own span however the others switch in between, and a
    # span another library makes current inside one is the one carried then.
    import asyncio

    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    def written() -> bytes | None:
        record = publisher.record_for(sample_event(EventType.USER_MESSAGE, causation_id=None))
        return dict(record.headers).get("traceparent")

    seen: dict[int, list[bytes | None]] = {}
    foreign = {
        i: SpanContext(0xABC0 + i, 0xDEF0 + i, is_remote=False, trace_flags=TraceFlags(1))
        for i in range(5)
    }

    async def turn(i: int) -> None:
        with tracing.span(f"turn {i}"):
            mine = seen.setdefault(i, [])
            for _ in range(3):
                mine.append(written())
                await asyncio.sleep(0)
            with trace.use_span(NonRecordingSpan(foreign[i])):
                mine.append(written())
                await asyncio.sleep(0)
            mine.append(written())

    await asyncio.gather(*(turn(i) for i in range(5)))
    for i, headers in seen.items():
        (own,) = _named(spans, f"turn {i}")
        other = f"00-{0xABC0 + i:032x}-{0xDEF0 + i:016x}-01".encode()
        assert headers == [_header(own)] * 3 + [other, _header(own)]


def test_the_console_exporter_writes_a_span_a_line_with_its_attributes() -> None:
    import io

    from runwire.telemetry.otel import Tracing, provider_from_env

    out = io.StringIO()
    provider = provider_from_env("test", {"OTEL_TRACES_EXPORTER": "console"}, console=out)
    active = Tracing(provider)
    tracing.enable(active)
    try:
        with tracing.span("chat local", {"gen_ai.system": "local"}, client=True) as span:
            span.set_attribute("gen_ai.usage.output_tokens", 7)
            with tracing.span("tool lookup"):
                pass
    finally:
        tracing.disable()
        provider.shutdown()
    lines = out.getvalue().splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["tool", "chat"]
    tool, chat = lines
    trace_id = chat.split("trace=")[1].split(" ")[0]
    chat_span = chat.split("trace=")[1].split(" ")[1]
    assert tool.split("trace=")[1].split(" ")[0] == trace_id
    assert f"parent={chat_span}" in tool
    assert "parent=-" in chat
    assert chat.endswith("{'gen_ai.system': 'local', 'gen_ai.usage.output_tokens': 7}")
