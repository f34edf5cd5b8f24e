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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from runwire.contract.events import TERMINAL_EVENTS, Event, RunStatus, RunStatusChanged

__all__ = ["ENDED", "RunLifecycle"]

ENDED = frozenset(TERMINAL_EVENTS.values())
"""The statuses a run never leaves."""


@dataclass(slots=True)
class RunLifecycle:
    """A run's lifecycle status and the pause in force, if any (see the module doc)."""

    status: RunStatus = RunStatus.PENDING
    paused_by: str | None = None
    events: int = 0

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def apply(self, event: Event) -> None:
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
