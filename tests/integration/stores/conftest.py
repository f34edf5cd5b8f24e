"""What the store tests on the real stack need: the runs and sessions projectors
running in the background, and started log-backed stores."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from runwire.projections.runtime.protocol import Projection
from runwire.sessions.embedded import projectors_running
from runwire.settings import Settings
from runwire.stores.log_backend import LogStores


@pytest_asyncio.fixture(loop_scope="session")
async def projectors(settings: Settings) -> AsyncIterator[dict[str, Projection]]:
    async with projectors_running(settings) as projections:
        yield projections


@pytest_asyncio.fixture(loop_scope="session")
async def log_stores(
    settings: Settings, projectors: dict[str, Projection]
) -> AsyncIterator[LogStores]:
    async with LogStores(settings) as stores:
        yield stores
