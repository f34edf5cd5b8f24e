"""The one place the orchestrator is wired from settings (tests pass other parts).

``orchestrator_service(settings)`` builds what is not given — the model
provider the settings name, a :class:`~runwire.log.Publisher` to publish with (many
runs' answers share a record batch, a run's events keep their order), the
default agent (offered the built-in tools) or the agents of the agents
file ``settings.agents_file`` names (``--agents FILE``,
:mod:`runwire.services.agents_file`), session history in the model input
(:class:`SessionHistory`, with each configured agent's history policy;
``history=False`` or another ``context`` turns it off), the session fence
when an agent's ``concurrent_runs`` is not ``"allow"``
(:class:`~runwire.services.orchestrator.concurrency.SessionFence`)
— starts the orchestrator and, on exit, stops it before
closing what it built. ``serve_orchestrator`` runs it until ``stop`` is set
(``runwire serve orchestrator``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping

from runwire.context import ContextPolicy
from runwire.log import EventWriter, Publisher
from runwire.providers.base import ModelProvider
from runwire.providers.factory import provider_from_settings
from runwire.providers.local import LOCAL_TOOL_SPECS
from runwire.providers.retry import RetryPolicy
from runwire.services.agents_file import load_agents_file
from runwire.services.follower import FollowerOptions
from runwire.services.orchestrator.agents import AgentDirectory, AgentProfile
from runwire.services.orchestrator.concurrency import SessionFence, SessionGate
from runwire.services.orchestrator.configured import configured_agents
from runwire.services.orchestrator.context import ContextSource
from runwire.services.orchestrator.history import ProviderSummarizer, SessionHistory
from runwire.services.orchestrator.service import ACTING_RETRY, Orchestrator, rules_of
from runwire.settings import Settings

__all__ = ["DEFAULT_SYSTEM_PROMPT", "default_agents", "orchestrator_service", "serve_orchestrator"]

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant. Use the calculator for arithmetic, the clock for "
    "the date and time, remember to store what the user asks you to keep, and "
    "recall to look it up."
)


def default_agents() -> AgentDirectory:
    """Every agent gets the built-in tools and the default instructions."""
    return AgentDirectory(AgentProfile(system=DEFAULT_SYSTEM_PROMPT, tools=LOCAL_TOOL_SPECS))


@contextlib.asynccontextmanager
async def orchestrator_service(
    settings: Settings,
    *,
    provider: ModelProvider | None = None,
    publisher: EventWriter | None = None,
    agents: AgentDirectory | None = None,
    context: ContextSource | None = None,
    history: bool = True,
    gate: SessionGate | None = None,
    retry_policy: RetryPolicy | None = None,
    acting_retry: RetryPolicy = ACTING_RETRY,
    follower_options: FollowerOptions | None = None,
    max_concurrent_calls: int | None = None,
) -> AsyncIterator[Orchestrator]:
    """A started orchestrator; what it built is closed after it stops.

    ``retry_policy`` is the model calls' retry policy (from the settings when
    None), ``acting_retry`` how a retriable failure of acting (a store read,
    a publish) is retried before the run is failed.
    """
    live_writer: EventWriter | None = None
    async with contextlib.AsyncExitStack() as stack:
        # The file first: a mistake in it stops the start before anything connects.
        policies: Mapping[str, ContextPolicy] = {}
        if agents is None and settings.agents_file is not None:
            configured = await configured_agents(
                load_agents_file(settings.agents_file),
                settings,
                stack,
                fallback=default_agents().default,
            )
            agents, policies = configured.directory, configured.policies
        if provider is None:
            provider = await stack.enter_async_context(provider_from_settings(settings))
        if publisher is None:
            own = await stack.enter_async_context(Publisher(settings))
            # Known partitions: acknowledgements are queued without waiting.
            await own.prepare_topic(settings.run_events)
            publisher = own
            if settings.live_events:
                # Live chunks on a producer of their own: many small records
                # would otherwise take turns with the answers' batches.
                live = await stack.enter_async_context(Publisher(settings))
                # Known before a backlog starts: otherwise every run's first
                # chunk waits on the producer's metadata, thousands at once.
                await live.prepare_topic(settings.live)
                live_writer = live
        agents = agents if agents is not None else default_agents()
        if context is None and history:
            context = await stack.enter_async_context(
                await session_history(settings, provider, agents, policies)
            )
        if gate is None and _fenced(agents):
            gate = await session_fence(settings, publisher, stack)
        orchestrator = Orchestrator(
            settings,
            provider=provider,
            publisher=publisher,
            agents=agents,
            context=context,
            gate=gate,
            retry_policy=retry_policy,
            acting_retry=acting_retry,
            follower_options=follower_options,
            max_concurrent_calls=max_concurrent_calls or 512,
            live_writer=live_writer,
        )
        await stack.enter_async_context(orchestrator)
        yield orchestrator


async def session_history(
    settings: Settings,
    provider: ModelProvider,
    agents: AgentDirectory | None = None,
    policies: Mapping[str, ContextPolicy] | None = None,
) -> SessionHistory:
    """History from the session's earlier runs (:class:`SessionHistory`), on readers of
    its own (run-status store, session index, a log reader), closed when it stops;
    the agents' compaction policies summarized by ``provider``."""
    from runwire.log.runs import RunReader
    from runwire.projections.runs.reader import RunStore
    from runwire.projections.sessions.reader import SessionIndex

    # A shared orchestrator serves every tenant: its readers say so (admin).
    shared = settings.tenant is None
    runs = await RunStore.connect(settings, admin=shared)
    sessions = await SessionIndex.connect(settings, admin=shared)
    run_log = RunReader(settings)
    return SessionHistory(
        settings,
        runs=runs,
        sessions=sessions,
        run_log=run_log,
        provider=rules_of(provider),
        thinking_enabled=settings.thinking_enabled,
        policies=policies,
        owned=(runs, sessions, run_log),
        compactions=agents.compactions() if agents is not None else None,
        summarizer=ProviderSummarizer(provider),
    )


def _fenced(agents: AgentDirectory) -> bool:
    profiles = [agents.default, *agents.agents.values()]
    return any(p.concurrent_runs != "allow" for p in profiles)


async def session_fence(
    settings: Settings, publisher: EventWriter, stack: contextlib.AsyncExitStack
) -> SessionFence:
    """The session fence on readers of its own, closed (after its releases) by ``stack``."""
    from runwire.projections.runs.reader import RunStore
    from runwire.projections.sessions.reader import SessionIndex
    from runwire.projections.transcripts.reader import TranscriptCache

    shared = settings.tenant is None  # serves every tenant: reads every tenant's rows
    sessions = await SessionIndex.connect(settings, admin=shared)
    stack.push_async_callback(sessions.close)
    runs = await RunStore.connect(settings, admin=shared)
    stack.push_async_callback(runs.close)
    transcripts = TranscriptCache(settings)
    stack.push_async_callback(transcripts.close)
    fence = SessionFence(publisher, sessions, runs, transcripts, run_topic=settings.run_events)
    stack.push_async_callback(fence.close)
    return fence


async def serve_orchestrator(
    settings: Settings,
    stop: asyncio.Event,
    *,
    follower_options: FollowerOptions | None = None,
) -> None:
    """Run the orchestrator until ``stop`` is set."""
    async with orchestrator_service(settings, follower_options=follower_options):
        await stop.wait()
