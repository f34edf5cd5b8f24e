"""Where a run stands, folded from its events: the one fold of status and pause.

Contract (:class:`RunLifecycle`):
- ``apply(event)`` in log order; ``status`` is the last lifecycle status
  (``run_status_changed`` or a terminal event), and nothing moves it after a
  terminal one.
- A pause (``run_status_changed(paused)``) does not replace the status: it
  stands beside it (``paused_by`` = the pause's event id) until a
  ``run_status_changed`` whose ``causation_id`` names that pause lifts it,
  and a terminal event ends it too. So a resumed run gets back the status
  it had, and a resume is tied to the pause it lifts.
- ``events``: how many events were applied (0: the run is not in the log).
- A run is its tenant's (:func:`foreign_to_run`): an event another tenant
  wrote on its run id is not the run's, and ``apply`` ignores it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from runwire.contract.events import TERMINAL_EVENTS, Event, RunStatus, RunStatusChanged

__all__ = ["ENDED", "RunLifecycle", "foreign_to_run"]

ENDED = frozenset(TERMINAL_EVENTS.values())
"""The statuses a run never leaves."""


def foreign_to_run(event: Event, run_tenant: str | None) -> bool:
    """True when another tenant than the run's wrote ``event`` on the run's id.

    - A run's tenant is the first tenant its events name (normally its
      ``run_started``'s), stamped by each writer from its credentials.
    - An event without a tenant comes from a process that serves every
      tenant (an operator's, or services run without ``RUNWIRE_TENANT``,
      which copy the run's tenant when they have it): it is the run's. So is
      any event of a run that has named no tenant yet.
    - Every fold of a run (the run-status store, the orchestrator, this
      lifecycle) keeps such an event out of the run: a tenant cannot cancel,
      pause or prompt another tenant's run by naming its id.
    """
    return event.tenant is not None and run_tenant is not None and event.tenant != run_tenant


@dataclass(slots=True)
class RunLifecycle:
    """A run's lifecycle status and the pause in force, if any (see the module doc)."""

    status: RunStatus = RunStatus.PENDING
    paused_by: str | None = None
    events: int = 0
    tenant: str | None = None
    """The run's tenant: the first one its events name."""

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def apply(self, event: Event) -> None:
        if foreign_to_run(event, self.tenant):
            return
        self.tenant = self.tenant or event.tenant
        self.events += 1
        if self.status in ENDED:
            return
        if event.type in TERMINAL_EVENTS:
            self.status, self.paused_by = TERMINAL_EVENTS[event.type], None
        elif isinstance(event.payload, RunStatusChanged):
            if event.payload.status is RunStatus.PAUSED:
                self.paused_by = event.event_id
                return
            if event.causation_id is not None and event.causation_id == self.paused_by:
                self.paused_by = None
            self.status = event.payload.status

    @classmethod
    def of(cls, events: Iterable[Event]) -> RunLifecycle:
        out = cls()
        for event in events:
            out.apply(event)
        return out
