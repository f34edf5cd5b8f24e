"""Reads scoped to the caller: another user's (or tenant's) session or run is "not found".

The caller is the (tenant, user) of its API key. A tenant key's backends
already read as its tenant (row-level security, :mod:`.backends`); the
checks here compare the pair as well, so a route is scoped twice.

The 404 for another user's id is built by the same call as the one for an
unknown id (:meth:`ApiError.not_found`), so the two cannot be told apart.
A session or run with no user at all (written by the SDK without a
``user_id``) belongs to nobody and is visible to no API key.
"""

from __future__ import annotations

from runwire.errors import NotFoundError
from runwire.projections.runs.fold import Run
from runwire.projections.sessions.fold import Session
from runwire.projections.sessions.owner import ForeignSessionError, Owner, claim
from runwire.services.api.auth import Principal
from runwire.services.api.backends import Backends
from runwire.services.api.errors import ApiError

__all__ = ["claimed_session", "owned_run", "owned_session", "owner_of", "owns"]


def owner_of(principal: Principal) -> Owner:
    """The caller as an owner of sessions and runs."""
    return Owner(principal.user_id, principal.tenant)


def owns(principal: Principal, run: Run) -> bool:
    """Whether ``run`` is the caller's: the same user in the same tenant."""
    return (run.user_id, run.tenant) == (principal.user_id, principal.tenant)


async def owned_session(backends: Backends, principal: Principal, session_id: str) -> Session:
    """The caller's session ``session_id``; 404 when unknown, deleted or another user's."""
    try:
        session = await backends.sessions.get(session_id)
    except NotFoundError:
        raise ApiError.not_found("session", session_id) from None
    if (session.user_id, session.tenant) != (principal.user_id, principal.tenant):
        raise ApiError.not_found("session", session_id)
    return session


async def owned_run(backends: Backends, principal: Principal, run_id: str) -> Run:
    """The caller's run ``run_id``; 404 when unknown or another user's."""
    try:
        run = await backends.runs.get(run_id)
    except NotFoundError:
        raise ApiError.not_found("run", run_id) from None
    if not owns(principal, run):
        raise ApiError.not_found("run", run_id)
    return run


async def claimed_session(backends: Backends, principal: Principal, session_id: str) -> None:
    """Pass when a run of the caller may go into ``session_id``: the caller's session, or
    a new id, which is claimed for the caller first (first ``session_created`` in the
    session's partition wins: :func:`~runwire.projections.sessions.owner.claim`).

    404 for another user's or a deleted session, also when another caller claimed
    the same new id a moment earlier; 503 when the session index cannot confirm the
    claim in time (nothing is started unconfirmed).
    """
    who = owner_of(principal)
    try:
        await claim(
            backends.sessions,
            session_id,
            who,
            declare=lambda: backends.control.declare_session(
                session_id, principal.user_id, tenant=principal.tenant
            ),
            timeout=backends.options.visibility_timeout,
        )
    except ForeignSessionError:
        raise ApiError.not_found("session", session_id) from None
