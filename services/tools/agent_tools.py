"""Agents as tools: a call of an agent tool is a child run through the log.

Contract:
- :class:`ChildRuns` makes one :class:`Tool` per agent offered as a tool
  (the agents file's ``agents = [...]``). Executed by the tool runner, a
  call starts a **child run**: ``run_started`` (the agent, ``parent_run_id``
  = the calling run, label ``runwire.parent_tool_use_id``) and a
  ``user_message`` with the call's ``task``, as one atomic batch, in the
  parent's session, for its user and tenant. It then follows the child's
  events until its terminal event: ``completed`` is the result
  ``{"run_id", "agent", "answer"}`` (the child's last assistant text);
  ``failed`` or ``canceled`` is an error result naming the child and its
  reason, which the parent's model reads.
- **One child per tool call**: the child's run id and its start events'
  ids are derived from (parent run, tool call id), so a repeated start
  writes the same events. A call executed again after a restart of the
  runner (``ToolContext.recovered``) first looks for the child in its
  partition and starts it only if it is not there, so a child that already
  ran is never asked again; the result is the tool runner's (exactly one
  per tool call).
- The parent waits in ``awaiting_tools`` meanwhile. When the parent ends
  (canceled, failed) while the child runs, the child is canceled
  (``run_canceled``, :meth:`ChildRuns.parent_ended`).
- Cycles are refused when the agents file is loaded; a call waits at most
  ``timeout`` seconds for its child (then an error result; the child is
  canceled).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from runwire.contract import ids
from runwire.contract.events import (
    Event,
    RunCanceled,
    RunFailed,
    RunStarted,
    ToolUse,
    UserMessage,
)
from runwire.log import EventWriter, publish_retrying
from runwire.log.watcher import RunWatcher
from runwire.providers.base import ToolSpec
from runwire.services.tools.registry import Tool, ToolContext, ToolError
from runwire.transcript.ledger import build_messages_from_events

__all__ = ["CHILD_TIMEOUT", "PARENT_TOOL_USE_LABEL", "PRODUCER", "ChildRuns", "child_run_id"]

log = logging.getLogger(__name__)

PRODUCER = "runwire-tools"
PARENT_TOOL_USE_LABEL = "runwire.parent_tool_use_id"
CHILD_TIMEOUT = 900.0
"""Seconds a call waits for its child run (the watchdog's default stall limit)."""


def child_run_id(parent_run_id: str, tool_use_id: str) -> str:
    """The run id of the child that tool call ``tool_use_id`` of ``parent_run_id`` starts."""
    return ids.deterministic_event_id(parent_run_id, f"child:{tool_use_id}", 0)


class ChildRuns:
    """Agent tools on one publisher and one live watcher (both the caller's)."""

    def __init__(
        self,
        publisher: EventWriter,
        watcher: RunWatcher,
        *,
        timeout: float = CHILD_TIMEOUT,
    ) -> None:
        self._publisher = publisher
        self._watcher = watcher
        self._timeout = timeout
        self._agents: set[str] = set()

    def tools(self, specs: Iterable[ToolSpec]) -> list[Tool]:
        """One tool per agent spec (the tool's name is the agent's id)."""
        out = []
        for spec in specs:
            self._agents.add(spec.name)
            out.append(self._tool(spec))
        return out

    def _tool(self, spec: ToolSpec) -> Tool:
        agent = spec.name

        async def call(tool_input: Mapping[str, Any], context: ToolContext) -> Any:
            return await self._call(agent, tool_input, context)

        # The runner's bound is a little longer: the child's own wait reports first.
        return Tool(spec, call, timeout=self._timeout + 5.0)

    async def _call(self, agent: str, tool_input: Mapping[str, Any], context: ToolContext) -> Any:
        task = tool_input.get("task")
        if not isinstance(task, str) or not task.strip():
            raise ToolError("the input needs a non-empty string 'task'")
        child = child_run_id(context.run_id, context.tool_use_id)
        partition = self._watcher.partition_of(child)
        start = None
        if context.recovered:
            start = await self._find_start(child, partition)
        if start is None:
            start = await self._start(agent, child, task, context)
        events: list[Event] = []
        try:
            async with asyncio.timeout(self._timeout):
                async for _, event in self._watcher.events(child, partition, start):
                    events.append(event)
        except TimeoutError:
            await self._cancel(child, context, f"no answer within {self._timeout:g}s")
            raise ToolError(
                f"the {agent} agent's run {child} did not end within {self._timeout:g}s"
            ) from None
        return _result(agent, child, events)

    async def _find_start(self, child: str, partition: int) -> int | None:
        """The offset of the child's ``run_started``, if it was started (read from the
        partition's start: only done for calls executed again after a restart)."""
        end = await self._watcher.end_offset(partition)
        if end == 0:
            return None
        async for offset, event in self._watcher.events(
            child, partition, 0, stop_at=end, until_terminal=False
        ):
            if isinstance(event.payload, RunStarted):
                return offset
        return None

    async def _start(self, agent: str, child: str, task: str, context: ToolContext) -> int:
        envelope: dict[str, Any] = {
            "run_id": child,
            "session_id": context.session_id,
            "agent_id": agent,
            "user_id": context.user_id,
            "tenant": context.tenant,
            "producer": PRODUCER,
            "causation_id": context.tool_use_event_id,
        }
        events = [
            Event.create(
                RunStarted(
                    agent_id=agent,
                    parent_run_id=context.run_id,
                    labels={PARENT_TOOL_USE_LABEL: context.tool_use_id},
                ),
                event_id=ids.deterministic_event_id(child, "start", 0),
                **envelope,
            ),
            Event.create(
                UserMessage(parts=[task]),
                event_id=ids.deterministic_event_id(child, "start", 1),
                **envelope,
            ),
        ]
        positions = await publish_retrying(self._publisher, events, atomic=True)
        return positions[0].offset

    async def parent_ended(self, use: Event, ending: Event) -> None:
        """Run ``use.run_id`` ended while its agent call ``use`` ran: cancel the child."""
        payload = use.payload
        assert isinstance(payload, ToolUse)
        assert use.run_id is not None
        if payload.name not in self._agents:
            return
        reason = f"the parent run {use.run_id} ended ({ending.type.value})"
        if isinstance(ending.payload, RunFailed):
            reason += f": {ending.payload.error_kind}"
        context = ToolContext(
            run_id=use.run_id,
            tool_use_id=payload.id,
            session_id=use.session_id,
            user_id=use.user_id,
            tenant=use.tenant,
        )
        await self._cancel(child_run_id(use.run_id, payload.id), context, reason, ending.event_id)

    async def _cancel(
        self, child: str, context: ToolContext, reason: str, cause: str = "timeout"
    ) -> None:
        """``run_canceled`` for ``child`` (one per cause: a repeat is a duplicate)."""
        event = Event.create(
            RunCanceled(reason=reason),
            run_id=child,
            session_id=context.session_id,
            user_id=context.user_id,
            tenant=context.tenant,
            producer=PRODUCER,
            causation_id=None if cause == "timeout" else cause,
            event_id=ids.deterministic_event_id(child, cause, 0),
        )
        await publish_retrying(self._publisher, [event])


def _result(agent: str, child: str, events: list[Event]) -> Any:
    last = events[-1].payload if events else None
    if isinstance(last, RunFailed):
        raise ToolError(
            f"the {agent} agent's run {child} failed: {last.error_kind}: {last.message}"
        )
    if isinstance(last, RunCanceled):
        raise ToolError(f"the {agent} agent's run {child} was canceled: {last.reason or ''}")
    answer = ""
    for message in reversed(build_messages_from_events(events, child)):
        if message.role == "assistant":
            answer = message.text()
            break
    return {"run_id": child, "agent": agent, "answer": answer}
