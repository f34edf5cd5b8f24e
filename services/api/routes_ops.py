"""``/healthz`` and ``/metrics``: for load balancers and Prometheus (no API key)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from runwire.services.api.backends import Using
from runwire.services.api.errors import RETRY_AFTER, error_body
from runwire.services.api.metrics import ApiMetrics

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])

CHECK_TIMEOUT = 2.0


@router.get("/healthz", summary="200 when the API can answer reads")
async def healthz(request: Request, using: Using) -> Response:
    """200 ``{"status": "ok"}`` when the backends are open and the run-status store
    answers within 2 s; 503 (with ``Retry-After``) otherwise."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await using.runs.list(limit=1)
    except Exception as e:
        # The error's own words may name hosts and ports: they go to the log only.
        log.warning("healthz: the run-status store does not answer: %r", e)
        message = f"the run-status store does not answer: {type(e).__name__}"
        return JSONResponse(
            error_body(request, "unavailable", message),
            status_code=503,
            headers={"Retry-After": RETRY_AFTER},
        )
    return JSONResponse({"status": "ok"})


@router.get(
    "/metrics",
    summary="Prometheus metrics of this API process",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    collected: ApiMetrics = request.app.state.metrics
    return Response(generate_latest(collected.registry), media_type=CONTENT_TYPE_LATEST)
