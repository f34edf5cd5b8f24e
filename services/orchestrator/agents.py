"""What the orchestrator gives the model for each agent: instructions and tools.

Contract:
- :class:`AgentProfile` is plain data: the system prompt, the tools the model
  may call, the output budget, what a second run on a busy session gets
  (``concurrent_runs``: :mod:`runwire.services.orchestrator.concurrency`),
  how older turns of its history are compacted (``compaction``), and
  optionally the agent's own provider and model (``None``: the
  orchestrator's), its turn limit (``None``: the settings'), and which tool
  calls wait for a person's approval.
- :class:`AgentDirectory` returns the profile of an ``agent_id`` (runs without
  one, or with an unknown one, get the default profile).
- Profiles come from code (:func:`~runwire.services.orchestrator.wiring.default_agents`)
  or from an agents file (:mod:`runwire.services.orchestrator.configured`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from runwire.context import CompactionPolicy
from runwire.providers.base import ModelProvider, ToolSpec
from runwire.services.orchestrator.concurrency import ConcurrentRuns

__all__ = ["AgentDirectory", "AgentProfile"]


@dataclass(frozen=True)
class AgentProfile:
    """How one agent calls its model."""

    system: str | None = None
    tools: tuple[ToolSpec, ...] = ()
    max_tokens: int = 4096
    concurrent_runs: ConcurrentRuns = "allow"
    """A second run on a session one of this agent's runs holds: refused, queued or allowed."""
    compaction: CompactionPolicy | None = None
    """Older turns of the history replaced by a summary (:mod:`runwire.context.compaction`)."""
    provider: ModelProvider | None = None
    """The agent's own provider; ``None``: the orchestrator's."""
    model: str | None = None
    """The model to ask for; ``None``: the provider's configured one."""
    max_turns: int | None = None
    """Model calls per run at most; ``None``: ``Settings.max_turns``."""
    approval: frozenset[str] | None = frozenset()
    """Tool names whose calls wait for a person's decision; ``None``: every tool."""

    def needs_approval(self, tool: str) -> bool:
        return self.approval is None or tool in self.approval


@dataclass(frozen=True)
class AgentDirectory:
    """Profiles by agent id, and the one every other agent gets."""

    default: AgentProfile = field(default_factory=AgentProfile)
    agents: Mapping[str, AgentProfile] = field(default_factory=dict)

    def compactions(self) -> dict[str | None, CompactionPolicy | None]:
        """Each agent's compaction policy; under None, every other agent's."""
        return {
            None: self.default.compaction,
            **{name: p.compaction for name, p in self.agents.items()},
        }

    def profile(self, agent_id: str | None) -> AgentProfile:
        if agent_id is None:
            return self.default
        return self.agents.get(agent_id, self.default)
