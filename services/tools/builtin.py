"""The built-in tools: calculator, clock, remember, recall.

Their specs are the ones the local model knows (:data:`LOCAL_TOOL_SPECS`), so
the default agent can call them. Results are JSON objects:

- ``calculator`` -> ``{"expression", "result"}`` (safe parser, see
  :mod:`runwire.services.tools.calculator`);
- ``clock`` -> ``{"time": ISO 8601, "timezone"}``;
- ``remember`` -> ``{"key", "value", "stored": true}``;
- ``recall`` -> ``{"key", "value"}`` with ``""`` when nothing is known.

``remember`` / ``recall`` use a :class:`MemoryStore`, scoped to the run's user
when it has one, else to its session (else to the run itself).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from runwire.contract.events import MemoryScope
from runwire.providers.local import CALCULATOR, CLOCK, LOCAL_TOOL_SPECS, RECALL, REMEMBER
from runwire.services.tools.calculator import CalculatorError, calculate
from runwire.services.tools.memory import MemoryStore
from runwire.services.tools.registry import (
    Tool,
    ToolContext,
    ToolError,
    ToolFunction,
    ToolRegistry,
)

__all__ = ["builtin_registry", "memory_owner"]

_SPECS = {spec.name: spec for spec in LOCAL_TOOL_SPECS}


def memory_owner(context: ToolContext) -> tuple[MemoryScope, str]:
    """Whose memory a tool call reads and writes."""
    if context.user_id:
        return "user", context.user_id
    if context.session_id:
        return "session", context.session_id
    return "session", f"run:{context.run_id}"


def _text(tool_input: Mapping[str, Any], name: str) -> str:
    value = tool_input.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ToolError(f"the input needs a non-empty string {name!r}")
    return value.strip()


async def _calculator(tool_input: Mapping[str, Any], context: ToolContext) -> Any:
    expression = _text(tool_input, "expression")
    try:
        return {"expression": expression, "result": calculate(expression)}
    except CalculatorError as e:
        raise ToolError(str(e)) from None


def _clock(now: Callable[[], datetime]) -> ToolFunction:
    async def clock(tool_input: Mapping[str, Any], context: ToolContext) -> Any:
        name = tool_input.get("timezone") or "UTC"
        if not isinstance(name, str):
            raise ToolError("'timezone' must be a string such as 'UTC' or 'Europe/Paris'")
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ToolError(f"unknown time zone {name!r}") from None
        return {"time": now().astimezone(zone).isoformat(timespec="seconds"), "timezone": name}

    return clock


def _remember(memory: MemoryStore) -> ToolFunction:
    async def remember(tool_input: Mapping[str, Any], context: ToolContext) -> Any:
        key = _text(tool_input, "key").lower()
        value = tool_input.get("value")
        if value is None:
            raise ToolError("the input needs a 'value' to remember")
        scope, owner = memory_owner(context)
        await memory.set(scope, owner, key, value)
        return {"key": key, "value": value, "stored": True}

    return remember


def _recall(memory: MemoryStore) -> ToolFunction:
    async def recall(tool_input: Mapping[str, Any], context: ToolContext) -> Any:
        key = _text(tool_input, "key").lower()
        scope, owner = memory_owner(context)
        value = await memory.get(scope, owner, key)
        return {"key": key, "value": "" if value is None else value}

    return recall


def _slowed(function: ToolFunction, latency: float) -> ToolFunction:
    if latency <= 0:
        return function

    async def slowed(tool_input: Mapping[str, Any], context: ToolContext) -> Any:
        await asyncio.sleep(latency)
        return await function(tool_input, context)

    return slowed


def builtin_registry(
    memory: MemoryStore,
    *,
    now: Callable[[], datetime] | None = None,
    timeout: float = 10.0,
    latency: float = 0.0,
) -> ToolRegistry:
    """A registry holding the four built-in tools.

    ``latency`` seconds are slept before each call (demos and crash tests).
    """
    clock_now = now or (lambda: datetime.now(UTC))
    functions: dict[str, ToolFunction] = {
        CALCULATOR: _calculator,
        CLOCK: _clock(clock_now),
        REMEMBER: _remember(memory),
        RECALL: _recall(memory),
    }
    return ToolRegistry(
        Tool(_SPECS[name], _slowed(function, latency), timeout)
        for name, function in functions.items()
    )
