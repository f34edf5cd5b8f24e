"""The checkpoint store on the log: checkpoint events on the checkpoints topic,
read from the Postgres checkpoints projection (:mod:`runwire.projections.checkpoints`).

Read-your-writes: ``append`` publishes (idempotent producer, retried with the
log layer's posture), then waits until the checkpoints projection has
applied the last record of each partition written before it returns. So a
checkpoints projector must run: the store runs one in this process unless
``run_projector=False`` (then ``runwire serve projector-checkpoints`` must);
without one an append fails with
:class:`~runwire.projections.runtime.waiting.NotCaughtUpError` after
``wait_timeout`` seconds (the events are durable in the log by then).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from runwire.contract.events import Event
from runwire.errors import NotStartedError
from runwire.log import Position, Publisher, publish_retrying
from runwire.projections.checkpoints.projection import CheckpointsProjection
from runwire.projections.checkpoints.reader import Checkpoints
from runwire.projections.runtime.consumer import Projector, ProjectorOptions
from runwire.projections.runtime.pg import Pool, open_pool
from runwire.projections.runtime.waiting import wait_for
from runwire.settings import Settings

__all__ = ["EMBEDDED", "LogCheckpointStore"]

EMBEDDED = ProjectorOptions(session_timeout_ms=6000, heartbeat_interval_ms=500, poll_timeout_ms=100)
"""The in-process projector's options: quick to join, quick to notice a lost member."""


class LogCheckpointStore:
    """A :class:`~runwire.checkpoint.protocol.CheckpointStore` on Kafka + Postgres.

    ``publisher`` and ``pool`` may be shared (they are then not closed here).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        publisher: Publisher | None = None,
        pool: Pool | None = None,
        run_projector: bool = True,
        wait_timeout: float = 10.0,
    ) -> None:
        self.settings = settings
        self.wait_timeout = wait_timeout
        self._run_projector = run_projector
        self._publisher = publisher
        self._own_publisher = publisher is None
        self._pool = pool
        self._own_pool = pool is None
        self._reader: Checkpoints | None = None
        self._projection: CheckpointsProjection | None = None
        self._projector: Projector | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect (Kafka, Postgres), prepare the tables, start the projector if asked."""
        if self._reader is not None:
            return
        try:
            if self._publisher is None:
                # Each append waits for its own records: lingering to batch
                # them with others would only add to every call's latency.
                self._publisher = Publisher(
                    self.settings.model_copy(update={"producer_linger_ms": 0})
                )
            if self._own_publisher:
                await self._publisher.start()
            if self._pool is None:
                self._pool = await open_pool(self.settings, max_size=8, name="runwire-checkpoints")
            self._projection = CheckpointsProjection(self._pool, self.settings)
            await self._projection.prepare()
            if self._run_projector:
                self._projector = Projector(self._projection, self.settings, options=EMBEDDED)
                await self._projector.start()
                self._task = asyncio.create_task(self._projector.run(), name="checkpoints")
            self._reader = Checkpoints(self._pool, self.settings)
        except BaseException:
            await self._close()
            raise

    async def stop(self) -> None:
        """Close what this store opened; idempotent."""
        await self._close()

    async def _close(self) -> None:
        self._reader = None
        projector, self._projector = self._projector, None
        task, self._task = self._task, None
        try:
            if projector is not None:
                await projector.stop()
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        finally:
            publisher, self._publisher = self._publisher, None
            pool, self._pool = self._pool, None
            if publisher is not None and self._own_publisher:
                await publisher.stop()
            if pool is not None and self._own_pool:
                await pool.close()

    @property
    def reader(self) -> Checkpoints:
        if self._reader is None:
            raise NotStartedError("the checkpoint store is not started: call start()")
        return self._reader

    async def append(self, events: Sequence[Event]) -> None:
        if not events:
            return
        if self._publisher is None or self._projection is None or self._reader is None:
            raise NotStartedError("the checkpoint store is not started: call start()")
        positions = await publish_retrying(
            self._publisher, events, atomic=False, attempts=5, max_delay=2.0
        )
        last: dict[int, Position] = {}
        for position in positions:
            if position.offset >= last.get(position.partition, position).offset:
                last[position.partition] = position
        for position in last.values():
            await wait_for(
                self._projection, position, self.wait_timeout, first_poll=0.001, max_poll=0.002
            )
