"""The checkpointer contract on the log: the checkpoints topic + the Postgres projection."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from runwire.checkpoint import RunwireSaver
from runwire.checkpoint.log_store import LogCheckpointStore
from runwire.settings import Settings
from tests.contract.checkpoints import CheckpointContract


class TestLogCheckpoints(CheckpointContract):
    @pytest_asyncio.fixture(loop_scope="session")
    async def saver(self, settings: Settings) -> AsyncIterator[RunwireSaver]:  # type: ignore[override]
        async with RunwireSaver(settings=settings) as saver:
            yield saver

    async def stored_bytes(self, saver: RunwireSaver, thread_id: str) -> int:
        # What the log holds for the thread, counted where it is kept: the
        # projection's value and write bytes grow exactly as the events' do.
        assert isinstance(saver.store, LogCheckpointStore)
        return await saver.on_loop(_bytes_of(saver.store, thread_id))


async def _bytes_of(store: LogCheckpointStore, thread_id: str) -> int:
    pool = store.reader._pool
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT (SELECT coalesce(sum(length(data)), 0) FROM checkpoint_values "
            "WHERE thread_id = %s) + (SELECT coalesce(sum(length(data)), 0) "
            "FROM checkpoint_pending_writes WHERE thread_id = %s)",
            (thread_id, thread_id),
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])
