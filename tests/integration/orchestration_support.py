"""What the orchestrator and tool-runner tests share: service processes and a log reader."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from runwire.client import RunOutcome
from runwire.contract.codec import default_codec
from runwire.contract.events import Event, EventType, RunStatus, RunStatusChanged
from runwire.log.clients import topic_partitions
from runwire.log.runs import RunReader
from runwire.projections.runs.reader import RunStore
from runwire.projections.sessions.reader import SessionIndex
from runwire.providers.local import LocalModel
from runwire.services.orchestrator.history import SessionHistory
from runwire.services.orchestrator.run_state import Answer, RunState
from runwire.services.orchestrator.service import rules_of
from runwire.services.process import ServiceProcess
from runwire.services.run_context import RunContext
from runwire.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def service_process(
    name: str,
    settings: Settings,
    *,
    instance_id: str | None = None,
    local_latency: float = 0.0,
    tool_latency: float = 0.0,
    max_records: int | None = None,
) -> ServiceProcess:
    """``python -m runwire.services NAME`` with the knobs the crash tests need."""
    argv = ["-m", "runwire.services", name, "--log-level", "WARNING"]
    if name == "orchestrator":
        argv.append("--no-history")  # these tests run no projectors
    if instance_id:
        argv += ["--instance-id", instance_id]
    if local_latency:
        argv += ["--local-latency", str(local_latency)]
    if tool_latency:
        argv += ["--tool-latency", str(tool_latency)]
    if max_records:
        argv += ["--max-records", str(max_records)]
    return ServiceProcess(name, settings, argv)


@dataclass(frozen=True)
class LogRecord:
    partition: int
    offset: int
    event: Event


async def read_run_log(settings: Settings) -> list[LogRecord]:
    """Every record of the run-events topic, decoded, partition by partition."""
    codec = default_codec()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, settings.run_events)
        tps = [TopicPartition(settings.run_events, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[LogRecord] = []
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                out.extend(
                    LogRecord(tp.partition, r.offset, codec.decode(r.value)) for r in records
                )
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return out
    finally:
        await consumer.stop()


ANSWER_TYPES = frozenset(
    {
        EventType.THINKING,
        EventType.ASSISTANT_TEXT,
        EventType.TOOL_USE,
        EventType.USAGE,
        EventType.RUN_COMPLETED,
        EventType.RUN_FAILED,
        EventType.RUN_STATUS_CHANGED,
    }
)


def duplicated_ids(records: Sequence[LogRecord], producer: str) -> dict[str, int]:
    """Event ids of ``producer`` written more than once (each record counts)."""
    counts = Counter(r.event.event_id for r in records if r.event.producer == producer)
    return {k: n for k, n in counts.items() if n > 1}


@contextlib.asynccontextmanager
async def projectors(settings: Settings) -> AsyncIterator[None]:
    """The run-status, session-index and transcript-cache projectors, in this process."""
    from runwire.projections.catalog import opener
    from runwire.projections.runtime.consumer import Projector, ProjectorOptions
    from runwire.projections.transcripts.service import open_projection

    options = ProjectorOptions(session_timeout_ms=6000, heartbeat_interval_ms=500)
    async with contextlib.AsyncExitStack() as stack:
        projections = [
            await stack.enter_async_context(opener("runs")(settings)),
            await stack.enter_async_context(opener("sessions")(settings)),
            await stack.enter_async_context(open_projection(settings)),
        ]
        tasks = []
        for projection in projections:
            projector = await stack.enter_async_context(
                Projector(projection, settings, options=options)
            )
            tasks.append(asyncio.create_task(projector.run()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def closings_by_delta(events: Sequence[LogRecord]) -> tuple[list[str], Counter[str | None]]:
    """A run's deltas (user messages, tool results) and how many closing records
    (``run_completed``, ``awaiting_tools``) each has."""
    deltas = [
        r.event.event_id
        for r in events
        if r.event.type in (EventType.USER_MESSAGE, EventType.TOOL_RESULT)
    ]
    closings = Counter(
        r.event.causation_id
        for r in events
        if r.event.type is EventType.RUN_COMPLETED
        or (
            isinstance(r.event.payload, RunStatusChanged)
            and r.event.payload.status is RunStatus.AWAITING_TOOLS
        )
    )
    return deltas, closings


def first_call(outcome: RunOutcome) -> tuple[RunState, Answer]:
    """A recorded run's state up to its ``context_seeded`` and its first model call,
    as an orchestrator rebuilds them after a restart."""
    kinds = [e.type for e in outcome.events]
    state = RunState(RunContext.of(outcome.events[0]), 0, max_turns=8)
    for offset, event in enumerate(outcome.events[: kinds.index(EventType.CONTEXT_SEEDED) + 1]):
        state.apply(event, offset)
    action = state.next_action()
    assert isinstance(action, Answer)
    return state, action


@contextlib.asynccontextmanager
async def local_history(
    settings: Settings, run_log: RunReader | None = None, **options: Any
) -> AsyncIterator[SessionHistory]:
    """Session history for the local model on readers of its own (``run_log``: the
    log reader to use), closed with it; ``options`` as :class:`SessionHistory` takes."""
    runs = await RunStore.connect(settings)
    sessions = await SessionIndex.connect(settings)
    reader = run_log if run_log is not None else RunReader(settings)
    history = SessionHistory(
        settings,
        runs=runs,
        sessions=sessions,
        run_log=reader,
        provider=rules_of(LocalModel()),
        thinking_enabled=settings.thinking_enabled,
        owned=(runs, sessions, reader),
        **options,
    )
    async with history:
        yield history
