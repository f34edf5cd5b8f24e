"""The tenant of what a writer writes: its own, never the event's.

Contract:
- :func:`writer_tenant` is the tenant a writer writes as (``settings.tenant``,
  the process's credential), checked as an id; ``ConfigurationError`` names
  ``RUNWIRE_TENANT`` when it cannot be one. ``None``: the writer writes for
  any tenant (the shared services, which pass on the tenant of the run they
  serve).
- :func:`stamped` gives an event the writer's tenant: unchanged when it has
  it already, given it when it has none, refused with ``ContractError``
  (naming both tenants) when it names another one.
"""

from __future__ import annotations

from runwire.contract import limits
from runwire.contract.events import Event
from runwire.errors import ConfigurationError, ContractError
from runwire.settings import Settings


def writer_tenant(settings: Settings) -> str | None:
    """The tenant every event of a writer made with ``settings`` carries, if one."""
    tenant = settings.tenant
    if tenant is not None:
        problem = limits.id_problem(tenant)
        if problem is not None:
            raise ConfigurationError(f"tenant (RUNWIRE_TENANT) {tenant!r}: {problem}")
    return tenant


def stamped(event: Event, tenant: str | None) -> Event:
    """``event`` as a writer of ``tenant`` writes it (see the module contract)."""
    if tenant is None or event.tenant == tenant:
        return event
    if event.tenant is not None:
        raise ContractError(
            f"{event.type.value} {event.event_id} names tenant {event.tenant!r}, but this "
            f"writer writes as tenant {tenant!r} (RUNWIRE_TENANT): a tenant comes from "
            "the writer's credentials, never from the event"
        )
    # The tenant was checked as an id by writer_tenant.
    return event.model_copy(update={"tenant": tenant})
