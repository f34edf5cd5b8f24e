"""Time travel: a run's transcript as of a log offset or a turn, read from the log,
byte for byte what the live projection held at that point."""

from __future__ import annotations

import random

import pytest
import redis.asyncio as aioredis

from runwire.contract.events import Event, UserMessage
from runwire.errors import InputError, NotFoundError
from runwire.log.partitioner import partition_for
from runwire.projections.runtime.lag import log_ends
from runwire.projections.transcripts.projection import TranscriptProjection
from runwire.projections.transcripts.reader import TranscriptCache
from runwire.settings import Settings
from runwire.transcript.turns import starts_turn
from tests.integration.transcripts.conftest import publish, running, store_for, wait_caught_up
from tests.support.transcript_workload import reference_transcripts, workload


async def test_as_of_an_offset_is_what_the_live_projection_held_then(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    events = workload(71, runs=6, sessions=2, turns=(1, 3))
    store = store_for(redis_client, settings)
    rng = random.Random(71)
    # (run, offset, the bytes the cache held for the run once that offset was applied)
    seen: list[tuple[str, int, bytes]] = []
    async with (
        running(TranscriptProjection(store, settings), settings),
        TranscriptCache(settings, client=redis_client) as cache,
    ):
        i = 0
        while i < len(events):
            chunk = events[i : i + rng.randint(1, 6)]
            i += len(chunk)
            positions = await publish(settings, chunk)
            for p in positions:
                await cache.wait_for(p, timeout=30)
            run_ids = sorted({e.run_id for e in chunk if e.run_id})
            held = await store.messages(0, run_ids)
            for event, position in reversed(list(zip(chunk, positions, strict=True))):
                run_id = event.run_id
                assert run_id is not None
                if run_id in run_ids:
                    run_ids.remove(run_id)
                    seen.append((run_id, position.offset, held[run_id]))
        assert len(seen) > 40
        for run_id, offset, held_then in seen:
            past = await cache.get_at(run_id, offset=offset)
            assert past.json == held_then, (run_id, offset)
            assert past.offset == offset
        # The end of each run is its whole transcript.
        reference = reference_transcripts(events)
        for run_id, messages in reference.items():
            last = max(o for r, o, _ in seen if r == run_id)
            assert (await cache.get_at(run_id, offset=last)).messages == messages


async def test_as_of_a_turn_cuts_before_the_next_turn_starts(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    events = workload(72, runs=5, sessions=1, turns=(2, 4))
    reference = reference_transcripts(events)
    store = store_for(redis_client, settings)
    await publish(settings, events)
    async with running(TranscriptProjection(store, settings), settings):
        await wait_caught_up(store, settings)
    async with TranscriptCache(settings, client=redis_client) as cache:
        for run_id, messages in reference.items():
            starts = [i for i, m in enumerate(messages) if starts_turn(m)]
            assert len(starts) >= 2
            for turn in range(1, len(starts) + 1):
                past = await cache.get_at(run_id, turn=turn)
                cut = starts[turn] if turn < len(starts) else len(messages)
                assert past.messages == messages[:cut], (run_id, turn)
                assert past.turns == turn
            with pytest.raises(InputError, match=f"has {len(starts)} turns; no turn"):
                await cache.get_at(run_id, turn=len(starts) + 1)


async def test_bad_positions_are_refused_naming_the_field(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    events = workload(73, runs=1, sessions=1)
    store = store_for(redis_client, settings)
    run_id = events[0].run_id
    assert run_id is not None
    # Another run before it in its partition, so an offset before it exists.
    partitions = sorted(tp.partition for tp in await log_ends(settings, (settings.run_events,)))
    mine = partition_for(run_id.encode(), partitions)
    other = next(
        f"other-{k}"
        for k in range(10_000)
        if partition_for(f"other-{k}".encode(), partitions) == mine
    )
    await publish(settings, [Event.create(UserMessage(parts=["hi"]), run_id=other, producer="t")])
    positions = await publish(settings, events)
    async with running(TranscriptProjection(store, settings), settings):
        ends = await wait_caught_up(store, settings)
    first = positions[0]
    assert first.offset > 0
    end = next(e for tp, e in ends.items() if tp.partition == first.partition)
    async with TranscriptCache(settings, client=redis_client) as cache:
        with pytest.raises(InputError, match="beyond the end of partition") as beyond:
            await cache.get_at(run_id, offset=end)
        assert beyond.value.field == "offset"
        with pytest.raises(InputError, match="is before it"):
            await cache.get_at(run_id, offset=first.offset - 1)
        with pytest.raises(InputError, match="not both"):
            await cache.get_at(run_id, offset=first.offset, turn=1)
        with pytest.raises(InputError, match="at least 1"):
            await cache.get_at(run_id, turn=0)
        with pytest.raises(NotFoundError):
            await cache.get_at("no-such-run", offset=0)
        # Nothing was written by any of it.
        assert (await store.messages(0, ["no-such-run"])) == {}
