"""``GET /v1/runs/{run_id}/events``: the run's events, live, as Server-Sent Events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from runwire.contract import ids
from runwire.services.api.access import owned_run
from runwire.services.api.auth import Caller
from runwire.services.api.backends import Using
from runwire.services.api.errors import ApiError
from runwire.services.api.metrics import ApiMetrics
from runwire.services.api.models import IdPath
from runwire.services.api.sse import run_event_stream

__all__ = ["router"]

router = APIRouter(prefix="/v1/runs", tags=["runs"])


@router.get(
    "/{run_id}/events",
    response_class=StreamingResponse,
    summary="The run's events from its first one, then live (text/event-stream)",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def run_events(
    request: Request,
    principal: Caller,
    using: Using,
    run_id: IdPath,
    last_event_id: Annotated[str | None, Header(max_length=200)] = None,
    live: Annotated[
        bool,
        Query(description="Also the live events: the answer as it streams, tools running"),
    ] = False,
) -> StreamingResponse:
    """Every event of the run in log order, read from the log from the run's first
    event, then live until its terminal event; with ``live=true`` its live events
    woven in; see docs/http-api.md for the framing."""
    if last_event_id is not None and not ids.is_event_id(last_event_id):
        # Skipping up to an id no event has would send nothing but the end.
        what = f"{last_event_id!r:.60} is not an event id (the id: of a message this stream sent)"
        raise ApiError(
            422,
            "invalid_request",
            f"header.last-event-id: {what}",
            problems=[{"where": "header.last-event-id", "what": what}],
        )
    run = await owned_run(using, principal, run_id)
    metrics: ApiMetrics = request.app.state.metrics
    body = run_event_stream(
        run_id,
        using.control.events(run, live=live),
        last_event_id=last_event_id,
        keepalive=using.options.keepalive_seconds,
        closing=request.app.state.closing,
    )

    async def counted() -> AsyncIterator[bytes]:
        metrics.open_streams.inc()
        try:
            async for chunk in body:
                yield chunk
        finally:
            metrics.open_streams.dec()
            await body.aclose()

    return StreamingResponse(
        counted(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
