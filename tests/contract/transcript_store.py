"""The contract suite of :class:`runwire.projections.transcripts.store.TranscriptStore`.

Mixed into one test class per implementation (the in-memory twin in
tests/unit, Redis in tests/integration), which provide the ``store`` fixture
and ``expire`` (drop a body the way a TTL does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runwire.log.records import TopicPartition
from runwire.projections.transcripts.body import decode_messages
from runwire.projections.transcripts.keys import owner_tag
from runwire.projections.transcripts.store import (
    BodyAppend,
    Commit,
    Conflict,
    Guard,
    PositionWrite,
    RunBody,
    RunMeta,
    RunWrite,
    Slot,
    Snapshot,
    TranscriptStore,
    checksum,
    messages_json,
)
from runwire.transcript.messages import Message

TP = TopicPartition("run-events", 0)
TP1 = TopicPartition("run-events", 1)


def dumped_transcripts(dump: dict[str, Any]) -> dict[str, list[Message]]:
    """The messages of every run body in a :meth:`TranscriptStore.dump`."""
    return {
        key.removeprefix("run:"): decode_messages(
            messages_json(value["c"].encode(), value["o"].encode())
        )
        for key, value in dump.items()
        if key.startswith("run:")
    }


def body(tag: str) -> RunBody:
    return RunBody(
        committed=f'"{tag}"'.encode(),
        count=1,
        open=b"",
        state=f'{{"s":"{tag}"}}'.encode(),
        applied=f"e-{tag}=d\n".encode(),
    )


def create(
    run_id: str,
    last: int,
    *,
    session: str | None = "s1",
    first_ms: int = 1000,
    tag: str = "a",
    guard: Guard = Guard.EXACT,
    expected_last: int = -1,
    expected_body: bool = False,
    with_body: bool = True,
    first: int | None = None,
    owner: str = owner_tag(None, None),
) -> RunWrite:
    return RunWrite(
        run_id=run_id,
        guard=guard,
        expected_last=expected_last,
        expected_body=expected_body,
        meta=RunMeta(0, last if first is None else first, last, session, first_ms, owner),
        body=body(tag) if with_body else None,
    )


def commit(
    runs: Sequence[RunWrite] = (),
    positions: Sequence[PositionWrite] = (),
    *,
    generation: int = 0,
    slot: Slot = Slot.LIVE,
    deletions: Sequence[str] = (),
    erasures: Sequence[str] = (),
    clears: Sequence[tuple[str, int]] = (),
    endings: Sequence[str] = (),
    tenant: str | None = None,
) -> Commit:
    """A commit whose deletions, erasures, clears and endings are all ``tenant``'s."""
    return Commit(
        slot,
        generation,
        positions,
        runs,
        [(tenant, s) for s in deletions],
        [(tenant, r) for r in erasures],
        [(tenant, s, ms) for s, ms in clears],
        [(tenant, s) for s in endings],
    )


class TranscriptStoreContract:
    """Every ``TranscriptStore`` keeps these rules."""

    async def expire(self, store: TranscriptStore, generation: int, run_id: str) -> None:
        raise NotImplementedError

    async def test_a_commit_creates_runs_sessions_and_positions(
        self, store: TranscriptStore
    ) -> None:
        outcome = await store.commit(
            commit([create("r1", 5), create("r2", 7, first_ms=900)], [PositionWrite(TP, 0, 8)])
        )
        assert outcome.ok, outcome.conflict
        heads = await store.heads(0, ["r1", "r2", "nope"])
        assert heads["r1"].meta == RunMeta(0, 5, 5, "s1", 1000)
        assert heads["r1"].has_body
        assert heads["nope"].meta is None
        assert heads["nope"].last == -1
        assert await store.messages(0, ["r1", "nope"]) == {"r1": b'["a"]'}
        assert (await store.bodies(0, ["r2"]))["r2"] == body("a")
        assert await store.session_runs(0, "s1") == ["r2", "r1"]  # by first time
        assert await store.positions(0, [TP, TP1]) == {TP: 8, TP1: 0}
        assert await store.positions(0) == {TP: 8}

    async def test_a_snapshot_reads_positions_and_heads_together(
        self, store: TranscriptStore
    ) -> None:
        assert (await store.commit(commit([create("r1", 5)], [PositionWrite(TP, 0, 6)]))).ok
        positions, heads, deleted, erased = await store.snapshot(0, [TP, TP1], ["r1", "r2"], ["s7"])
        assert positions == {TP: 6, TP1: 0}
        assert heads["r1"].last == 5
        assert heads["r2"].meta is None
        assert deleted == erased == set()
        assert await store.snapshot(0, [], []) == Snapshot({}, {}, set(), set())

    async def test_a_stale_position_refuses_the_whole_commit(self, store: TranscriptStore) -> None:
        assert (await store.commit(commit([], [PositionWrite(TP, 0, 10)]))).ok
        before = await store.dump(0)
        outcome = await store.commit(
            commit([create("r1", 3)], [PositionWrite(TP1, 0, 4), PositionWrite(TP, 0, 4)])
        )
        assert not outcome.ok
        assert outcome.kind is Conflict.POSITION
        assert "position" in outcome.conflict
        assert await store.dump(0) == before

    async def test_exact_guard_needs_the_last_offset_and_body_that_were_read(
        self, store: TranscriptStore
    ) -> None:
        assert (await store.commit(commit([create("r1", 5)]))).ok
        stale = create("r1", 9, tag="b", expected_last=4, expected_body=True)
        assert (await store.commit(commit([stale]))).kind is Conflict.RUN
        no_body = create("r1", 9, tag="b", expected_last=5, expected_body=False)
        assert not (await store.commit(commit([no_body]))).ok
        good = create("r1", 9, tag="b", expected_last=5, expected_body=True)
        assert (await store.commit(commit([good]))).ok
        assert (await store.heads(0, ["r1"]))["r1"].last == 9
        assert await store.messages(0, ["r1"]) == {"r1": b'["b"]'}

    async def test_an_append_adds_messages_and_digests_and_replaces_the_open_part(
        self, store: TranscriptStore
    ) -> None:
        empty = RunBody(committed=b"", count=0, open=b'"o1"', state=b"{}", applied=b"e1=d\n")
        first = RunWrite("r1", Guard.EXACT, -1, False, RunMeta(0, 1, 1, "s1", 1), empty)
        assert (await store.commit(commit([first]))).ok
        assert await store.messages(0, ["r1"]) == {"r1": b'["o1"]'}
        for last, change in enumerate(
            [
                BodyAppend(committed=b'"m1"', count=1, open=b"", state=b"{}", applied=b"e2=d\n"),
                BodyAppend(committed=b"", count=0, open=b'"o2"', state=b'{"x":1}', applied=b""),
                BodyAppend(
                    committed=b'"m2","m3"', count=2, open=b'"o3"', state=b"{}", applied=b"e3=d\n"
                ),
            ],
            start=2,
        ):
            write = RunWrite(
                "r1", Guard.EXACT, last - 1, True, RunMeta(0, 1, last, "s1", 1), change
            )
            assert (await store.commit(commit([write]))).ok
        assert await store.messages(0, ["r1"]) == {"r1": b'["m1","m2","m3","o3"]'}
        assert (await store.bodies(0, ["r1"]))["r1"] == RunBody(
            committed=b'"m1","m2","m3"',
            count=3,
            open=b'"o3"',
            state=b"{}",
            applied=b"e1=d\ne2=d\ne3=d\n",
        )

    async def test_creating_a_run_that_exists_is_refused(self, store: TranscriptStore) -> None:
        assert (await store.commit(commit([create("r1", 5)]))).ok
        assert not (await store.commit(commit([create("r1", 6, tag="b")]))).ok
        assert await store.messages(0, ["r1"]) == {"r1": b'["a"]'}

    async def test_meta_is_fixed_at_creation(self, store: TranscriptStore) -> None:
        assert (await store.commit(commit([create("r1", 5, first=2)]))).ok
        later = create(
            "r1", 8, session="other", first_ms=5, first=7, expected_last=5, expected_body=True
        )
        assert (await store.commit(commit([later]))).ok
        meta = (await store.heads(0, ["r1"]))["r1"].meta
        assert meta == RunMeta(0, 2, 8, "s1", 1000)
        assert await store.session_runs(0, "other") == []

    async def test_a_write_without_body_moves_only_the_last_offset(
        self, store: TranscriptStore
    ) -> None:
        assert (await store.commit(commit([create("r1", 5)]))).ok
        await self.expire(store, 0, "r1")
        head = (await store.heads(0, ["r1"]))["r1"]
        assert head.last == 5
        assert not head.has_body
        cold = create("r1", 9, expected_last=5, expected_body=False, with_body=False)
        assert (await store.commit(commit([cold]))).ok
        head = (await store.heads(0, ["r1"]))["r1"]
        assert head.last == 9
        assert not head.has_body
        assert await store.messages(0, ["r1"]) == {}

    async def test_a_fill_never_replaces_newer_data(self, store: TranscriptStore) -> None:
        assert (await store.commit(commit([create("r1", 5)]))).ok
        older = create("r1", 4, tag="old", guard=Guard.FILL)
        same = create("r1", 5, tag="same", guard=Guard.FILL)
        assert not (await store.commit(commit([older]))).ok
        assert not (await store.commit(commit([same]))).ok  # same offset, body present
        await self.expire(store, 0, "r1")
        assert not (await store.commit(commit([older]))).ok
        assert (await store.commit(commit([same]))).ok  # same offset, body gone: refill
        newer = create("r1", 7, tag="new", guard=Guard.FILL)
        assert (await store.commit(commit([newer]))).ok
        assert await store.messages(0, ["r1"]) == {"r1": b'["new"]'}
        assert (await store.heads(0, ["r1"]))["r1"].meta == RunMeta(0, 5, 7, "s1", 1000)

    async def test_a_fill_creates_an_unknown_run(self, store: TranscriptStore) -> None:
        fill = create("r9", 3, guard=Guard.FILL, session="s9")
        assert (await store.commit(commit([fill]))).ok
        assert await store.session_runs(0, "s9") == ["r9"]

    async def test_a_deletion_erases_the_sessions_runs_and_is_remembered(
        self, store: TranscriptStore
    ) -> None:
        runs = [create("r1", 1), create("r2", 2), create("r3", 3, session="s2")]
        assert (await store.commit(commit(runs, [PositionWrite(TP, 0, 4)]))).ok
        erase = commit([], [PositionWrite(TP1, 0, 1)], deletions=["s1", "never-seen"])
        assert (await store.commit(erase)).ok
        assert await store.positions(0, [TP1]) == {TP1: 1}  # in the same step
        heads = await store.heads(0, ["r1", "r2", "r3"])
        assert heads["r1"].meta is None
        assert heads["r2"].meta is None
        assert not heads["r1"].has_body
        assert await store.messages(0, ["r1", "r2", "r3"]) == {"r3": b'["a"]'}
        assert await store.session_runs(0, "s1") == []
        assert await store.session_runs(0, "s2") == ["r3"]
        assert await store.deleted(0, ["s1", "s2", "never-seen"]) == {"s1", "never-seen"}
        snap = await store.snapshot(0, [TP], ["r3", "r2", "r9"], ["s1"])
        assert snap.deleted == {"s1"}
        assert snap.erased == {"r2"}
        dump = await store.dump(0)
        assert dump["deleted"] == ["never-seen", "s1"]
        assert dump["erased"] == ["r1", "r2"]
        assert not [k for k in dump if k.endswith(("r1", "r2", ":s1"))], sorted(dump)
        again = commit([], [PositionWrite(TP1, 1, 2)], deletions=["s1"])
        assert (await store.commit(again)).ok  # idempotent
        assert {k: v for k, v in (await store.dump(0)).items() if k != "pos"} == {
            k: v for k, v in dump.items() if k != "pos"
        }

    async def test_a_run_write_of_a_deleted_session_is_refused_whole(
        self, store: TranscriptStore
    ) -> None:
        assert (await store.commit(commit(deletions=["s1"]))).ok
        before = await store.dump(0)
        for write in (
            create("r1", 5),  # the projector: a run event after the deletion
            create("r1", 5, guard=Guard.FILL),  # the miss path refilling it
        ):  # (r1 is of the deleted session s1)
            outcome = await store.commit(
                commit([create("r2", 1, session="s2"), write], [PositionWrite(TP, 0, 6)])
            )
            assert not outcome.ok
            assert outcome.kind is Conflict.DELETED, outcome.conflict
            assert await store.dump(0) == before
        assert (await store.commit(commit([create("r2", 1, session="s2")]))).ok

    async def test_a_session_counts_its_runs_by_owner(self, store: TranscriptStore) -> None:
        alice, bob = owner_tag("alice", None), owner_tag("bob", "t2")
        runs = [
            create("r1", 1, owner=alice),
            create("r2", 2, owner=bob),
            create("r3", 3, owner=alice),
        ]
        assert (await store.commit(commit(runs))).ok
        later = create("r1", 4, expected_last=1, expected_body=True, owner=bob)
        assert (await store.commit(commit([later]))).ok
        dump = await store.dump(0)
        assert dump["owners:s1"] == {alice: "2", bob: "1"}  # a run's first owner counts
        assert dump["meta:r1"]["u"] == alice
        assert (await store.snapshot(0, [], ["r2"])).heads["r2"].meta == runs[1].meta
        assert (await store.commit(commit(erasures=["r2"]))).ok
        assert (await store.dump(0))["owners:s1"] == {alice: "2"}
        assert (await store.commit(commit(deletions=["s1"]))).ok
        assert "owners:s1" not in await store.dump(0)

    async def test_an_erased_run_is_gone_and_never_written_again(
        self, store: TranscriptStore
    ) -> None:
        runs = [create("r1", 1, session=None), create("r2", 2), create("r3", 3)]
        assert (await store.commit(commit(runs))).ok
        assert (await store.commit(commit(erasures=["r1", "r2", "r9"]))).ok
        assert await store.session_runs(0, "s1") == ["r3"]  # out of its session's index
        assert (await store.snapshot(0, [], ["r1", "r2", "r3", "r9"])).erased == {
            "r1",
            "r2",
            "r9",
        }
        before = await store.dump(0)
        assert set(before) == {"erased", "meta:r3", "run:r3", "session:s1", "owners:s1"}
        assert before["owners:s1"] == {owner_tag(None, None): "1"}
        for write in (
            create("r1", 5, session=None),
            create("r2", 5, guard=Guard.FILL, session="s2"),
        ):
            outcome = await store.commit(commit([write]))
            assert outcome.kind is Conflict.DELETED, outcome.conflict
        assert await store.dump(0) == before
        assert (await store.commit(commit(erasures=["r3"]))).ok
        emptied = await store.dump(0)
        assert "session:s1" not in emptied  # an emptied index goes
        assert "owners:s1" not in emptied  # and so do its owner counts

    async def test_a_run_written_with_its_sessions_deletion_goes_too(
        self, store: TranscriptStore
    ) -> None:
        outcome = await store.commit(commit([create("r1", 1)], deletions=["s1"]))
        assert outcome.ok
        assert (await store.heads(0, ["r1"]))["r1"].meta is None
        assert await store.dump(0) == {"deleted": ["s1"], "erased": ["r1"]}

    async def test_a_clear_is_recorded_with_the_positions_and_the_last_one_wins(
        self, store: TranscriptStore
    ) -> None:
        assert (await store.commit(commit([create("r1", 1)]))).ok
        assert (await store.session_state(0, "s1")).cleared_ms is None
        clear = commit([], [PositionWrite(TP1, 0, 2)], clears=[("s1", 5000), ("s1", 6000)])
        assert (await store.commit(clear)).ok
        assert await store.positions(0, [TP1]) == {TP1: 2}  # in the same step
        state = await store.session_state(0, "s1")
        assert state.cleared_ms == 6000
        assert not state.deleted
        assert (await store.dump(0))["cleared"] == {"s1": "6000"}
        # A refused commit records no clear.
        stale = commit([], [PositionWrite(TP1, 0, 3)], clears=[("s1", 9000)])
        assert not (await store.commit(stale)).ok
        assert (await store.session_state(0, "s1")).cleared_ms == 6000
        # A deleted session's clear is not recorded; clears belong to their generation.
        assert (await store.commit(commit(deletions=["s2"], clears=[("s2", 7000)]))).ok
        assert (await store.session_state(0, "s2")).cleared_ms is None
        assert (await store.session_state(0, "s2")).deleted
        assert (await store.commit(commit(deletions=["s1"]))).ok  # a deletion drops it
        assert (await store.session_state(0, "s1")).cleared_ms is None
        assert "cleared" not in await store.dump(0)
        building, _ = await store.begin_generation()
        assert (await store.session_state(building, "s1")).cleared_ms is None

    async def test_an_ending_is_recorded_with_the_positions_and_a_deletion_drops_it(
        self, store: TranscriptStore
    ) -> None:
        assert (await store.commit(commit([create("r1", 1)]))).ok
        before = await store.session_state(0, "s1")
        assert not before.ended
        end = commit([], [PositionWrite(TP1, 0, 2)], endings=["s1"])
        assert (await store.commit(end)).ok
        assert await store.positions(0, [TP1]) == {TP1: 2}  # in the same step
        after = await store.session_state(0, "s1")
        assert after.ended
        assert after.version > before.version  # a read that held the session sees it
        assert (await store.dump(0))["ended"] == ["s1"]
        # Ending again changes nothing; a refused commit records no ending.
        assert (await store.commit(commit(endings=["s1"]))).ok
        assert (await store.session_state(0, "s1")).version == after.version
        stale = commit([], [PositionWrite(TP1, 0, 3)], endings=["s3"])
        assert not (await store.commit(stale)).ok
        assert not (await store.session_state(0, "s3")).ended
        # Endings are per tenant and per generation.
        assert not (await store.session_state(0, "s1", tenant="acme")).ended
        building, _ = await store.begin_generation()
        assert not (await store.session_state(building, "s1")).ended
        # A deleted session's ending is not recorded, and a deletion drops it.
        assert (await store.commit(commit(deletions=["s2"], endings=["s2"]))).ok
        assert not (await store.session_state(0, "s2")).ended
        assert (await store.commit(commit(deletions=["s1"]))).ok
        assert not (await store.session_state(0, "s1")).ended
        assert "ended" not in await store.dump(0)

    async def test_every_change_of_a_session_gives_it_a_new_version(
        self, store: TranscriptStore
    ) -> None:
        assert (await store.session_state(0, "s1")).version == 0
        seen: list[int] = []

        async def changed() -> None:
            version = (await store.session_state(0, "s1")).version
            assert not seen or version > seen[-1], (version, seen)
            seen.append(version)

        assert (await store.commit(commit([create("r1", 1)]))).ok
        await changed()
        append = RunWrite(
            "r1",
            Guard.EXACT,
            1,
            True,
            RunMeta(0, 1, 2, "s1", 1000),
            BodyAppend(b'"b"', 1, b"", b"{}", b"e2=d\n"),
        )
        assert (await store.commit(commit([append]))).ok
        await changed()
        # Only the last offset moves (no body): still a change of the run's meta.
        assert (
            await store.commit(
                commit([create("r1", 3, expected_last=2, expected_body=True, with_body=False)])
            )
        ).ok
        await changed()
        assert (await store.commit(commit(clears=[("s1", 5)]))).ok
        await changed()
        assert (await store.commit(commit([create("r2", 4, first_ms=2000)]))).ok
        await changed()
        assert (await store.commit(commit(erasures=["r2"]))).ok
        await changed()
        # Another session's change, or a commit of positions only, leaves it.
        assert (await store.commit(commit([create("r3", 5, session="s2")]))).ok
        assert (await store.commit(commit([], [PositionWrite(TP, 0, 9)]))).ok
        assert (await store.session_state(0, "s1")).version == seen[-1]
        assert (await store.commit(commit(deletions=["s1"]))).ok
        await changed()
        assert "ver" not in await store.dump(0)  # not data: a rebuild numbers them anew

    async def test_deletions_belong_to_their_generation(self, store: TranscriptStore) -> None:
        assert (await store.commit(commit([create("r1", 1)], deletions=["s1"]))).ok
        building, _ = await store.begin_generation()
        assert await store.deleted(building, ["s1"]) == set()
        assert (
            await store.commit(commit([create("r1", 1)], generation=building, slot=Slot.BUILDING))
        ).ok
        assert await store.deleted(0, ["s1"]) == {"s1"}

    async def test_a_run_without_session_has_no_index(self, store: TranscriptStore) -> None:
        assert (await store.commit(commit([create("r1", 1, session=None)]))).ok
        meta = (await store.heads(0, ["r1"]))["r1"].meta
        assert meta is not None
        assert meta.session_id is None

    async def test_a_commit_to_a_generation_that_is_not_live_is_refused(
        self, store: TranscriptStore
    ) -> None:
        assert await store.generation(Slot.LIVE) == 0
        assert await store.generation(Slot.BUILDING) is None
        refused = await store.commit(commit([create("r1", 1)], generation=1))
        assert refused.kind is Conflict.GENERATION
        assert not (
            await store.commit(commit([create("r1", 1)], generation=0, slot=Slot.BUILDING))
        ).ok
        assert await store.dump(1) == {}

    async def test_generations_begin_resume_restart_switch_and_drop(
        self, store: TranscriptStore
    ) -> None:
        assert (await store.commit(commit([create("r1", 5)], [PositionWrite(TP, 0, 6)]))).ok
        assert await store.begin_generation() == (1, None)
        assert await store.begin_generation() == (1, None)  # resumed
        assert await store.begin_generation(restart=True) == (2, 1)
        assert await store.generation(Slot.BUILDING) == 2
        # behind the live copy: no switch
        build = commit(
            [create("r1", 5)], [PositionWrite(TP, 0, 3)], generation=2, slot=Slot.BUILDING
        )
        assert (await store.commit(build)).ok
        assert await store.switch(2) is None
        assert await store.switch(1) is None  # not the building one
        catch_up = commit([], [PositionWrite(TP, 3, 6)], generation=2, slot=Slot.BUILDING)
        assert (await store.commit(catch_up)).ok
        assert await store.switch(2) == 0
        assert await store.generation(Slot.LIVE) == 2
        assert await store.generation(Slot.BUILDING) is None
        # the old live copy refuses writes once it is not live any more
        assert not (await store.commit(commit([create("r2", 1)], generation=0))).ok
        await store.drop_generation(0)
        assert await store.dump(0) == {}
        assert await store.messages(2, ["r1"]) == {"r1": b'["a"]'}
        assert await store.begin_generation() == (3, None)

    async def test_abandon_only_clears_the_named_generation(self, store: TranscriptStore) -> None:
        building, _ = await store.begin_generation()
        await store.abandon(building + 1)
        assert await store.generation(Slot.BUILDING) == building
        await store.abandon(building)
        assert await store.generation(Slot.BUILDING) is None

    async def test_dump_and_checksum_show_every_write(self, store: TranscriptStore) -> None:
        assert (await store.commit(commit([create("r1", 5)], [PositionWrite(TP, 0, 6)]))).ok
        dump = await store.dump(0)
        assert dump == {
            "meta:r1": {"f": "5", "l": "5", "p": "0", "s": "s1", "t": "1000", "u": "[null,null]"},
            "owners:s1": {"[null,null]": "1"},
            "pos": {"run-events/0": "6"},
            "run:r1": {"a": "e-a=d\n", "c": '"a"', "n": "1", "o": "", "st": '{"s":"a"}'},
            "session:s1": [["r1", 1000.0]],
        }
        before = checksum(dump)
        assert (await store.commit(commit([], [PositionWrite(TP, 6, 7)]))).ok
        assert checksum(await store.dump(0)) != before
