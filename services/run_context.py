"""The envelope a service repeats on every event it publishes for a run.

Contract:
- :meth:`RunContext.of` takes the ids (session, agent, turn, user, tenant)
  and envelope labels of an event of the run (its ``run_started`` for the
  orchestrator, the tool_use for the tool runner); the agent falls back to
  ``run_started``'s payload.
- :meth:`RunContext.event` builds an event of the run caused by
  ``causation_id`` with the deterministic id of (run, cause, ``index``): the
  same call always makes the same event id.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runwire.contract.events import Event, EventPayload, RunStarted

__all__ = ["RunContext"]


@dataclass(frozen=True)
class RunContext:
    """The envelope fields every event the services publish for a run repeats."""

    run_id: str
    session_id: str | None = None
    agent_id: str | None = None
    turn_id: str | None = None
    user_id: str | None = None
    tenant: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, event: Event) -> RunContext:
        if event.run_id is None:
            raise ValueError(f"event {event.event_id} ({event.type.value}) belongs to no run")
        agent_id = event.agent_id
        if isinstance(event.payload, RunStarted):
            agent_id = agent_id or event.payload.agent_id
        return cls(
            run_id=event.run_id,
            session_id=event.session_id,
            agent_id=agent_id,
            turn_id=event.turn_id,
            user_id=event.user_id,
            tenant=event.tenant,
            labels=dict(event.labels),
        )

    def event(
        self, payload: EventPayload, *, producer: str, causation_id: str, index: int
    ) -> Event:
        """An event of this run caused by ``causation_id``, with a deterministic id."""
        return Event.create(
            payload,
            run_id=self.run_id,
            session_id=self.session_id,
            agent_id=self.agent_id,
            turn_id=self.turn_id,
            user_id=self.user_id,
            tenant=self.tenant,
            labels=self.labels,
            producer=producer,
            causation_id=causation_id,
            index=index,
        )
