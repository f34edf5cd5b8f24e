"""The one place the tool runner is wired from settings (tests pass other parts).

``tool_runner_service(settings)`` builds what is not given — a publisher, the
log-backed memory (:class:`LogMemory`), the built-in tools and the HTTP
tools and the agents offered as tools (child runs,
:mod:`runwire.services.tools.agent_tools`) of the agents file
``settings.agents_file`` names (``--agents FILE``,
:mod:`runwire.services.tools.http_tools`) — starts the runner, and on exit stops it before closing what it built.
``serve_tools`` runs it until ``stop`` is set (``runwire serve tools``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx

from runwire.contract.codec import codec_for
from runwire.log import EventWriter, Publisher
from runwire.log.watcher import RunWatcher
from runwire.services.agents_file import load_agents_file
from runwire.services.follower import FollowerOptions
from runwire.services.tools.agent_tools import ChildRuns
from runwire.services.tools.builtin import builtin_registry
from runwire.services.tools.http_tools import http_tools
from runwire.services.tools.memory import LogMemory
from runwire.services.tools.registry import ToolRegistry
from runwire.services.tools.runner import ToolRunner
from runwire.settings import Settings

__all__ = ["serve_tools", "tool_runner_service"]


@contextlib.asynccontextmanager
async def tool_runner_service(
    settings: Settings,
    *,
    registry: ToolRegistry | None = None,
    publisher: EventWriter | None = None,
    follower_options: FollowerOptions | None = None,
    tool_latency: float = 0.0,
) -> AsyncIterator[ToolRunner]:
    """A started tool runner; what it built is closed after it stops.

    ``tool_latency`` slows the built-in tools down (demos and crash tests).
    """
    async with contextlib.AsyncExitStack() as stack:
        children: ChildRuns | None = None
        if publisher is None:
            own: EventWriter = await stack.enter_async_context(Publisher(settings))
            publisher = own
        if registry is None:
            memory = await stack.enter_async_context(LogMemory(settings, publisher))
            registry = builtin_registry(memory, latency=tool_latency)
            if settings.agents_file is not None:
                agents = load_agents_file(settings.agents_file)
                client = await stack.enter_async_context(httpx.AsyncClient())
                for tool in http_tools(agents, client):
                    registry.register(tool)
                if agents.agent_tools():
                    # A call's follower joins a new partition while others are
                    # followed: a short long-poll (not 500 ms) per nested level.
                    watcher = RunWatcher(
                        settings, codec_for(settings), purpose="children", fetch_max_wait_ms=50
                    )
                    await stack.enter_async_context(watcher)
                    children = ChildRuns(publisher, watcher)
                    for tool in children.tools(agents.agent_tools()):
                        registry.register(tool)
        runner = ToolRunner(
            settings,
            registry=registry,
            publisher=publisher,
            follower_options=follower_options,
            on_run_ended=children.parent_ended if children is not None else None,
        )
        await stack.enter_async_context(runner)
        yield runner


async def serve_tools(
    settings: Settings,
    stop: asyncio.Event,
    *,
    follower_options: FollowerOptions | None = None,
    tool_latency: float = 0.0,
) -> None:
    """Run the tool runner until ``stop`` is set."""
    async with tool_runner_service(
        settings, follower_options=follower_options, tool_latency=tool_latency
    ):
        await stop.wait()
