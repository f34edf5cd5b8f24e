"""The tools a tool runner executes, by name.

Contract:
- A :class:`Tool` is a spec (what the model is told: name, description,
  input schema) plus an async function of (input, context) returning a JSON
  value, and a timeout.
- :meth:`ToolRegistry.execute` never raises for a tool's own failure: it
  returns a :class:`ToolOutcome` with ``is_error`` and a readable message
  when the tool raised, returned something that is not JSON, or ran out of
  time. A :class:`ToolError` is the way for a tool to fail with a message
  meant for the model.
- Names are unique in a registry; tools not in it are left to someone else
  (a run calling one waits in ``awaiting_tools`` until a result is published
  from outside).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from runwire.errors import RunwireError
from runwire.providers.base import ToolSpec

__all__ = [
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolFunction",
    "ToolOutcome",
    "ToolRegistry",
]


class ToolError(RunwireError):
    """A tool's failure, with a message for the model (becomes ``is_error``)."""


@dataclass(frozen=True)
class ToolContext:
    """Who is asking: the run and its envelope ids, and which tool_use."""

    run_id: str
    tool_use_id: str
    session_id: str | None = None
    user_id: str | None = None
    agent_id: str | None = None
    tenant: str | None = None
    tool_use_event_id: str | None = None
    recovered: bool = False
    """The call is executed again after a restart (it may have run before)."""


ToolFunction = Callable[[Mapping[str, Any], ToolContext], Awaitable[Any]]


@dataclass(frozen=True)
class Tool:
    spec: ToolSpec
    function: ToolFunction
    timeout: float = 30.0

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class ToolOutcome:
    """A tool_result's body: JSON ``content`` and whether it is an error."""

    content: Any
    is_error: bool = False


class ToolRegistry:
    """Tools by name; see the module contract."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        self._tools[tool.name] = tool

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> tuple[str, ...]:
        return tuple(self._tools)

    def specs(self) -> tuple[ToolSpec, ...]:
        """What to offer the model (``ModelRequest.tools``)."""
        return tuple(t.spec for t in self._tools.values())

    async def execute(
        self, name: str, tool_input: Mapping[str, Any], context: ToolContext
    ) -> ToolOutcome:
        """Run tool ``name``; failures become error outcomes (see the module contract)."""
        tool = self._tools.get(name)
        if tool is None:
            return ToolOutcome(f"no tool named {name!r} is registered here", is_error=True)
        try:
            async with asyncio.timeout(tool.timeout):
                content = await tool.function(tool_input, context)
        except TimeoutError:
            return ToolOutcome(f"{name} timed out after {tool.timeout:g}s", is_error=True)
        except ToolError as e:
            return ToolOutcome(f"{name}: {e}", is_error=True)
        except Exception as e:
            return ToolOutcome(f"{name} failed: {type(e).__name__}: {e}", is_error=True)
        try:
            json.dumps(content, allow_nan=False)
        except (TypeError, ValueError) as e:
            return ToolOutcome(f"{name} returned something that is not JSON: {e}", is_error=True)
        return ToolOutcome(content)
