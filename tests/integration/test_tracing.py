"""One trace from the client's message to the projections, across every service's spans."""

from __future__ import annotations

import asyncio
import contextlib

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from runwire.client import Client
from runwire.contract.events import EventType, RunStatus
from runwire.projections.serve import serve_projection
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.services.tools.wiring import tool_runner_service
from runwire.settings import Settings
from tests.helpers import assert_eventually


def _attr(span: ReadableSpan, name: str) -> object:
    return (span.attributes or {}).get(name)


async def test_one_trace_runs_from_the_client_through_tools_to_the_projections(
    settings: Settings, spans: InMemorySpanExporter
) -> None:
    stop = asyncio.Event()
    projector = asyncio.create_task(serve_projection("runs", settings, stop))
    try:
        async with (
            orchestrator_service(settings, history=False),
            tool_runner_service(settings),
            Client(settings) as rw,
        ):
            handle = await rw.run("helper", "what is 12 * (3 + 4)?", session_id="s1")
            outcome = await handle.wait(timeout=60)
            assert outcome.status is RunStatus.COMPLETED, outcome.events
            run_id = handle.run_id
            completed = next(e for e in outcome.events if e.type is EventType.RUN_COMPLETED)

            def projected() -> bool:
                return any(
                    _attr(s, "runwire.event.id") == completed.event_id
                    and _attr(s, "messaging.consumer.group.name")
                    == f"{settings.topic_prefix}runwire-projector-runs"
                    for s in spans.get_finished_spans()
                )

            await assert_eventually(projected, timeout=30)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await projector

    finished = spans.get_finished_spans()
    mine = [s for s in finished if _attr(s, "runwire.run.id") == run_id]
    assert mine
    (origin,) = [
        s
        for s in mine
        if s.name.startswith("send ") and _attr(s, "runwire.event.type") == "user_message"
    ]
    assert origin.parent is None, "the client's message starts the trace"
    assert origin.context is not None
    trace_id = origin.context.trace_id
    in_trace = [s for s in finished if s.context is not None and s.context.trace_id == trace_id]
    by_id = {s.context.span_id: s for s in in_trace if s.context is not None}

    def group(span: ReadableSpan) -> str:
        return str(_attr(span, "messaging.consumer.group.name") or "").removeprefix(
            f"{settings.topic_prefix}runwire-"
        )

    def one(predicate: object, what: str) -> list[ReadableSpan]:
        found = [s for s in in_trace if predicate(s)]  # type: ignore[operator]
        assert found, f"no {what} span in the trace; spans: {sorted({s.name for s in in_trace})}"
        return found

    def read_by(consumer: str, event_type: str) -> None:
        one(
            lambda s: (
                s.name.startswith("process ")
                and group(s) == consumer
                and _attr(s, "runwire.event.type") == event_type
            ),
            f"{consumer} reading the {event_type}",
        )

    read_by("orchestrator", "user_message")
    answers = one(lambda s: s.name == "orchestrator answer", "orchestrator answer")
    assert len(answers) == 2, "one answer to the message, one to the tool result"
    models = one(lambda s: s.name.startswith("chat "), "model call")
    assert len(models) == 2
    assert all(_attr(m, "gen_ai.usage.output_tokens") is not None for m in models)
    read_by("tools", "tool_use")
    (tool,) = one(lambda s: s.name.startswith("execute_tool "), "tool execution")
    (result,) = one(
        lambda s: s.name.startswith("send ") and _attr(s, "runwire.event.type") == "tool_result",
        "tool result",
    )
    read_by("orchestrator", "tool_result")
    read_by("projector-runs", "run_completed")

    # The tool result hangs (through the tool runner's handling) under the tool_use's span.
    def ancestors(span: ReadableSpan) -> list[str]:
        names = []
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            names.append(span.name)
        return names

    assert "tools call" in ancestors(result)
    assert "tools call" in ancestors(tool)
    # Every model call runs inside an orchestrator answer, and every span of the run
    # reaches the client's message.
    assert all("orchestrator answer" in ancestors(m) for m in models)
    for span in in_trace:
        if span is not origin:
            root = span
            while root.parent is not None and root.parent.span_id in by_id:
                root = by_id[root.parent.span_id]
            assert root is origin, f"{span.name} does not reach the client's message"
