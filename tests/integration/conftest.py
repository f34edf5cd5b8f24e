"""Everything under tests/integration runs against the real local stack."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from runwire.projections.runtime.pg import Pool, open_pool
from runwire.settings import Settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = __file__.rsplit("/", 1)[0]
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.integration)


@pytest_asyncio.fixture(loop_scope="session")
async def pool(settings: Settings) -> AsyncIterator[Pool]:
    """A Postgres pool on the test's own schema."""
    pool = await open_pool(settings)
    try:
        yield pool
    finally:
        await pool.close()
