"""The tool runner: executes tool_use events of registered tools, publishes tool_result.

Contract:
- Follows the run-events topic in its own consumer group (separate from the
  orchestrator's) and acts on caught-up partitions only
  (:mod:`runwire.services.follower`).
- A ``tool_use`` of a registered tool with no ``tool_result`` for it in the
  log is executed, and its result published with ``causation_id`` = the
  tool_use event's id and a deterministic ``event_id`` (run, tool_use event,
  0): a result already in the log is seen during catch-up and never produced
  again, and a retried publish writes the same event.
- Execution is **at-least-once**: a crash after a tool ran but before its
  result reached the log runs it again after the restart. The built-in tools
  are safe to repeat (pure, or an idempotent ``memory_set``); tools with side
  effects should be idempotent on their ``tool_use_id``. Results are
  exactly one per tool_use in the log, short of a zombie instance (one that
  lost its partitions without knowing it) racing a new owner.
- A tool's failure or timeout is a result with ``is_error`` and the message.
- Live views: ``live_tool_started`` when a call begins executing and
  ``live_tool_finished`` (``is_error``, ``duration_ms``) when it ends go to
  the live topic (caused by the tool_use event; best effort, in that order;
  off with ``live=False`` or ``settings.live_events``).
- A tool call is executed once at most: a repeat of its ``tool_use``, or
  one with the same ids and another body (refused by every reader as
  ``conflicting_duplicate_event``), is not executed again, even after its
  result is in (the most recent calls of each partition are remembered).
- Tools not in the registry are left alone: the run waits in
  ``awaiting_tools`` until someone publishes their results.
- A result published by someone else or a terminal event stops the
  execution of that run's tools; ``paused`` holds the ones not started yet
  until the resume (a status change caused by that pause event).
- A call announced by ``approval_requested`` (which precedes its tool_use
  in the log) is held until the first ``approval_decided`` for it: an
  approval starts it, a denial drops it (the orchestrator answers it with
  an error result).
- ``on_run_ended(tool_use, ending)`` is told when a run ends while one of
  its calls runs (an agent tool cancels its child run there).
- A call found while catching up is executed with ``ToolContext.recovered``
  (it may have run before the restart).
- Calls may wait for any time (held, or of a paused run), any number of them:
  an event looks at its own run's calls only, and a batch's end at the calls
  it made ready, never at every call waiting in the partition.
- Committed offsets never pass the oldest tool_use still without a result.
- ``start()`` / ``stop()`` (idempotent) or ``async with``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field

from runwire.contract.codec import Codec
from runwire.contract.events import (
    TERMINAL_EVENTS,
    ApprovalDecided,
    ApprovalRequested,
    Event,
    LiveToolFinished,
    LiveToolStarted,
    RunStatus,
    RunStatusChanged,
    ToolResult,
    ToolUse,
)
from runwire.contract.run_lifecycle import foreign_to_run
from runwire.log import EventWriter, publish_retrying
from runwire.log.live import LiveEmitter
from runwire.services.follower import (
    Follower,
    FollowerOptions,
    FollowingService,
    consumer_group,
)
from runwire.services.run_context import RunContext
from runwire.services.tools.registry import ToolContext, ToolRegistry
from runwire.settings import Settings
from runwire.telemetry import tracing
from runwire.telemetry.metrics import HANDLER_SECONDS, TOOL_ERRORS, TOOL_SECONDS

__all__ = ["PRODUCER", "RunEnded", "ToolRunner", "ToolRunnerStats", "result_event"]

RunEnded = Callable[[Event, Event], Awaitable[None]]
"""Told (tool_use event, terminal event) when a run ends while that call runs."""

log = logging.getLogger(__name__)

PRODUCER = "runwire-tools"
_ENDED_MEMORY = 50_000


@dataclass
class ToolRunnerStats:
    executed: int = 0
    errors: int = 0
    skipped: int = 0
    """Executions stopped because the run ended or someone else answered."""


@dataclass
class _Call:
    offset: int
    event: Event
    task: asyncio.Task[None] | None = None
    recovered: bool = False
    """Found while catching up: it may have been executed before a restart."""
    held: bool = False
    """Waiting for a person's approval."""


_Key = tuple[str, str]
"""(run_id, tool_use id) of a call."""


@dataclass
class _Partition:
    calls: OrderedDict[_Key, _Call] = field(default_factory=OrderedDict)
    """(run_id, tool_use id) -> the call still without a result in the log."""
    of_run: dict[str, dict[_Key, None]] = field(default_factory=dict)
    """Run id -> the keys of its calls in ``calls``: a run's ending, pause or resume
    looks at its own calls, never at every call waiting in the partition."""
    ready: dict[_Key, None] = field(default_factory=dict)
    """Calls that may start at the next batch's end (new, approved, or resumed)."""
    ended: OrderedDict[str, None] = field(default_factory=OrderedDict)
    uses: OrderedDict[tuple[str, str], None] = field(default_factory=OrderedDict)
    """(run_id, tool_use id) of the most recent calls seen, answered or not: a
    repeat or a copy with another body (the same ids) is never executed again."""
    held: OrderedDict[tuple[str, str], None] = field(default_factory=OrderedDict)
    """(run_id, tool_use id) announced by ``approval_requested``, not decided yet."""
    paused: dict[str, str] = field(default_factory=dict)
    """Run id -> the pause event in force (only a status change it caused lifts it)."""
    tenants: OrderedDict[str, str | None] = field(default_factory=OrderedDict)
    """Run id -> its tenant (the first its events name, as read here): another
    tenant's events on its id are not the run's (runwire.contract.run_lifecycle)."""
    live: bool = False

    def add(self, key: _Key, call: _Call) -> None:
        self.calls[key] = call
        self.of_run.setdefault(key[0], {})[key] = None
        self.ready[key] = None

    def drop(self, key: _Key) -> _Call | None:
        call = self.calls.pop(key, None)
        if call is not None:
            keys = self.of_run[key[0]]
            del keys[key]
            if not keys:
                del self.of_run[key[0]]
        return call


def result_event(use: Event, content: object, is_error: bool) -> Event:
    """The tool_result answering tool_use event ``use`` (deterministic id)."""
    payload = use.payload
    assert isinstance(payload, ToolUse)
    return RunContext.of(use).event(
        ToolResult(tool_use_id=payload.id, content=content, is_error=is_error),
        producer=PRODUCER,
        causation_id=use.event_id,
        index=0,
    )


def _live_event(use: Event, payload: LiveToolStarted | LiveToolFinished) -> Event:
    """A live event of tool_use event ``use`` (deterministic id: a repeat is recognisable)."""
    index = 1 if isinstance(payload, LiveToolStarted) else 2
    return RunContext.of(use).event(
        payload, producer=PRODUCER, causation_id=use.event_id, index=index
    )


class ToolRunner(FollowingService):
    """Executes registered tools for every run; see the module contract."""

    def __init__(
        self,
        settings: Settings,
        *,
        registry: ToolRegistry,
        publisher: EventWriter,
        max_concurrent_tools: int = 256,
        follower_options: FollowerOptions | None = None,
        codec: Codec | None = None,
        live: bool | None = None,
        on_run_ended: RunEnded | None = None,
    ) -> None:
        self._registry = registry
        self._on_run_ended = on_run_ended
        self._ended_work: set[asyncio.Future[None]] = set()
        self._publisher = publisher
        self._live = settings.live_events if live is None else live
        self._slots = asyncio.Semaphore(max_concurrent_tools)
        self._partitions: dict[int, _Partition] = {}
        self.stats = ToolRunnerStats()
        self._follower = Follower(
            settings,
            self,
            group_id=consumer_group(settings, "tools"),
            codec=codec,
            options=follower_options,
        )

    @property
    def registry(self) -> ToolRegistry:
        return self._registry

    # -- the fold (FollowHandler) ------------------------------------------------

    def assigned(self, partitions: Collection[int]) -> None:
        for p in partitions:
            self._partitions[p] = _Partition()

    async def revoked(self, partitions: Collection[int]) -> None:
        tasks = []
        for p in partitions:
            part = self._partitions.pop(p, None)
            if part is None:
                continue
            for call in part.calls.values():
                if call.task is not None and not call.task.done():
                    call.task.cancel()
                    tasks.append(call.task)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def apply(self, partition: int, offset: int, event: Event) -> None:
        part = self._partitions.get(partition)
        run_id = event.run_id
        if part is None or run_id is None:
            return
        tenant = part.tenants.get(run_id)
        if foreign_to_run(event, tenant):
            return  # another tenant's event on this run's id: no cancel, no pause
        if tenant is None and event.tenant is not None:
            part.tenants[run_id] = event.tenant
            if len(part.tenants) > _ENDED_MEMORY:
                part.tenants.popitem(last=False)
        payload = event.payload
        if isinstance(payload, ToolUse):
            key = (run_id, payload.id)
            if key in part.uses:
                return  # a repeat, or the same call with another body: run once at most
            part.uses[key] = None
            if len(part.uses) > _ENDED_MEMORY:
                part.uses.popitem(last=False)
            if payload.name in self._registry and run_id not in part.ended:
                part.add(key, _Call(offset, event, held=key in part.held))
        elif isinstance(payload, ApprovalRequested):
            part.held[(run_id, payload.tool_use_id)] = None
            if len(part.held) > _ENDED_MEMORY:
                part.held.popitem(last=False)
        elif isinstance(payload, ApprovalDecided):
            key = (run_id, payload.tool_use_id)
            if key not in part.held:
                return  # not held, or decided before: the first decision counts
            del part.held[key]
            held = part.calls.get(key)
            if held is None:
                return
            if payload.approved:
                held.held = False
                part.ready[key] = None
            else:
                part.drop(key)  # the orchestrator answers it with an error
        elif isinstance(payload, ToolResult):
            call = part.drop((run_id, payload.tool_use_id))
            if call is not None and event.producer != PRODUCER:
                self._stop(call)  # answered from outside
        elif event.type in TERMINAL_EVENTS:
            part.ended[run_id] = None
            if len(part.ended) > _ENDED_MEMORY:
                part.ended.popitem(last=False)
            part.paused.pop(run_id, None)
            for key in list(part.of_run.get(run_id, ())):
                call = part.drop(key)
                assert call is not None
                if call.task is not None and not call.task.done() and self._on_run_ended:
                    work = asyncio.ensure_future(self._run_ended(call, event))
                    self._ended_work.add(work)
                    work.add_done_callback(self._ended_work.discard)
                self._stop(call)
        elif isinstance(payload, RunStatusChanged):
            if payload.status is RunStatus.PAUSED:
                part.paused[run_id] = event.event_id
            elif event.causation_id is not None and part.paused.get(run_id) == event.causation_id:
                del part.paused[run_id]
                part.ready.update(part.of_run.get(run_id, {}))

    async def _run_ended(self, call: _Call, ending: Event) -> None:
        assert self._on_run_ended is not None
        try:
            await self._on_run_ended(call.event, ending)
        except Exception:
            log.exception("run %s: reacting to its end failed", call.event.run_id)

    def _stop(self, call: _Call) -> None:
        if call.task is not None and not call.task.done():
            call.task.cancel()
            self.stats.skipped += 1

    def batch_done(self) -> None:
        for part in self._partitions.values():
            if part.live and part.ready:
                self._start_calls(part)

    def caught_up(self, partition: int) -> None:
        part = self._partitions.get(partition)
        if part is not None:
            for call in part.calls.values():
                call.recovered = True
            part.live = True
            part.ready = dict.fromkeys(part.calls)
            self._start_calls(part)

    def safe_offset(self, partition: int, position: int) -> int:
        part = self._partitions.get(partition)
        if part is None or not part.calls:
            return position
        # Calls are kept in log order, so the first is the oldest.
        return min(position, next(iter(part.calls.values())).offset)

    # -- acting ------------------------------------------------------------------

    def _start_calls(self, part: _Partition) -> None:
        """Start the ready calls that are not held, nor of a paused run (those
        become ready again when approved or resumed)."""
        ready, part.ready = part.ready, {}
        for key in ready:
            call = part.calls.get(key)
            if call is None or call.task is not None or call.held or key[0] in part.paused:
                continue
            call.task = asyncio.create_task(self._execute(call.event, call.recovered))

    async def _execute(self, use: Event, recovered: bool) -> None:
        payload = use.payload
        assert isinstance(payload, ToolUse)
        assert use.run_id is not None
        context = ToolContext(
            run_id=use.run_id,
            tool_use_id=payload.id,
            session_id=use.session_id,
            user_id=use.user_id,
            agent_id=use.agent_id,
            tenant=use.tenant,
            tool_use_event_id=use.event_id,
            recovered=recovered,
        )
        started = time.perf_counter()
        with tracing.handling(
            use.event_id,
            "tools call",
            {"runwire.run.id": use.run_id or ""},
        ):
            try:
                await self._call(use, payload, context)
            finally:
                HANDLER_SECONDS.labels("tools", "call").observe(time.perf_counter() - started)

    async def _call(self, use: Event, payload: ToolUse, context: ToolContext) -> None:
        async with self._slots:
            started = time.perf_counter()
            live = LiveEmitter(self._publisher) if self._live else None
            if live is not None:
                live.emit(
                    _live_event(use, LiveToolStarted(tool_use_id=payload.id, name=payload.name))
                )
            with tracing.span(
                f"execute_tool {payload.name}",
                {"gen_ai.tool.name": payload.name, "gen_ai.tool.call.id": payload.id},
            ) as span:
                outcome = await self._registry.execute(payload.name, payload.input, context)
                if span is not None and outcome.is_error:
                    span.set_attribute("error.type", "tool_error")
            seconds = time.perf_counter() - started
            TOOL_SECONDS.labels(payload.name, "error" if outcome.is_error else "ok").observe(
                seconds
            )
            if live is not None:
                finished = LiveToolFinished(
                    tool_use_id=payload.id,
                    name=payload.name,
                    is_error=outcome.is_error,
                    duration_ms=round(seconds * 1000),
                )
                live.emit(_live_event(use, finished))
        self.stats.executed += 1
        if outcome.is_error:
            self.stats.errors += 1
            TOOL_ERRORS.labels(payload.name).inc()
        try:
            await publish_retrying(
                self._publisher, [result_event(use, outcome.content, outcome.is_error)]
            )
        except Exception:
            log.exception("run %s: publishing the result of %s failed", use.run_id, payload.id)
