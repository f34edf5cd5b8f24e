"""The checkpointer contract on the in-memory twin of the store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from runwire.checkpoint import RunwireSaver
from runwire.checkpoint.inmem import InMemoryCheckpointStore
from runwire.contract.events import CheckpointPut, CheckpointWrites
from tests.contract.checkpoints import CheckpointContract


class TestInMemoryCheckpoints(CheckpointContract):
    @pytest_asyncio.fixture
    async def saver(self) -> AsyncIterator[RunwireSaver]:  # type: ignore[override]
        async with RunwireSaver.in_memory() as saver:
            yield saver

    async def stored_bytes(self, saver: RunwireSaver, thread_id: str) -> int:
        assert isinstance(saver.store, InMemoryCheckpointStore)
        return sum(
            len(e.payload.data)
            for e in saver.store.log
            if isinstance(e.payload, CheckpointPut | CheckpointWrites)
            and e.payload.thread_id == thread_id
        )
