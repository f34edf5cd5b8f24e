"""``/v1/sessions``: the caller's sessions and their runs, newest first, keyset-paged;
``DELETE`` erases one for good (sealing on, docs/sealing.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from runwire.contract import ids
from runwire.projections.runtime.waiting import NotCaughtUpError
from runwire.services.api.access import owned_session, owner_of, owns
from runwire.services.api.auth import Caller, Writer
from runwire.services.api.backends import Using
from runwire.services.api.errors import ApiError, input_as_422
from runwire.services.api.exact_json import ExactJSONResponse, ExactJsonRoute
from runwire.services.api.models import (
    ErasureOut,
    ForkRequest,
    ForkResponse,
    IdPath,
    LabelFilter,
    RunOut,
    RunPage,
    SessionHistoryOut,
    SessionOut,
    SessionPage,
    SessionStatus,
)
from runwire.services.api.page_tokens import PageParam
from runwire.sessions.forks import history_at, lineage, plan
from runwire.sessions.inmem import info_of

__all__ = ["router"]

router = APIRouter(prefix="/v1/sessions", tags=["sessions"], route_class=ExactJsonRoute)

Limit = Annotated[int, Query(ge=1, le=200, description="items per page")]
SessionId = IdPath
RunStatusName = Literal[
    "pending", "running", "awaiting_tools", "paused", "completed", "failed", "canceled"
]


def _labels(raw: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in raw:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise ApiError(
                422,
                "invalid_request",
                f"query.label: {item!r} is not KEY:VALUE",
                problems=[{"where": "query.label", "what": f"{item!r} is not KEY:VALUE"}],
            )
        labels[key] = value
    return labels


@router.get("", response_model=SessionPage, summary="The caller's sessions, newest first")
async def list_sessions(
    principal: Caller,
    using: Using,
    page: PageParam,
    status: Annotated[SessionStatus | None, Query()] = None,
    label: LabelFilter = [],  # noqa: B006 - FastAPI copies query defaults
    limit: Limit = 50,
) -> Response:
    """Sessions by last activity, most recent first; ``next_page`` pages on."""
    found = await using.sessions.list(
        user_id=principal.user_id,
        status=status,
        labels=_labels(label),
        page=page.after,
        limit=limit,
    )
    # A tenant key reads as its tenant already; a key without one must not list
    # the sessions of tenants its user also has (a page may then be short).
    # Written by jsonvalues (here and below): metadata may hold numbers no float holds.
    return ExactJSONResponse(
        SessionPage(
            items=[
                SessionOut.model_validate(s) for s in found.items if s.tenant == principal.tenant
            ],
            next_page=page.seal(found.next_page),
        )
    )


@router.get("/{session_id}", response_model=SessionOut, summary="One session of the caller")
async def get_session(principal: Caller, using: Using, session_id: SessionId) -> Response:
    return ExactJSONResponse(
        SessionOut.model_validate(await owned_session(using, principal, session_id))
    )


@router.get("/{session_id}/runs", response_model=RunPage, summary="The runs of a session")
async def list_session_runs(
    principal: Caller,
    using: Using,
    session_id: SessionId,
    page: PageParam,
    status: Annotated[RunStatusName | None, Query()] = None,
    order: Annotated[Literal["newest", "oldest"], Query()] = "newest",
    limit: Limit = 50,
) -> RunPage:
    """The caller's runs in the session, by start time (``order=oldest``: conversation order).

    Runs another user wrote into the session (the SDK does not stop that) are
    left out, so a page may hold fewer than ``limit`` items; ``next_page``
    still pages on correctly.
    """
    await owned_session(using, principal, session_id)
    found = await using.runs.list(
        session_id=session_id,
        status=status,
        page=page.after,
        limit=limit,
        oldest_first=order == "oldest",
    )
    mine = [RunOut.model_validate(r) for r in found.items if owns(principal, r)]
    return RunPage(items=mine, next_page=page.seal(found.next_page))


@router.delete(
    "/{session_id}", response_model=ErasureOut, summary="Erase a session of the caller for good"
)
async def erase_session(principal: Writer, using: Using, session_id: SessionId) -> ErasureOut:
    """Delete the session from every projection, destroy its data keys (its events on the
    log can no longer be read by anyone) and publish the erasure receipt.

    409 ``erasure_unavailable`` when the deployment does not seal (nothing is
    deleted then); 404 for an unknown, deleted or another caller's session. A
    failure after the deletion (the key store down) is 503: erase again with
    ``runwire sessions erase``, which accepts a deleted session.
    """
    await owned_session(using, principal, session_id)
    if using.eraser is None:
        raise ApiError(
            409,
            "erasure_unavailable",
            "erasing a session needs sealing on in the API's deployment "
            "(RUNWIRE_SEALING=true, docs/sealing.md)",
        )
    receipt = await using.eraser.erase(session_id)
    return ErasureOut(
        session_id=receipt.session_id,
        receipt_event_id=receipt.event_id,
        erased_key_ids=list(receipt.key_ids),
    )


@router.get(
    "/{session_id}/history",
    response_model=SessionHistoryOut,
    summary="The session's history as of the end of a turn",
)
async def get_session_history(
    principal: Caller,
    using: Using,
    session_id: SessionId,
    turn: Annotated[int, Query(ge=1, description="the turn (1 = the first since a clear)")],
) -> Response:
    """What the session's history was once turn ``turn`` was answered, read from the log
    (turns counted over its runs since its last clear)."""
    info = info_of(await owned_session(using, principal, session_id))
    # Only the owner's runs: one someone else wrote into the session is not its history.
    runs = await using.transcripts.visible_runs(session_id, owner_of(principal))
    with input_as_422("query"):
        past = await history_at(using.transcripts.history(), info, runs, turn)
    return ExactJSONResponse(
        SessionHistoryOut(
            session_id=session_id, turn=turn, run_ids=past.run_ids, messages=past.messages
        )
    )


@router.post(
    "/{session_id}/fork",
    status_code=201,
    response_model=ForkResponse,
    summary="Fork the session at a turn or at a run's log position",
)
async def fork_session(
    principal: Writer, using: Using, session_id: SessionId, body: ForkRequest
) -> ForkResponse:
    """A new session of the caller that shares this one's history up to the end of
    ``turn``, or up to its run ``at_run`` as of log offset ``at_offset`` (read from
    the log, not copied), then goes on alone. A point the session does not have (a
    turn, a run not in its history, an offset outside the run or inside an open
    tool call) is a 422 naming the field; nothing is written then."""
    row = await owned_session(using, principal, session_id)
    info = info_of(row)
    # Only the owner's runs: one someone else wrote into the session is not its history.
    runs = await using.transcripts.visible_runs(session_id, owner_of(principal))
    with input_as_422("body"):
        forked = await plan(
            using.transcripts.history(),
            info,
            lineage(info, runs),
            turn=body.turn,
            at_run=body.at_run,
            at_offset=body.at_offset,
        )
    new_id = ids.new_event_id()
    position = await using.control.fork_session(
        new_id, forked, principal.user_id, dict(row.metadata), tenant=principal.tenant
    )
    try:
        await using.sessions.wait_for(position, timeout=using.options.visibility_timeout)
        visible = True
    except NotCaughtUpError:
        visible = False
    at_position = body.at_run is not None
    return ForkResponse(
        session_id=new_id,
        parent_session_id=session_id,
        turn=forked.turn,
        at_run=forked.run_ids[-1] if at_position else None,
        at_offset=forked.through_offset if at_position else None,
        visible=visible,
    )
