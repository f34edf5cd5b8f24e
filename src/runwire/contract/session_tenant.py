"""Whose a session is: the one rule every fold of a session's events keeps.

- A session is its tenant's (:func:`foreign_to_session`), as a run is
  (:func:`runwire.contract.run_lifecycle.foreign_to_run`): an event another
  tenant wrote on its session id is not the session's.
"""

from __future__ import annotations

from runwire.contract.events import Event

__all__ = ["foreign_tenant", "foreign_to_session"]


def foreign_to_session(event: Event, session_tenant: str | None) -> bool:
    """True when another tenant than the session's wrote ``event`` on the session's id.

    - A session's tenant is the first tenant its session events name: its
      declaration's (``session_created``, normally its first event), or,
      before one, the first tenant a session event of it names. Each writer
      stamps the tenant from its credentials.
    - An event without a tenant comes from a process that serves every
      tenant (an operator's, or services run without ``RUNWIRE_TENANT``): it
      is the session's. So is any event of a session that has named no
      tenant yet.
    - Every fold of a session's events keeps such an event out of the
      session: a tenant cannot set another tenant's session's metadata (its
      ``system`` instructions), clear, end or delete it by naming its id. The
      session index dead-letters it (``tenant_mismatch``); the projections
      that read the session-events topic for one kind of event only (the
      run-status store's and the memory store's deletions) pass over it.
    - A read model that keeps a session's data per run or entry, each with
      its own tenant, asks this of each (the run's tenant standing for the
      session's): another tenant's deletion removes none of them.
    """
    return foreign_tenant(event.tenant, session_tenant)


def foreign_tenant(writer: str | None, session_tenant: str | None) -> bool:
    """:func:`foreign_to_session` of an event written by ``writer`` (its tenant), for a
    fold that keeps the writer's tenant and not the event (a deletion's tombstone)."""
    return writer is not None and session_tenant is not None and writer != session_tenant
