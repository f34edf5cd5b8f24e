"""The usage read model, once for every implementation (Postgres and the in-memory twin).

A test module subclasses :class:`UsageContract` and provides a ``rig``
fixture: a :class:`Rig` with the projection (fed batches here, as the
projector would) and the reader over the same store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from runwire.contract.events import Event, RunStarted, SessionDeleted, ToolUse, Usage
from runwire.contract.routing import record_key
from runwire.errors import InputError
from runwire.log.records import SourceRecord, TopicPartition
from runwire.projections.runtime.protocol import Batch, Projection
from runwire.projections.usage.reader import Tokens, UsageGroup, UsageSource
from tests.contract.projections import RecordingSink

DAY = date(2026, 3, 2)


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def usage(
    run: str,
    *,
    session: str | None = "s1",
    user: str | None = "u1",
    agent: str | None = "a1",
    tenant: str | None = None,
    model: str = "m-big",
    provider: str = "openai",
    day: date = DAY,
    hour: int = 12,
    tokens: tuple[int, int, int, int, int] = (100, 10, 0, 0, 0),
) -> Event:
    i, o, cr, cw, r = tokens
    return Event.create(
        Usage(
            model=model,
            provider=provider,
            input_tokens=i,
            output_tokens=o,
            cache_read_tokens=cr,
            cache_write_tokens=cw,
            reasoning_tokens=r,
        ),
        run_id=run,
        session_id=session,
        user_id=user,
        agent_id=agent,
        tenant=tenant,
        occurred_at=at(day, hour),
    )


def deletion(session: str) -> Event:
    return Event.create(SessionDeleted(), session_id=session)


def usage_scenario() -> tuple[list[Event], Event]:
    """Run events a usage projection applies in order, and one it must reject."""
    good = [
        Event.create(RunStarted(agent_id="a1"), run_id="r1", session_id="s1", user_id="u1"),
        usage("r1"),
        Event.create(ToolUse(id="t1", name="x"), run_id="r1", session_id="s1"),
        usage("r1", tokens=(5, 6, 7, 8, 2)),
        usage("r1", model="m-small", day=DAY + timedelta(days=1)),
    ]
    # A session event on the run-events topic is in the wrong place.
    return good, Event.create(SessionDeleted(), session_id="s1")


@dataclass
class Rig:
    """One implementation: ``projection`` writes, ``source`` reads the same store."""

    projection: Projection
    source: UsageSource
    run_topic: str
    session_topic: str
    offsets: dict[TopicPartition, int] = field(default_factory=dict)

    def tp(self, event: Event) -> TopicPartition:
        topic = self.session_topic if event.run_id is None else self.run_topic
        return TopicPartition(topic, 0)

    async def feed(self, *batches: Sequence[Event]) -> None:
        """Apply each batch as the projector would, at the next offsets of its partitions."""
        for events in batches:
            records: list[SourceRecord] = []
            expected: dict[TopicPartition, int] = {}
            for e in events:
                tp = self.tp(e)
                offset = self.offsets.get(tp, 0)
                expected.setdefault(tp, offset)
                records.append(
                    SourceRecord(tp.topic, tp.partition, offset, 0, record_key(e), b"", (), e)
                )
                self.offsets[tp] = offset + 1
            nxt = {tp: self.offsets[tp] for tp in expected}
            sink = RecordingSink()
            await self.projection.apply(
                Batch(records=records, next_positions=nxt, expected=expected), sink
            )
            assert sink.sent == []


def keys(groups: list[UsageGroup]) -> list[str | None]:
    return [g.key for g in groups]


def tokens(groups: list[UsageGroup]) -> dict[str | None, Tokens]:
    return {g.key: g.tokens for g in groups}


class UsageContract:
    @pytest.fixture
    def rig(self) -> Any:
        raise NotImplementedError("each implementation provides its rig")

    async def test_sums_per_dimension(self, rig: Rig) -> None:
        await rig.feed(
            [
                usage("r1", tokens=(100, 10, 50, 5, 3)),
                usage("r1", tokens=(200, 20, 0, 0, 7)),
                usage("r2", session="s2", agent="a2", model="m-small", provider="anthropic"),
            ],
            [usage("r3", session="s2", user="u2", agent="a2", day=DAY + timedelta(days=1))],
        )
        by_run = tokens(await rig.source.summary(by="run"))
        assert by_run["r1"] == Tokens(2, 300, 30, 50, 5, 10)
        assert by_run["r2"] == Tokens(1, 100, 10, 0, 0, 0)
        assert tokens(await rig.source.summary(by="session")) == {
            "s1": Tokens(2, 300, 30, 50, 5, 10),
            "s2": Tokens(2, 200, 20, 0, 0, 0),
        }
        assert tokens(await rig.source.summary(by="user")) == {
            "u1": Tokens(3, 400, 40, 50, 5, 10),
            "u2": Tokens(1, 100, 10, 0, 0, 0),
        }
        assert keys(await rig.source.summary(by="agent")) == ["a1", "a2"]
        assert tokens(await rig.source.summary(by="model")) == {
            "m-big": Tokens(3, 400, 40, 50, 5, 10),
            "m-small": Tokens(1, 100, 10, 0, 0, 0),
        }
        assert tokens(await rig.source.summary(by="provider"))["anthropic"].calls == 1
        assert tokens(await rig.source.summary(by="day")) == {
            DAY.isoformat(): Tokens(3, 400, 40, 50, 5, 10),
            (DAY + timedelta(days=1)).isoformat(): Tokens(1, 100, 10, 0, 0, 0),
        }

    async def test_a_group_is_split_by_model_and_provider(self, rig: Rig) -> None:
        await rig.feed(
            [
                usage("r1", model="m-big", tokens=(1, 2, 0, 0, 0)),
                usage("r1", model="m-small", tokens=(3, 4, 0, 0, 0)),
                usage("r1", model="m-small", provider="bedrock", tokens=(5, 6, 0, 0, 0)),
            ]
        )
        (group,) = await rig.source.summary(by="user")
        assert [(m.model, m.provider, m.tokens.input_tokens) for m in group.models] == [
            ("m-big", "openai", 1),
            ("m-small", "bedrock", 5),
            ("m-small", "openai", 3),
        ]
        assert group.tokens == Tokens(3, 9, 12, 0, 0, 0)

    async def test_a_rows_attributes_are_the_first_its_events_name(self, rig: Rig) -> None:
        await rig.feed([usage("r1", agent=None, user=None)], [usage("r1", agent="a1", user="u1")])
        await rig.feed([usage("r1", agent="a9", user="u9")])
        assert tokens(await rig.source.summary(by="agent")) == {"a1": Tokens(3, 300, 30)}
        assert keys(await rig.source.summary(by="user")) == ["u1"]

    async def test_usage_without_a_key_is_its_own_group_last(self, rig: Rig) -> None:
        await rig.feed([usage("r1", user=None), usage("r2", user="u2", tokens=(1, 1, 0, 0, 0))])
        # Most tokens first: the keyless group has more; on a tie it comes last.
        assert keys(await rig.source.summary(by="user")) == [None, "u2"]
        await rig.feed([usage("r3", user="u3", tokens=(100, 10, 0, 0, 0))])
        assert keys(await rig.source.summary(by="user")) == ["u3", None, "u2"]

    async def test_most_tokens_first_ties_by_key_and_limit(self, rig: Rig) -> None:
        await rig.feed(
            [
                usage("r-b", tokens=(10, 0, 0, 0, 0)),
                usage("r-a", tokens=(10, 0, 0, 0, 0)),
                usage("r-c", tokens=(5, 0, 0, 0, 0)),
                usage("r-d", tokens=(50, 0, 0, 0, 0)),
            ]
        )
        assert keys(await rig.source.summary(by="run")) == ["r-d", "r-a", "r-b", "r-c"]
        assert keys(await rig.source.summary(by="run", limit=2)) == ["r-d", "r-a"]

    async def test_days_oldest_first_and_bounded(self, rig: Rig) -> None:
        days = [DAY + timedelta(days=i) for i in range(5)]
        await rig.feed([usage("r1", day=d, hour=23) for d in days])
        assert keys(await rig.source.summary(by="day")) == [d.isoformat() for d in days]
        assert keys(await rig.source.summary(by="day", limit=2)) == [
            d.isoformat() for d in days[-2:]
        ]
        window = await rig.source.summary(by="day", since=days[1], until=days[3])
        assert keys(window) == [days[1].isoformat(), days[2].isoformat()]
        (run,) = await rig.source.summary(by="run", since=days[3])
        assert run.tokens.calls == 2

    async def test_a_day_is_the_utc_day(self, rig: Rig) -> None:
        late = Event.create(
            Usage(model="m", provider="p", input_tokens=1),
            run_id="r1",
            session_id="s1",
            occurred_at=datetime(2026, 3, 2, 23, 30, tzinfo=UTC),
        )
        early_next = Event.create(
            Usage(model="m", provider="p", input_tokens=2),
            run_id="r1",
            session_id="s1",
            # 00:30 UTC on the 3rd, given with a -05:00 offset (still the 2nd there).
            occurred_at=datetime(2026, 3, 2, 19, 30, tzinfo=timezone(timedelta(hours=-5))),
        )
        await rig.feed([late, early_next])
        assert tokens(await rig.source.summary(by="day")) == {
            "2026-03-02": Tokens(1, 1),
            "2026-03-03": Tokens(1, 2),
        }

    async def test_user_and_tenant_filters(self, rig: Rig) -> None:
        await rig.feed(
            [
                usage("r1", user="u1", tenant="t1"),
                usage("r2", user="u2", tenant="t1"),
                usage("r3", user="u1", tenant="t2"),
                usage("r4", user="u1", tenant=None),
            ]
        )
        assert keys(await rig.source.summary(by="run", user_id="u2")) == ["r2"]
        assert sorted(str(k) for k in keys(await rig.source.summary(by="run", tenant="t1"))) == [
            "r1",
            "r2",
        ]
        assert keys(await rig.source.summary(by="run", user_id="u1", tenant="t2")) == ["r3"]
        assert await rig.source.summary(by="run", user_id="nobody") == []

    async def test_a_republished_event_counts_once(self, rig: Rig) -> None:
        first = usage("r1")
        await rig.feed([first, first], [first])
        assert tokens(await rig.source.summary(by="run")) == {"r1": Tokens(1, 100, 10)}

    async def test_a_deleted_sessions_usage_goes_and_stays_gone(self, rig: Rig) -> None:
        await rig.feed([usage("r1", session="s1"), usage("r2", session="s2")])
        await rig.feed([deletion("s1")])
        assert keys(await rig.source.summary(by="session")) == ["s2"]
        # Later (or replayed) usage naming the session is dropped, not dead-lettered.
        await rig.feed([usage("r1", session="s1"), usage("r5", session="s1")])
        assert keys(await rig.source.summary(by="session")) == ["s2"]

    async def test_deletion_before_usage_in_one_batch_or_after(self, rig: Rig) -> None:
        await rig.feed([usage("r1", session="s1"), deletion("s1"), usage("r2", session="s1")])
        await rig.feed([deletion("s3"), usage("r3", session="s3"), usage("r4", session="s4")])
        assert keys(await rig.source.summary(by="session")) == ["s4"]

    async def test_usage_of_no_session_stays_when_a_session_goes(self, rig: Rig) -> None:
        await rig.feed([usage("r1", session=None), deletion("s1")])
        assert keys(await rig.source.summary(by="run")) == ["r1"]

    @pytest.mark.parametrize(("by", "limit"), [("tenant", 10), ("run", 0), ("run", 10_001)])
    async def test_a_bad_query_names_what_is_wrong(self, rig: Rig, by: Any, limit: int) -> None:
        with pytest.raises(InputError) as caught:
            await rig.source.summary(by=by, limit=limit)
        assert caught.value.field == ("by" if by == "tenant" else "limit")
