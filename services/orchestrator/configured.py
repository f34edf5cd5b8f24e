"""The orchestrator's agents from an agents file (:mod:`runwire.services.agents_file`).

Contract:
- :func:`configured_agents` turns a checked :class:`AgentsFile` into an
  :class:`AgentDirectory` and the agents' history policies. Providers are
  built once per distinct (provider, base URL, key) and entered into the
  caller's exit stack, so they close with the orchestrator; the model is
  asked for per request. An agent that names no provider uses the
  orchestrator's own.
- A key is read from the environment variable ``api_key_env`` names, at
  start-up: a missing variable is a :class:`ConfigurationError` naming it.
- Tools offered: built-in tools with their specs, HTTP tools with the file's
  description and input schema, agents with their ``description`` and an
  input of ``{"task": string}``.
- The file's default agent (if any) is the profile of runs of agents it does
  not name; otherwise those runs get ``fallback``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

from runwire.context import ContextPolicy
from runwire.errors import ConfigurationError
from runwire.providers.base import ModelProvider, ToolSpec
from runwire.providers.factory import provider_from_settings
from runwire.providers.local import LOCAL_TOOL_SPECS
from runwire.services.agents_file import AgentConfig, AgentsFile, agent_tool_spec
from runwire.services.orchestrator.agents import AgentDirectory, AgentProfile
from runwire.settings import Settings

__all__ = ["ConfiguredAgents", "configured_agents"]

_BUILTIN_SPECS = {spec.name: spec for spec in LOCAL_TOOL_SPECS}


@dataclass(frozen=True)
class ConfiguredAgents:
    directory: AgentDirectory
    policies: Mapping[str, ContextPolicy]
    """History policies of the agents that set one."""


async def configured_agents(
    file: AgentsFile,
    settings: Settings,
    stack: contextlib.AsyncExitStack,
    *,
    fallback: AgentProfile,
) -> ConfiguredAgents:
    """The directory of ``file``'s agents (providers entered into ``stack``)."""
    providers: dict[tuple[str, str | None, str | None], ModelProvider] = {}
    profiles: dict[str, AgentProfile] = {}
    policies: dict[str, ContextPolicy] = {}
    for agent_id, agent in file.agents.items():
        provider = await _provider(agent_id, agent, settings, stack, providers)
        tools: list[ToolSpec] = []
        for name in agent.tools:
            if name in _BUILTIN_SPECS:
                tools.append(_BUILTIN_SPECS[name])
            else:
                http = file.tools[name]
                tools.append(
                    ToolSpec(
                        name=name, description=http.description, input_schema=http.input_schema
                    )
                )
        tools.extend(agent_tool_spec(other, file.agents[other]) for other in agent.agents)
        profiles[agent_id] = AgentProfile(
            system=agent.system,
            tools=tuple(tools),
            max_tokens=agent.max_tokens,
            provider=provider,
            model=agent.model,
            max_turns=agent.max_turns,
            approval=None if agent.approval == "all" else frozenset(agent.approval),
        )
        policy = agent.context_policy()
        if policy is not None:
            policies[agent_id] = policy
    default_id = file.default_agent()
    default = profiles[default_id] if default_id is not None else fallback
    return ConfiguredAgents(AgentDirectory(default, profiles), policies)


async def _provider(
    agent_id: str,
    agent: AgentConfig,
    settings: Settings,
    stack: contextlib.AsyncExitStack,
    built: dict[tuple[str, str | None, str | None], ModelProvider],
) -> ModelProvider | None:
    if agent.provider is None and agent.base_url is None and agent.api_key_env is None:
        return None  # the orchestrator's own provider (the model may still differ)
    name = agent.provider or settings.model_provider
    key = settings.provider_api_key
    if agent.api_key_env is not None:
        key = os.environ.get(agent.api_key_env)
        if not key:
            raise ConfigurationError(
                f"agents.{agent_id}.api_key_env: the environment variable "
                f"{agent.api_key_env} is not set"
            )
    base_url = agent.base_url if agent.base_url is not None else settings.provider_base_url
    wanted = (name, base_url, key)
    if wanted not in built:
        model = agent.model or settings.model_name
        own = settings.model_copy(
            update={
                "model_provider": name,
                "model_name": model,
                "provider_base_url": base_url,
                "provider_api_key": key,
            }
        )
        built[wanted] = await stack.enter_async_context(provider_from_settings(own))
    return built[wanted]
