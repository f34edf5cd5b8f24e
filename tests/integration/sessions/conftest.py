"""What the session tests on the real stack need: the four projectors the
Session API reads, running in the background, and a started ``LogBackend``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest_asyncio
from agents import set_tracing_disabled

from runwire.infra.isolation import isolated_deployment
from runwire.projections.runtime.protocol import Projection
from runwire.sessions.embedded import projectors_running
from runwire.sessions.log_backend import LogBackend
from runwire.sessions.openai_agents import close_shared_backends
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


@pytest_asyncio.fixture(loop_scope="session")
async def sessions(
    settings: Settings, projectors: dict[str, Projection]
) -> AsyncIterator[Settings]:
    """The test's deployment for ``RunwireSession`` (the Agents SDK's tracing off); the
    shared backends closed after."""
    set_tracing_disabled(True)
    try:
        yield settings
    finally:
        await asyncio.to_thread(close_shared_backends)


@pytest_asyncio.fixture(loop_scope="session")
async def admin_log_backend(
    settings: Settings, projectors: dict[str, Projection]
) -> AsyncIterator[LogBackend]:
    """A started ``LogBackend`` whose readers read every tenant's rows (the admin's)."""
    async with LogBackend(settings.model_copy(update={"admin": True})) as backend:
        yield backend
