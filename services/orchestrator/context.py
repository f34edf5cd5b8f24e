"""What the model is given for an answer: the seam for session history.

Contract (:class:`ContextSource`):
- ``prepare(state, action)`` returns the messages the model is called with
  for ``action`` (the run's transcript, with whatever history comes before
  it) and, when this call is the one that decides the history (a run's
  first model call), the ``context_seeded`` payload that records it. The
  orchestrator publishes that event (caused by the delta, deterministic id)
  *before* calling the model, so a replay or a restart rebuilds the same
  input from the log instead of deciding again.
- ``ModelInput.system`` carries the session's system instructions (its
  ``system`` metadata) when a source knows them; the orchestrator gives the
  model the agent's system prompt followed by them.
- A run whose log already holds a ``context_seeded`` event
  (``state.seeded``) must get the history it records, at every call.
- Failures are :class:`runwire.errors.RunwireError`; the run fails with
  their message.

:class:`NoHistory` (the default) gives the run's transcript alone: every run
starts from its own messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from runwire.contract.events import ContextCompacted, ContextSeeded
from runwire.services.orchestrator.run_state import Answer, RunState
from runwire.transcript.messages import Message

__all__ = ["ContextSource", "ModelInput", "NoHistory"]


@dataclass(frozen=True)
class ModelInput:
    messages: tuple[Message, ...]
    seed: ContextSeeded | None = None
    """To record in the run's log before the call (first call of a run only)."""
    compacted: ContextCompacted | None = None
    """To record with (before) ``seed``: the summary that replaced older turns."""
    system: str | None = None
    """The session's own system instructions, when it has some (given after the agent's)."""


class ContextSource(Protocol):
    async def prepare(self, state: RunState, action: Answer) -> ModelInput:
        """The model input for ``action``; see the module contract."""
        ...


class NoHistory:
    """The run's own transcript, nothing before it."""

    async def prepare(self, state: RunState, action: Answer) -> ModelInput:
        return ModelInput(action.messages)
