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
                    s.name == "projector-runs apply"
                    and _attr(s, "runwire.event.id") == completed.event_id
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
    (origin,) = [s for s in mine if s.name.startswith("send ") and s.parent is None]
    assert _attr(origin, "runwire.event.type") in ("run_started", "user_message")
    assert origin.context is not None
    trace_id = origin.context.trace_id
    in_trace = [s for s in finished if s.context is not None and s.context.trace_id == trace_id]
    by_id = {s.context.span_id: s for s in in_trace if s.context is not None}

    def named(name: str) -> list[ReadableSpan]:
        found = [s for s in in_trace if s.name == name or s.name.startswith(name + " ")]
        assert found, f"no {name} span in the trace; spans: {sorted({s.name for s in in_trace})}"
        return found

    def ancestors(span: ReadableSpan) -> list[ReadableSpan]:
        out = []
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            out.append(span)
        return out

    answers = named("orchestrator answer")
    assert len(answers) == 2, "one answer to the message, one to the tool result"
    first, second = sorted(answers, key=lambda s: s.start_time or 0)
    models = named("chat")
    assert len(models) == 2
    assert all(_attr(m, "gen_ai.usage.output_tokens") is not None for m in models)
    assert {a.name for m in models for a in ancestors(m)} >= {"orchestrator answer"}
    (call,) = named("tools call")
    (tool,) = named("execute_tool")
    applied = [
        s
        for s in named("projector-runs apply")
        if _attr(s, "runwire.event.id") == completed.event_id
    ]
    assert applied
    # client -> orchestrator -> (tool_use) -> tool runner -> (tool_result) ->
    # orchestrator -> projections, each hop under the one before: the records
    # carry the span of the operation that wrote them.
    assert first in ancestors(call)
    assert call in ancestors(tool)
    assert call in ancestors(second)
    assert second in ancestors(applied[0])
    for span in in_trace:
        if span is not origin:
            assert ancestors(span)[-1:] == [origin], f"{span.name} does not reach the client"
