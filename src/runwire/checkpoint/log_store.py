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

The wait polls the projection's stored positions (whoever applies them); the
projector run here also says when it has committed a batch, so an append
its own projector applies returns without waiting for the next poll.

Refusals: events the projection would dead-letter for what they say are
refused before they are written (:func:`~runwire.checkpoint.protocol.check_events`);
one it dead-letters all the same (a conflicting duplicate id, a row Postgres
refuses) is noticed by the projector run here, and the append raises
:class:`~runwire.checkpoint.protocol.CheckpointRefusedError` naming the dead
letter's reason. (With ``run_projector=False`` the projector elsewhere
knows, not this store: the append returns, the dead letter says why.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence

from runwire.checkpoint.protocol import CheckpointRefusedError, check_events
from runwire.contract.events import Event
from runwire.errors import NotStartedError
from runwire.log import Position, Publisher, TopicPartition, publish_retrying
from runwire.projections.checkpoints.projection import CheckpointsProjection
from runwire.projections.checkpoints.reader import Checkpoints
from runwire.projections.runtime.consumer import Projector, ProjectorOptions
from runwire.projections.runtime.dead_letters import DeadLetterProducer
from runwire.projections.runtime.pg import Pool, open_pool
from runwire.projections.runtime.protocol import ApplyResult, Batch, DeadLetterSink, Rejection
from runwire.projections.runtime.waiting import wait_for
from runwire.settings import Settings

__all__ = ["EMBEDDED", "LogCheckpointStore"]

EMBEDDED = ProjectorOptions(session_timeout_ms=6000, heartbeat_interval_ms=500, poll_timeout_ms=100)
"""The in-process projector's options: quick to join, quick to notice a lost member."""


class _Announcing(CheckpointsProjection):
    """The checkpoints projection, telling ``applied`` the positions each commit stored."""

    def __init__(self, pool: Pool, settings: Settings, applied: _Applied) -> None:
        super().__init__(pool, settings)
        self._applied = applied

    async def apply(self, batch: Batch, dead_letters: DeadLetterSink) -> ApplyResult:
        result = await super().apply(batch, dead_letters)  # returns once committed
        self._applied.reached(result.positions)
        return result


class _Noting:
    """The in-process projector's dead-letter sink: writes them, and tells ``applied``."""

    def __init__(self, inner: DeadLetterSink, applied: _Applied) -> None:
        self._inner = inner
        self._applied = applied

    async def send(self, rejections: Sequence[Rejection]) -> None:
        await self._inner.send(rejections)
        self._applied.refused(rejections)


REFUSALS_KEPT = 4096
"""Refused records remembered for appends still waiting (the oldest forgotten first)."""


class _Applied:
    """Positions the in-process projector has committed, the records it refused,
    and a way to wait for a position."""

    def __init__(self) -> None:
        self._positions: dict[TopicPartition, int] = {}
        self._moved = asyncio.Event()
        self._refused: OrderedDict[tuple[str, int, int], str] = OrderedDict()

    def refused(self, rejections: Sequence[Rejection]) -> None:
        for r in rejections:
            self._refused[(r.topic, r.partition, r.offset)] = f"{r.reason}: {r.message}"
            if len(self._refused) > REFUSALS_KEPT:
                self._refused.popitem(last=False)

    def refusal(self, position: Position) -> str | None:
        """Why the record at ``position`` was dead-lettered (None: it was not, as far
        as this process's projector knows)."""
        return self._refused.get((position.topic, position.partition, position.offset))

    def reached(self, positions: Mapping[TopicPartition, int]) -> None:
        for tp, position in positions.items():
            if position > self._positions.get(tp, 0):
                self._positions[tp] = position
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def past(self, position: Position) -> None:
        tp = TopicPartition(position.topic, position.partition)
        while self._positions.get(tp, 0) <= position.offset:
            await self._moved.wait()


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
        self._dead_letters: DeadLetterProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._applied = _Applied()

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
                announcing = _Announcing(self._pool, self.settings, self._applied)
                self._dead_letters = DeadLetterProducer(self.settings, announcing.name)
                await self._dead_letters.start()
                self._projector = Projector(
                    announcing,
                    self.settings,
                    options=EMBEDDED,
                    dead_letters=_Noting(self._dead_letters, self._applied),
                )
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
            dead_letters, self._dead_letters = self._dead_letters, None
            publisher, self._publisher = self._publisher, None
            pool, self._pool = self._pool, None
            if dead_letters is not None:
                await dead_letters.stop()
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
        check_events(events)
        positions = await publish_retrying(
            self._publisher, events, atomic=False, attempts=5, max_delay=2.0
        )
        last: dict[int, Position] = {}
        for position in positions:
            if position.offset >= last.get(position.partition, position).offset:
                last[position.partition] = position
        for position in last.values():
            await self._wait(position)
        for event, position in zip(events, positions, strict=True):
            why = self._applied.refusal(position)
            if why is not None:
                raise CheckpointRefusedError(
                    f"checkpoint event {event.event_id} ({event.type.value} of thread "
                    f"{_thread(event)!r}) is durable in the log but the checkpoints "
                    f"projection dead-lettered it ({why}); it shows nowhere"
                )

    async def _wait(self, position: Position) -> None:
        """Return once the projection has applied ``position``: told by the projector
        run here, or seen in the stored positions (any projector)."""
        assert self._projection is not None
        told = asyncio.ensure_future(self._applied.past(position))
        polled = asyncio.ensure_future(
            wait_for(self._projection, position, self.wait_timeout, first_poll=0.002, max_poll=0.01)
        )
        try:
            done, _ = await asyncio.wait({told, polled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (told, polled):
                task.cancel()
            await asyncio.gather(told, polled, return_exceptions=True)
        if told not in done:
            polled.result()  # NotCaughtUpError, StoreError


def _thread(event: Event) -> str:
    return str(getattr(event.payload, "thread_id", "?"))
