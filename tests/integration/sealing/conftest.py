"""What the sealing proofs share: a sealed deployment with no key cache, its projectors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from runwire.projections.runtime.protocol import Projection
from runwire.sessions.embedded import projectors_running
from runwire.settings import Settings


@pytest_asyncio.fixture(loop_scope="session")
async def sealed(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={
            "sealing": True,
            "sealing_key_file": tmp_path / "kek.json",
            # No cache: every process sees the erasure at once (the proof is about bytes).
            "sealing_key_cache_seconds": 0.0,
        }
    )


@pytest_asyncio.fixture(loop_scope="session")
async def projectors(sealed: Settings) -> AsyncIterator[dict[str, Projection]]:
    async with projectors_running(sealed) as projections:
        yield projections
