"""How much of its session's history an agent's run is shown.

Contract (:class:`ContextPolicy`):
- ``enabled=False`` (a stateless agent) shows nothing, whatever the limits.
- ``history_runs``, ``history_turns`` and ``token_budget`` are upper bounds
  that all apply at once; ``None`` means no bound, ``0`` shows nothing. The
  window is filled from the newest complete turn backwards and stops at the
  first turn that would break a bound, so what is dropped is always the
  oldest whole turns (see :func:`runwire.context.window.select_history`).
- ``token_budget`` bounds the history alone; the run's own transcript comes
  on top of it.
- Plain data: it is recorded as JSON in every ``context_seeded`` event.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ContextPolicy"]


class ContextPolicy(BaseModel):
    """One agent's context policy; see the module contract."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    history_runs: int | None = Field(default=None, ge=0)
    """At most this many earlier runs (runs that contribute at least one turn)."""
    history_turns: int | None = Field(default=None, ge=0)
    """At most this many turns (user -> final assistant answer), over all runs."""
    token_budget: int | None = Field(default=None, ge=0)
    """At most this many tokens of history, as the token counter measures them."""

    @classmethod
    def stateless(cls) -> ContextPolicy:
        """The policy of an agent that never sees earlier runs."""
        return cls(enabled=False)

    @classmethod
    def from_record(cls, recorded: dict[str, Any]) -> ContextPolicy:
        """The policy recorded in a ``context_seeded`` event; fields a newer
        writer added are left out rather than refused (the record is history)."""
        return cls.model_validate({k: v for k, v in recorded.items() if k in cls.model_fields})
