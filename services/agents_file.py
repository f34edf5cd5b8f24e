"""Agents from configuration: the ``--agents FILE`` TOML, read and checked whole.

Contract:
- :func:`load_agents_file` reads a TOML file into an :class:`AgentsFile` or
  raises :class:`~runwire.errors.ConfigurationError` naming the file, the
  place in it (``agents.writer.max_tokens``) and what is wrong. Nothing is
  half-loaded: a file with one mistake is refused whole.
- ``[agents.ID]`` describes one agent: ``provider`` / ``model`` /
  ``base_url`` / ``api_key_env`` (the name of the environment variable
  holding the key, never the key), ``system``, ``tools`` (built-in tools
  and ``[tools.NAME]`` HTTP tools), ``agents`` (other agents it may call as
  tools), ``approval`` (tool names whose calls wait for a person, or
  ``"all"``), ``history`` (a :class:`~runwire.context.ContextPolicy`, or
  ``false``), ``max_tokens``, ``max_turns``, ``default`` (runs of agents the
  file does not name get this one; at most one).
- ``[tools.NAME]`` describes an HTTP tool: ``url``, ``method`` (POST or
  PUT: the input is sent as the JSON body), ``description``,
  ``input_schema`` (the JSON schema the model is told; a JSON object of
  type ``object``), ``timeout``, ``headers`` (``${VAR}`` is replaced by the
  environment variable VAR when the tool is called, so secrets stay out of
  the file).
- Checked up front: every name an agent uses exists; tool and agent names
  are what providers accept (``[A-Za-z0-9_-]{1,64}``) and never clash; an
  approval names only tools the agent has; and the agents-as-tools graph has
  no cycle (``a -> b -> a`` is refused, naming the cycle).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from runwire.context import ContextPolicy
from runwire.errors import ConfigurationError
from runwire.providers.base import ToolSpec
from runwire.providers.local import LOCAL_MODEL_TOOLS

__all__ = [
    "AGENT_TOOL_SCHEMA",
    "AgentConfig",
    "AgentsFile",
    "HttpToolConfig",
    "agent_tool_name",
    "agent_tool_spec",
    "load_agents_file",
    "parse_agents",
]

NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What every provider accepts as a tool name (OpenAI's rule is the narrowest)."""

BUILTIN_TOOLS: tuple[str, ...] = LOCAL_MODEL_TOOLS


def agent_tool_name(agent_id: str) -> str:
    """The tool name under which agent ``agent_id`` is offered to other agents."""
    return agent_id


AGENT_TOOL_SCHEMA = {
    "type": "object",
    "properties": {"task": {"type": "string", "description": "What the agent is asked to do."}},
    "required": ["task"],
}


def agent_tool_spec(agent_id: str, agent: AgentConfig) -> ToolSpec:
    """How agent ``agent_id`` is offered to the agents that may call it."""
    description = agent.description or f"Ask the {agent_id} agent to do a task; it answers in text."
    return ToolSpec(
        name=agent_tool_name(agent_id), description=description, input_schema=AGENT_TOOL_SCHEMA
    )


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HttpToolConfig(_Strict):
    """One HTTP tool: the input is sent as JSON, the JSON answer is the result."""

    url: str
    method: Literal["POST", "PUT"] = "POST"
    description: str = ""
    input_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    timeout: float = Field(default=30.0, gt=0, le=3600)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value

    @field_validator("input_schema")
    @classmethod
    def _object_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type") != "object":
            raise ValueError('a tool\'s input schema must have "type": "object"')
        properties = value.get("properties", {})
        if not isinstance(properties, dict):
            raise ValueError('"properties" must be a table of JSON schemas')
        required = value.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise ValueError('"required" must be a list of property names')
        return value


class AgentConfig(_Strict):
    """One agent of the file; see the module contract."""

    provider: Literal["local", "openai", "anthropic", "bedrock"] | None = None
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    description: str = ""
    """What other agents are told about this one when it is offered to them as a tool."""
    system: str | None = None
    tools: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    approval: tuple[str, ...] | Literal["all"] = ()
    history: ContextPolicy | bool | None = None
    max_tokens: int = Field(default=4096, gt=0)
    max_turns: int | None = Field(default=None, gt=0)
    default: bool = False

    def context_policy(self) -> ContextPolicy | None:
        """The history policy the file sets (None: the orchestrator's default)."""
        if self.history is None or self.history is True:
            return None
        if self.history is False:
            return ContextPolicy.stateless()
        return self.history

    def tool_names(self) -> tuple[str, ...]:
        """Every tool the model of this agent is offered, agents included."""
        return (*self.tools, *(agent_tool_name(a) for a in self.agents))

    def needs_approval(self, tool: str) -> bool:
        return self.approval == "all" or tool in self.approval


class AgentsFile(_Strict):
    """A whole agents file, checked (see :func:`parse_agents`)."""

    agents: dict[str, AgentConfig] = Field(default_factory=dict)
    tools: dict[str, HttpToolConfig] = Field(default_factory=dict)

    def default_agent(self) -> str | None:
        return next((name for name, a in self.agents.items() if a.default), None)

    def agent_tools(self) -> list[ToolSpec]:
        """Every agent some agent may call, as the tool it is offered as."""
        called = dict.fromkeys(other for a in self.agents.values() for other in a.agents)
        return [agent_tool_spec(name, self.agents[name]) for name in called]


def load_agents_file(path: Path | str) -> AgentsFile:
    """The agents file at ``path``, checked; :class:`ConfigurationError` otherwise."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigurationError(f"agents file {path}: cannot be read: {e}") from e
    except UnicodeDecodeError as e:
        raise ConfigurationError(f"agents file {path}: not UTF-8 text: {e}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigurationError(f"agents file {path}: not valid TOML: {e}") from e
    return parse_agents(raw, source=str(path))


def parse_agents(raw: Mapping[str, Any], *, source: str = "agents file") -> AgentsFile:
    """``raw`` (a parsed TOML document) as an :class:`AgentsFile`, every rule checked."""
    try:
        parsed = AgentsFile.model_validate(raw)
    except ValidationError as e:
        said = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in e.errors()
        )
        raise ConfigurationError(f"{source}: {said}") from None
    problems = list(_problems(parsed))
    if problems:
        raise ConfigurationError(f"{source}: " + "; ".join(problems))
    return parsed


def _problems(parsed: AgentsFile) -> Iterable[str]:
    agents, tools = parsed.agents, parsed.tools
    if not agents:
        yield "agents: the file defines no agent ([agents.NAME])"
    for name in [*agents, *tools]:
        if not NAME.match(name):
            yield f"{name!r}: a name must be 1-64 letters, digits, '_' or '-'"
    for name in tools:
        if name in BUILTIN_TOOLS:
            yield f"tools.{name}: clashes with the built-in tool of that name"
        if name in agents:
            yield f"tools.{name}: clashes with the agent of that name (offered as a tool)"
    defaults = [name for name, a in agents.items() if a.default]
    if len(defaults) > 1:
        yield f"agents: only one agent can be the default, not {', '.join(defaults)}"
    known_tools = {*BUILTIN_TOOLS, *tools}
    for name, agent in agents.items():
        where = f"agents.{name}"
        for i, tool in enumerate(agent.tools):
            if tool not in known_tools:
                yield (
                    f"{where}.tools[{i}]: no tool named {tool!r} (built-in: "
                    f"{', '.join(BUILTIN_TOOLS)}; HTTP: {', '.join(tools) or 'none'})"
                )
        for i, other in enumerate(agent.agents):
            if other not in agents:
                yield f"{where}.agents[{i}]: no agent named {other!r}"
        offered = agent.tool_names()
        for dup in sorted({t for t in offered if offered.count(t) > 1}):
            yield f"{where}: the tool {dup!r} is offered twice"
        if agent.approval != "all":
            for i, tool in enumerate(agent.approval):
                if tool not in offered:
                    yield f"{where}.approval[{i}]: {tool!r} is not one of the agent's tools"
        key_env = agent.api_key_env
        if key_env is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key_env):
            yield f"{where}.api_key_env: {key_env!r} is not an environment variable name"
        if agent.provider not in (None, "local") and not agent.model:
            yield f"{where}.model: required with provider {agent.provider!r}"
    cycle = _cycle({name: a.agents for name, a in agents.items()})
    if cycle:
        yield "agents call each other in a cycle: " + " -> ".join(cycle)


def _cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle of ``graph`` (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state and (found := visit(node)) is not None:
            return found
    return None
