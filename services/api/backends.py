"""What the routes read and write through, open for the app's lifetime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from runwire.services.api.errors import ApiError
from runwire.services.api.ports import RunControl, RunReader, SessionReader, TranscriptReader

__all__ = ["Backends", "Options", "Using", "backends"]


@dataclass(frozen=True, slots=True)
class Options:
    """How the API behaves (constructor arguments of ``create_app``)."""

    visibility_timeout: float = 5.0
    """Seconds ``POST /v1/runs`` waits for the projections to show the new run."""
    keepalive_seconds: float = 15.0
    """Seconds between keepalive comments on an idle event stream."""


@dataclass(frozen=True, slots=True)
class Backends:
    runs: RunReader
    sessions: SessionReader
    transcripts: TranscriptReader
    control: RunControl
    options: Options


def backends(request: Request) -> Backends:
    """The app's open backends; 503 while the app starts or stops (lifespan not running)."""
    current = getattr(request.app.state, "backends", None)
    if not isinstance(current, Backends):
        raise ApiError(503, "unavailable", "the API is starting or stopping; try again")
    return current


Using = Annotated[Backends, Depends(backends)]
"""A route parameter: the app's open backends."""
