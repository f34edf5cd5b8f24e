"""session_read.lua on the real Redis: a session's runs and messages in one call."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from runwire.projections.transcripts.redis_store import RedisTranscriptStore
from runwire.projections.transcripts.session_read import SessionReader
from runwire.projections.transcripts.store import Slot
from runwire.settings import Settings
from tests.contract.transcript_store import commit, create

pytestmark = pytest.mark.integration


class CountingRedis(aioredis.Redis):
    """A real client that counts the commands it sends (round trips, unpipelined)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[str] = []

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent.append(str(args[0]))
        return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]


@pytest_asyncio.fixture
async def client(settings: Settings) -> AsyncIterator[CountingRedis]:
    client = CountingRedis.from_url(settings.redis_url)
    assert isinstance(client, CountingRedis)
    try:
        yield client
    finally:
        await client.aclose()


@pytest_asyncio.fixture(params=["plain", "star"])
async def prefix(request: pytest.FixtureRequest, settings: Settings) -> str:
    """The key prefix: as configured, or holding a '*' (which GET patterns would
    misread: the script reads such a keyspace run by run)."""
    return settings.redis_key_prefix + ("" if request.param == "plain" else "*x")


@pytest_asyncio.fixture
async def store(client: CountingRedis, prefix: str) -> AsyncIterator[RedisTranscriptStore]:
    store = RedisTranscriptStore(client, prefix)
    ok = await store.commit(
        commit(
            [
                create("r2", 7, first_ms=2000, tag="second"),
                create("r1", 3, first_ms=1000, tag="first"),
                create("r3", 9, first_ms=3000, tag="third"),
                create("other", 4, session="s2", first_ms=500, tag="other"),
            ]
        )
    )
    assert ok.ok
    yield store
    # The star prefix is not under the test's own prefix: remove its keys here.
    escaped = "".join(f"\\{c}" if c in "*?[]\\" else c for c in prefix)
    keys = [k async for k in client.scan_iter(match=f"{escaped}:*")]
    if keys:
        await client.delete(*keys)


def reader_for(client: aioredis.Redis, prefix: str) -> SessionReader:
    return SessionReader(client, prefix)


async def stored_json(store: RedisTranscriptStore, run_ids: list[str]) -> dict[str, bytes]:
    return await store.messages(await _live(store), run_ids)


async def _live(store: RedisTranscriptStore) -> int:
    generation = await store.generation(Slot.LIVE)
    assert generation is not None
    return generation


async def test_one_call_gives_the_runs_in_order_and_their_messages(
    store: RedisTranscriptStore, client: CountingRedis, prefix: str
) -> None:
    reader = reader_for(client, prefix)
    await reader.read("s1")  # loads the script
    client.sent.clear()
    read = await reader.read("s1")
    assert client.sent == ["EVALSHA"]
    assert read.generation == 0
    assert not read.erased
    assert read.total == 3
    assert read.runs == [("r1", 1000), ("r2", 2000), ("r3", 3000)]
    assert {r: b.json for r, b in read.bodies.items()} == await stored_json(
        store, ["r1", "r2", "r3"]
    )
    assert read.bodies["r1"].json == b'["first"]'


async def test_a_server_without_the_script_is_given_it_and_read(
    store: RedisTranscriptStore, client: CountingRedis, prefix: str
) -> None:
    """A restarted (or flushed) server does not know the script: the read loads
    it and runs it, once; later reads name it alone."""
    reader = reader_for(client, prefix)
    real = reader.sha
    reader.sha = hashlib.sha1(b"-- a script this server never saw").hexdigest()
    client.sent.clear()
    read = await reader.read("s1", tail=2)
    assert client.sent == ["EVALSHA", "SCRIPT LOAD", "EVALSHA"]
    assert reader.sha == real
    assert read.runs == [("r2", 2000), ("r3", 3000)]
    assert read.bodies["r3"].json == b'["third"]'
    client.sent.clear()
    assert (await reader.read("s1", tail=2)).runs == read.runs
    assert client.sent == ["EVALSHA"]


@pytest.mark.parametrize(
    ("tail", "listed"),
    [(None, ["r1", "r2", "r3"]), (1, ["r3"]), (2, ["r2", "r3"]), (0, []), (10, ["r1", "r2", "r3"])],
)
async def test_a_tail_read_lists_and_reads_only_the_newest_runs(
    store: RedisTranscriptStore,
    client: CountingRedis,
    prefix: str,
    tail: int | None,
    listed: list[str],
) -> None:
    read = await reader_for(client, prefix).read("s1", tail=tail)
    times = {"r1": 1000, "r2": 2000, "r3": 3000}
    assert read.runs == [(r, times[r]) for r in listed]
    assert list(read.bodies) == listed
    assert read.total == 3


async def test_runs_lists_every_run_without_messages(
    store: RedisTranscriptStore, client: CountingRedis, prefix: str
) -> None:
    read = await reader_for(client, prefix).runs("s1")
    assert read.runs == [("r1", 1000), ("r2", 2000), ("r3", 3000)]
    assert read.bodies == {}
    assert read.total == 3


async def test_bodies_by_run_id_leave_misses_out(
    store: RedisTranscriptStore, client: CountingRedis, prefix: str
) -> None:
    reader = reader_for(client, prefix)
    found = await reader.bodies(["other", "never-written", "r1"])
    assert {r: b.json for r, b in found.items()} == {"other": b'["other"]', "r1": b'["first"]'}
    assert await reader.bodies([]) == {}


async def test_an_expired_body_is_listed_without_messages(
    store: RedisTranscriptStore, client: CountingRedis, prefix: str
) -> None:
    await client.delete(store.keys.generation(0).body("r2"))
    read = await reader_for(client, prefix).read("s1")
    assert [r for r, _ in read.runs] == ["r1", "r2", "r3"]
    assert set(read.bodies) == {"r1", "r3"}


async def test_an_unknown_session_lists_nothing(
    store: RedisTranscriptStore, client: CountingRedis, prefix: str
) -> None:
    read = await reader_for(client, prefix).read("no-such-session")
    assert read.runs == []
    assert read.bodies == {}
    assert read.total == 0
    assert not read.erased


async def test_an_erased_session_lists_nothing_and_says_so(
    store: RedisTranscriptStore, client: CountingRedis, prefix: str
) -> None:
    assert (await store.commit(commit(deletions=["s1"]))).ok
    reader = reader_for(client, prefix)
    for read in (await reader.read("s1"), await reader.read("s1", tail=1), await reader.runs("s1")):
        assert read.erased
        assert read.runs == []
        assert read.total == 0
    assert not (await reader.read("s2")).erased
    assert list(await reader.bodies(["other"])) == ["other"]


async def test_it_reads_the_live_generation_or_the_one_named(
    store: RedisTranscriptStore, client: CountingRedis, prefix: str
) -> None:
    building, _ = await store.begin_generation()
    ok = await store.commit(
        commit(
            [create("r9", 1, first_ms=9000, tag="rebuilt")],
            generation=building,
            slot=Slot.BUILDING,
        )
    )
    assert ok.ok
    reader = reader_for(client, prefix)
    assert [r for r, _ in (await reader.read("s1")).runs] == ["r1", "r2", "r3"]
    named = await reader.read("s1", generation=building)
    assert named.generation == building
    assert named.runs == [("r9", 9000)]
    assert named.bodies["r9"].json == b'["rebuilt"]'
    assert list(await reader.bodies(["r9", "r1"], generation=building)) == ["r9"]
    await client.set(store.keys.live, building)
    assert (await reader.read("s1")).generation == building


async def test_a_negative_tail_is_refused(client: CountingRedis, prefix: str) -> None:
    with pytest.raises(ValueError, match="tail"):
        await reader_for(client, prefix).read("s1", tail=-1)


async def test_a_run_whose_meta_lacks_its_time_is_ordered_by_the_session_index(
    store: RedisTranscriptStore, client: CountingRedis, prefix: str
) -> None:
    await client.hdel(store.keys.generation(0).meta("r2"), "t")
    reader = reader_for(client, prefix)
    assert (await reader.runs("s1")).runs == [("r1", 1000), ("r2", 2000), ("r3", 3000)]
    for tail, listed in ((None, ["r1", "r2", "r3"]), (2, ["r2", "r3"])):
        read = await reader.read("s1", tail=tail)
        assert [r for r, _ in read.runs] == listed
        assert read.runs[-2:] == [("r2", 2000), ("r3", 3000)]
        assert list(read.bodies) == listed
