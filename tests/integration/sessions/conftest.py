"""What the session tests on the real stack need: the four projectors the
Session API reads, running in the background, and a started ``LogBackend``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest_asyncio

from runwire.infra.isolation import isolated_deployment
from runwire.projections.runtime.protocol import Projection
from runwire.sessions.embedded import projectors_running
from runwire.sessions.log_backend import LogBackend
from runwire.settings import Settings


@contextlib.asynccontextmanager
async def another_stack(stack_settings: Settings) -> AsyncIterator[Settings]:
    """Settings for a second, empty deployment on the test stack (own topics, schema, keys),
    removed afterwards: what the ``settings`` fixture gives, once more in the same test."""
    async with isolated_deployment(stack_settings, "t") as other:
        yield other


@pytest_asyncio.fixture(loop_scope="session")
async def projectors(settings: Settings) -> AsyncIterator[dict[str, Projection]]:
    async with projectors_running(settings) as projections:
        yield projections


@pytest_asyncio.fixture(loop_scope="session")
async def log_backend(
    settings: Settings, projectors: dict[str, Projection]
) -> AsyncIterator[LogBackend]:
    async with LogBackend(settings) as backend:
        yield backend
