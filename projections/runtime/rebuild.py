"""Rebuild: a fresh copy of a projection from offset 0, then an atomic switch.

Contract:
- The live copy keeps serving (and its projector keeps applying) for the
  whole rebuild; readers see it until the switch.
- The copy is filled by a projector that reads every partition without a
  consumer group, so it takes no partitions from the live projector.
- The copy catches up to the log end, then asks the projection to switch;
  the switch only happens when, for every partition, the copy has applied at
  least as far as the live copy (checked atomically with the switch), so
  readers never go back in time. When the live copy got ahead meanwhile, the
  copy catches up again and retries.
- An interrupted rebuild leaves its copy; the next rebuild resumes it (its
  positions are stored with it) unless told to restart.
- Memory stays flat: one batch in flight, nothing kept per record.
- Records that cannot be read or applied are dead-lettered as by a served
  projector; the dead-letter producer connects with the first of them (a
  clean log's rebuild never starts one).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from runwire.log.records import TopicPartition
from runwire.projections.runtime.consumer import Decoder, Projector, ProjectorOptions
from runwire.projections.runtime.dead_letters import DeadLetterProducer
from runwire.projections.runtime.protocol import ProjectionError, Rebuildable
from runwire.settings import Settings
from runwire.telemetry.metrics import REBUILD_PROGRESS

REBUILD_OPTIONS = ProjectorOptions(max_records=10_000, poll_timeout_ms=500)
"""A rebuild's batches: large, because a batch folds and writes each key it
touches (a run's row, a transcript's body, a memory entry) once, however
many of its events it holds, so the larger the batch, the fewer times a key
is read, folded and written over a rebuild. Twice 5,000 took about 6% off
the CPU per event of every projection's rebuild (the runtime alone gains
nothing); the price is a larger batch in flight (a run-status rebuild of
170k events peaked at 192 MB instead of 150 MB) and longer single writes
(a transcript batch's script)."""


@dataclass(frozen=True, slots=True)
class RebuildProgress:
    """A snapshot for progress bars: records are counted by position, not by event."""

    generation: int
    done: int
    total: int
    elapsed: float
    switched: bool = False

    @property
    def rate(self) -> float:
        """Records per second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate (None before the first batch)."""
        if self.rate <= 0:
            return None
        return max(0.0, (self.total - self.done) / self.rate)


@dataclass(frozen=True, slots=True)
class RebuildReport:
    projection: str
    generation: int
    records: int
    seconds: float
    switch_attempts: int
    applied: int
    duplicates: int
    dead_letters: int

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


async def rebuild(
    projection: Rebuildable,
    settings: Settings,
    *,
    restart: bool = False,
    options: ProjectorOptions | None = None,
    decoder: Decoder | None = None,
    on_progress: Callable[[RebuildProgress], None] | None = None,
) -> RebuildReport:
    """Build a fresh copy of ``projection`` and switch readers to it (see the module contract)."""
    copy = await projection.begin_rebuild(restart=restart)
    started = time.monotonic()
    attempts = 0
    moved = asyncio.Event()
    # Started by its first dead letter: a rebuild of a clean log writes none,
    # and a producer's start and stop were a fixed part of every rebuild.
    sink = DeadLetterProducer(
        settings, f"{projection.name}-rebuild-g{copy.generation}", start_on_send=True
    )
    projector = Projector(
        copy.projection,
        settings,
        assignment="all",
        options=options or REBUILD_OPTIONS,
        decoder=decoder,
        dead_letters=sink,
        on_batch=lambda _projector, _result: moved.set(),
    )
    async with contextlib.AsyncExitStack() as running:
        # Stopped in reverse order: the projector, then the sink it writes to.
        running.push_async_callback(sink.stop)
        running.push_async_callback(projector.stop)
        await projector.start()
        first = projector.positions()
        total = 0

        def report(switched: bool = False) -> None:
            done = _sum_gap(projector.positions(), first)
            REBUILD_PROGRESS.labels(projection.name).set(
                1.0 if switched else done / max(total, done, 1)
            )
            if on_progress is not None:
                on_progress(
                    RebuildProgress(
                        generation=copy.generation,
                        done=done,
                        total=max(total, done),
                        elapsed=time.monotonic() - started,
                        switched=switched,
                    )
                )

        runner = asyncio.create_task(projector.run(), name=f"rebuild-{projection.name}")
        try:
            # Asked while the first fetch is under way: a round trip less before it.
            ends = await projector.end_offsets()
            total = _sum_gap(ends, first)
            report()
            while True:
                while _behind(projector.positions(), ends):
                    await _next_batch(moved, runner)
                    report()
                attempts += 1
                if await copy.try_switch():
                    report(switched=True)
                    break
                # The live copy is past the log end we aimed at: aim again.
                ends = await projector.end_offsets()
                total = max(total, _sum_gap(ends, first))
        finally:
            await projector.stop()
            await runner
        stats = projector.stats
    return RebuildReport(
        projection=projection.name,
        generation=copy.generation,
        records=_sum_gap(projector.positions(), first),
        seconds=time.monotonic() - started,
        switch_attempts=attempts,
        applied=stats.applied,
        duplicates=stats.duplicates,
        dead_letters=stats.undecodable + stats.rejected,
    )


async def _next_batch(moved: asyncio.Event, runner: asyncio.Task[None]) -> None:
    """Wait for the projector to apply another batch (or fail)."""
    waiter = asyncio.ensure_future(moved.wait())
    done, _ = await asyncio.wait({waiter, runner}, return_when=asyncio.FIRST_COMPLETED)
    if runner in done:
        waiter.cancel()
        runner.result()  # re-raises what stopped the projector
        raise ProjectionError("the rebuild's projector stopped before the copy caught up")
    moved.clear()


def _behind(positions: dict[TopicPartition, int], ends: dict[TopicPartition, int]) -> bool:
    return any(positions.get(tp, 0) < end for tp, end in ends.items())


def _sum_gap(upper: dict[TopicPartition, int], lower: dict[TopicPartition, int]) -> int:
    return sum(max(0, pos - lower.get(tp, 0)) for tp, pos in upper.items())
