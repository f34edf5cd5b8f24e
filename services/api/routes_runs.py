"""``/v1/runs``: start, read, cancel and resume the caller's runs, decide held tool calls."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Response

from runwire.contract import ids
from runwire.errors import listed
from runwire.log import Position
from runwire.projections.runs.fold import Run
from runwire.projections.runtime.waiting import NotCaughtUpError
from runwire.services.api.access import claimed_session, owned_run, owns
from runwire.services.api.auth import Caller, Writer
from runwire.services.api.backends import Backends, Using
from runwire.services.api.errors import ApiError, input_as_422
from runwire.services.api.exact_json import ExactJSONResponse, ExactJsonRoute
from runwire.services.api.models import (
    CancelRequest,
    Control,
    DecisionRequest,
    IdPath,
    PositionOut,
    RunOut,
    RunTree,
    StartRunRequest,
    StartRunResponse,
    ToolResultsRequest,
    TranscriptOut,
    TreeNode,
)
from runwire.transcript.messages import ToolResultPart

__all__ = ["router"]

router = APIRouter(prefix="/v1/runs", tags=["runs"], route_class=ExactJsonRoute)

RunId = IdPath


def _position(p: Position) -> PositionOut:
    return PositionOut(topic=p.topic, partition=p.partition, offset=p.offset)


def _refuse_ended(run: Run, action: str) -> None:
    if run.ended:
        raise ApiError(
            409, "conflict", f"run {run.run_id!r} has ended ({run.status}); cannot {action} it"
        )


async def _visible(using: Backends, position: Position) -> bool:
    """Wait (bounded) until the run-status store and session index have applied ``position``."""
    timeout = using.options.visibility_timeout
    try:
        await asyncio.gather(
            using.runs.wait_for(position, timeout=timeout),
            using.sessions.wait_for(position, timeout=timeout),
        )
    except NotCaughtUpError:
        return False
    return True


@router.post(
    "", status_code=202, response_model=StartRunResponse, summary="Start a run of the caller"
)
async def start_run(principal: Writer, using: Using, body: StartRunRequest) -> StartRunResponse:
    """Publish the run (``run_started`` + the prompt) for the caller's user.

    ``session_id``: a session of the caller, or a new id (claimed for the caller
    before the run is written: 404 when another user holds it or claimed it
    first); omitted, a new session. Answers once the log holds
    the run; ``visible`` says whether the projections already show it (they
    are waited for up to the API's visibility timeout).
    """
    session_id = body.session_id or ids.new_event_id()
    await claimed_session(using, principal, session_id)
    started = await using.control.start_run(
        agent_id=body.agent_id,
        prompt=body.prompt,
        session_id=session_id,
        user_id=principal.user_id,
        labels=body.labels,
        turn_id=body.turn_id,
        tenant=principal.tenant,
    )
    return StartRunResponse(
        run_id=started.run_id,
        session_id=session_id,
        position=_position(started.position),
        visible=await _visible(using, started.position),
    )


@router.get("/{run_id}", response_model=RunOut, summary="One run of the caller")
async def get_run(principal: Caller, using: Using, run_id: RunId) -> RunOut:
    return RunOut.model_validate(await owned_run(using, principal, run_id))


@router.get("/{run_id}/tree", response_model=RunTree, summary="A run and its child runs")
async def get_tree(principal: Caller, using: Using, run_id: RunId) -> RunTree:
    """The run and the runs it started through agents called as tools (their
    children, ...), depth first; only the caller's runs."""
    await owned_run(using, principal, run_id)
    tree = await using.runs.tree(run_id)
    return RunTree(
        items=[
            TreeNode(depth=depth, run=RunOut.model_validate(run))
            for depth, run in tree
            if owns(principal, run)  # the tenant too: a reader of every tenant's rows
        ]
    )


@router.get(
    "/{run_id}/transcript",
    response_model=TranscriptOut,
    summary="The run's canonical messages",
)
async def get_transcript(
    principal: Caller,
    using: Using,
    run_id: RunId,
    at: Annotated[int | None, Query(ge=0, description="as of this log offset")] = None,
    turn: Annotated[int | None, Query(ge=1, description="as of the end of this turn")] = None,
) -> Response:
    """The messages a provider would be given for the run, from the transcript cache
    (rebuilt from the log on a miss); with ``at`` or ``turn``, as they were then,
    read from the log."""
    run = await owned_run(using, principal, run_id)
    if at is None and turn is None:
        messages = await using.transcripts.get(run_id)
    else:
        with input_as_422("query", {"offset": "at"}):
            messages = (await using.transcripts.get_at(run_id, offset=at, turn=turn)).messages
    # Written by jsonvalues: pydantic would write a number no float holds as a string.
    return ExactJSONResponse(TranscriptOut(run_id=run_id, status=run.status, messages=messages))


@router.post("/{run_id}/cancel", status_code=202, response_model=Control, summary="Cancel a run")
async def cancel_run(
    principal: Writer, using: Using, run_id: RunId, body: CancelRequest | None = None
) -> Control:
    """Publish ``run_canceled``; the orchestrator aborts the run's model call. 409 when
    the run has already ended."""
    run = await owned_run(using, principal, run_id)
    _refuse_ended(run, "cancel")
    position = await using.control.cancel(run, body.reason if body else None)
    return Control(run_id=run_id, positions=[_position(position)])


@router.post(
    "/{run_id}/tool-results",
    status_code=202,
    response_model=Control,
    summary="Resume a run with results of its tool calls",
)
async def post_tool_results(
    principal: Writer, using: Using, run_id: RunId, body: ToolResultsRequest
) -> Control:
    """Publish results for tool calls of the run that no registered tool answers.

    Each ``tool_use_id`` must be one the run awaits (``pending_tool_uses`` of
    ``GET /v1/runs/{run_id}``), else 409. Results have deterministic event
    ids, so repeating a request cannot answer a call twice.
    """
    run = await owned_run(using, principal, run_id)
    _refuse_ended(run, "resume")
    awaited = set(run.pending_tool_uses)
    unknown = [r.tool_use_id for r in body.results if r.tool_use_id not in awaited]
    if unknown:
        raise ApiError(
            409,
            "conflict",
            f"run {run_id!r} awaits no tool call {listed(map(repr, unknown), len(unknown))} "
            f"(it awaits: {listed(map(repr, run.pending_tool_uses), len(run.pending_tool_uses))})",
        )
    parts = [
        ToolResultPart(tool_use_id=r.tool_use_id, content=r.content, is_error=r.is_error)
        for r in body.results
    ]
    positions = await using.control.resume(run, parts)
    return Control(run_id=run_id, positions=[_position(p) for p in positions])


@router.post(
    "/{run_id}/approvals/{tool_use_id}",
    status_code=202,
    response_model=Control,
    summary="Approve or deny a tool call held for approval",
)
async def decide_tool_call(
    principal: Writer, using: Using, run_id: RunId, tool_use_id: RunId, body: DecisionRequest
) -> Control:
    """Publish ``approval_decided`` (by the caller): an approved call runs, a denied
    one reaches the model as an error result with ``reason``.

    ``tool_use_id`` must be one the run holds (``awaiting_approval`` of
    ``GET /v1/runs/{run_id}``), else 409.
    """
    run = await owned_run(using, principal, run_id)
    _refuse_ended(run, "decide on")
    if tool_use_id not in run.awaiting_approval:
        raise ApiError(
            409,
            "conflict",
            f"run {run_id!r} holds no tool call {tool_use_id!r} for approval "
            f"(it holds: {', '.join(map(repr, run.awaiting_approval)) or 'none'})",
        )
    position = await using.control.decide(
        run,
        tool_use_id,
        approved=body.approved,
        reason=body.reason,
        decided_by=principal.user_id,
    )
    return Control(run_id=run_id, positions=[_position(position)])
