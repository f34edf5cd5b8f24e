"""The projection runtime's pieces and the folds' rules, with nothing running."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import redis.exceptions
from aiokafka.errors import KafkaConnectionError

from runwire.contract.events import (
    Event,
    RunCanceled,
    RunCompleted,
    RunFailed,
    RunStarted,
    RunStatus,
    RunStatusChanged,
    SessionCreated,
    SessionDeleted,
    SessionMetadataSet,
    ToolResult,
    ToolUse,
    Usage,
    UserMessage,
)
from runwire.errors import ConfigurationError, PublishError
from runwire.log.records import SourceRecord
from runwire.projections.migrations.runner import load_migrations, load_sql
from runwire.projections.runs.fold import Rejected, RunRow, apply, check
from runwire.projections.runs.projection import TABLES as RUN_TABLES
from runwire.projections.runtime.consumer import caused_by_record, is_transient
from runwire.projections.runtime.dead_letters import DeadLetter, dead_letter_headers
from runwire.projections.runtime.paging import BadPageToken, decode_token, encode_token
from runwire.projections.runtime.pg import upsert_rows, upsert_sql
from runwire.projections.runtime.pg_projection import PostgresProjection
from runwire.projections.runtime.protocol import ProjectionError, Rejection
from runwire.projections.runtime.rebuild import RebuildProgress
from runwire.projections.runtime.rules import identity, sort_out
from runwire.projections.sessions.fold import SessionRow, fold_batch
from runwire.projections.sessions.projection import TABLES as SESSION_TABLES
from runwire.projections.transcripts.projection import TranscriptProjection
from tests.support.consumed import Consumed

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def ev(payload: Any, seconds: int = 0, **kw: Any) -> Event:
    kw.setdefault("run_id", "r1")
    kw.setdefault("session_id", "s1")
    return Event.create(payload, occurred_at=T0 + timedelta(seconds=seconds), **kw)


def fold_run(*events: Event) -> RunRow:
    row: RunRow | None = None
    for offset, event in enumerate(events):
        check(row, event, b"r1")
        row = apply(row, event, 7, 100 + offset)
    assert row is not None
    return row


# -- run-status rules ------------------------------------------------------------


def test_a_run_row_counts_its_events_and_keeps_its_first_ending() -> None:
    row = fold_run(
        ev(
            RunStarted(agent_id="a", parent_run_id="p", labels={"priority": "high"}),
            0,
            user_id="u",
            labels={"tenant": "acme"},
        ),
        ev(RunStatusChanged(status=RunStatus.RUNNING), 1),
        ev(UserMessage(parts=["hi"]), 2, turn_id="t1"),
        ev(ToolUse(id="x", name="lookup"), 3),
        ev(ToolResult(tool_use_id="x", is_error=True), 4),
        ev(Usage(model="m", provider="p", input_tokens=5, output_tokens=7), 5),
        ev(Usage(model="m", provider="p", input_tokens=1, cache_read_tokens=2), 6),
        ev(RunFailed(error_kind="provider_error", message="no", retryable=True), 8),
        ev(RunCompleted(), 9),  # after the ending: counted, changes no status
    )
    assert (row.status, row.phase, row.status_reason) == ("failed", "failed", "provider_error")
    assert row.ended_at == T0 + timedelta(seconds=8)
    assert row.updated_at == T0 + timedelta(seconds=9)
    assert row.last_error is not None
    assert row.last_error["message"] == "no"
    assert (row.message_count, row.tool_call_count, row.tool_error_count) == (1, 1, 1)
    assert (row.input_tokens, row.output_tokens, row.cache_read_tokens) == (6, 7, 2)
    assert (row.agent_id, row.parent_run_id, row.user_id, row.turn_id) == ("a", "p", "u", "t1")
    assert row.labels == {"tenant": "acme", "priority": "high"}
    assert (row.log_partition, row.first_offset, row.last_offset, row.event_count) == (
        7,
        100,
        108,
        9,
    )
    assert row.pending_tool_uses == []


def test_a_status_change_to_an_ending_ends_the_run() -> None:
    row = fold_run(ev(RunStarted(), 0), ev(RunStatusChanged(status=RunStatus.CANCELED), 3))
    assert row.ended
    assert row.ended_at == T0 + timedelta(seconds=3)
    assert fold_run(ev(RunStarted()), ev(RunCanceled(reason="user"))).status_reason == "user"


@pytest.mark.parametrize(
    ("events", "key", "reason"),
    [
        ([ev(ToolResult(tool_use_id="x"))], b"r1", "unknown_tool_use"),
        (
            [ev(ToolUse(id="x", name="n")), ev(ToolUse(id="x", name="n"))],
            b"r1",
            "duplicate_tool_use_id",
        ),
        ([ev(UserMessage(parts=["a"]))], b"r2", "key_mismatch"),
        ([ev(SessionCreated(), run_id=None)], b"r1", "wrong_topic"),
        # The ledger's rule for it, so the transcript cache refuses it alike.
        ([ev(ToolResult(tool_use_id=""))], b"r1", "empty_tool_result_id"),
    ],
)
def test_run_events_that_cannot_apply_are_rejected(
    events: list[Event], key: bytes, reason: str
) -> None:
    row: RunRow | None = None
    *ok, last = events
    for offset, event in enumerate(ok):
        row = apply(row, event, 0, offset)
    with pytest.raises(Rejected) as caught:
        check(row, last, key)
    assert caught.value.reason == reason


# -- session-index rules ---------------------------------------------------------


def record(event: Event, topic: str, offset: int) -> SourceRecord:
    key = (event.session_id if topic == "s" else event.run_id) or ""
    return SourceRecord(topic, 0, offset, 0, key.encode(), b"", (), event)


def test_a_session_is_declared_updated_and_fed_by_runs() -> None:
    rows: dict[str, SessionRow] = {}
    tombstones: set[str] = set()
    records = [
        record(ev(RunStarted(), 5, run_id="r2", user_id="bob", tenant="t"), "r", 0),
        record(ev(RunStarted(), 1, run_id="r1", user_id="bob", tenant="t"), "r", 1),
        record(ev(UserMessage(parts=["x"]), 9, run_id="r2"), "r", 2),
    ]
    fold_batch(rows, tombstones, records, "s")
    row = rows["s1"]
    # Undeclared: the user comes from the first run, created_at from the first event.
    assert (row.user_id, row.tenant, row.created_at) == ("bob", "t", T0 + timedelta(seconds=1))
    assert (row.run_count, row.last_run_id, row.last_activity_at) == (
        2,
        "r2",
        T0 + timedelta(seconds=9),
    )
    fold_batch(
        rows,
        tombstones,
        [
            record(
                ev(SessionCreated(user_id="ada", metadata={"a": 1, "b": 2}), 0, run_id=None), "s", 0
            ),
            record(ev(SessionMetadataSet(key="b", value=None), 3, run_id=None), "s", 1),
        ],
        "s",
    )
    row = rows["s1"]
    assert (row.user_id, row.created_at, row.metadata) == ("ada", T0, {"a": 1})


def test_a_deleted_session_stays_deleted() -> None:
    rows: dict[str, SessionRow] = {}
    tombstones: set[str] = set()
    out = fold_batch(
        rows,
        tombstones,
        [
            record(ev(SessionCreated(), 0, run_id=None), "s", 0),
            record(ev(SessionDeleted(), 1, run_id=None), "s", 1),
            record(ev(RunStarted(), 2), "r", 0),
            record(ev(SessionCreated(), 3, run_id=None), "s", 2),
        ],
        "s",
    )
    assert rows == {}
    assert tombstones == {"s1"}
    assert set(out.deleted) == {"s1"}
    assert out.changed == set()


# -- runtime pieces -------------------------------------------------------------------


def test_page_tokens_round_trip_and_foreign_ones_are_refused() -> None:
    token = encode_token(T0, "r-1")
    assert decode_token(token) == (T0, "r-1")
    with pytest.raises(BadPageToken):
        decode_token("not-a-token")


def test_dead_letter_headers_name_source_consumer_and_error() -> None:
    rejection = Rejection(
        topic="t.run-events",
        partition=4,
        offset=99,
        key=b"r1",
        value=b"\x00bad",
        headers=(("runwire-type", b"tool_result"), ("runwire-dlq-reason", b"old")),
        reason="unknown_tool_use",
        error_class="Rejected",
        message="x" * 5000,
    )
    headers = dead_letter_headers(rejection, "runs")
    letter = DeadLetter.from_record(Consumed("t.dead-letters", 1, 7, 0, b"r1", b"\x00bad", headers))
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "t.run-events",
        4,
        99,
    )
    assert (letter.consumer, letter.reason, letter.error_class) == (
        "runs",
        "unknown_tool_use",
        "Rejected",
    )
    assert len(letter.message) <= 2000
    assert letter.original_headers == (("runwire-type", b"tool_result"),)
    assert letter.as_dict()["value_bytes"] == 4


class _OnPostgres:
    """What the runtime asks of a Postgres projection about its errors."""

    fault_of = PostgresProjection.fault_of


class _OnRedis:
    fault_of = TranscriptProjection.fault_of


def test_failures_are_told_apart_retry_dead_letter_or_stop() -> None:
    pg = _OnPostgres()
    assert is_transient(psycopg.OperationalError("connection lost"), pg)
    assert is_transient(psycopg.errors.UndefinedTable("not migrated yet"), pg)
    assert is_transient(KafkaConnectionError())
    assert is_transient(PublishError("broker gone"))
    assert caused_by_record(psycopg.errors.NumericValueOutOfRange("too big"), pg)
    assert caused_by_record(ValueError("a fold bug on one record"))
    assert not caused_by_record(psycopg.OperationalError("connection lost"), pg)
    assert not caused_by_record(ProjectionError("copy dropped"))
    assert not caused_by_record(ConfigurationError("bad dsn"))
    assert not caused_by_record(psycopg.errors.SyntaxError("a broken statement"), pg)
    assert not is_transient(psycopg.errors.SyntaxError("a broken statement"), pg)
    redis_side = _OnRedis()
    assert is_transient(redis.exceptions.ConnectionError("gone"), redis_side)
    assert not is_transient(redis.exceptions.ResponseError("script failed"), redis_side)
    assert not caused_by_record(redis.exceptions.ResponseError("script failed"), redis_side)


def test_rebuild_progress_reports_rate_and_eta() -> None:
    progress = RebuildProgress(generation=2, done=500, total=2000, elapsed=2.0)
    assert progress.rate == 250
    assert progress.eta == 6.0
    assert RebuildProgress(generation=2, done=0, total=10, elapsed=0).eta is None


def test_upserts_send_rows_as_one_json_text_and_keep_jsonb_nulls_apart() -> None:
    columns = [("id", "text"), ("doc", "jsonb"), ("n", "int"), ("at", "timestamptz")]
    statement = upsert_sql("t", columns, "id")
    assert "SELECT (r->>0)::text, r->1->0, (r->>2)::int, (r->>3)::timestamptz " in statement
    assert "FROM jsonb_array_elements(%s::jsonb) AS r " in statement
    assert statement.endswith(
        "ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc, n = EXCLUDED.n, at = EXCLUDED.at"
    )
    at = datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    # A jsonb value's text goes in as it is (exact numbers), wrapped so that a
    # JSON null (the value) and None (SQL NULL) stay different.
    (text,) = upsert_rows(
        [["a", '{"x":1.10}', 1, at], ["b", "null", None, None], ["c", None, 2, at]], columns
    )
    assert text == (
        '[["a",[{"x":1.10}],1,"2025-01-02T03:04:05.000006+00:00"],'
        '["b",[null],null,null],'
        '["c",null,2,"2025-01-02T03:04:05.000006+00:00"]]'
    )


@pytest.mark.parametrize("tables", [RUN_TABLES, SESSION_TABLES])
def test_migrations_create_every_table_of_a_copy(tables: Any) -> None:
    migrations = load_migrations(tables.package)
    assert [m.version for m in migrations] == sorted({m.version for m in migrations})
    rendered = "\n".join(m.render({"gen": "g7"}) for m in migrations)
    assert "{{" not in rendered
    for base in tables.tables:
        assert f"CREATE TABLE {base}__g7 " in rendered
    views = load_sql(tables.package, "view.sql").replace("{{gen}}", "g7")
    for view in tables.views:
        # security_invoker: the tables' row-level security applies to the reader.
        assert (
            f"CREATE VIEW {view} WITH (security_invoker = true) AS SELECT * FROM {view}__g7"
            in views
        )


def test_a_projection_that_names_its_decoder_gets_it_however_it_is_run() -> None:
    from runwire.contract.codec import Codec
    from runwire.projections.memory.fold import TombstoneDecoder, is_placeholder
    from runwire.projections.memory.projection import MemoryProjection
    from runwire.projections.runtime.consumer import decoder_for

    memory = object.__new__(MemoryProjection)  # only the class attribute matters here
    chosen = decoder_for(memory)
    assert isinstance(chosen, TombstoneDecoder)
    # A tombstone (no value) decodes to the placeholder the memory fold resolves,
    # where the default codec would dead-letter it.
    assert is_placeholder(chosen.decode(b""))

    @dataclass
    class Plain:
        name: str = "plain"

    assert isinstance(decoder_for(Plain()), Codec)  # type: ignore[arg-type]


def _rec(event: Event, offset: int, key: bytes) -> SourceRecord:
    return SourceRecord("t", 0, offset, 0, key, b"", (), event)


def test_ids_are_compared_within_their_stream_by_body() -> None:
    first = ev(UserMessage(parts=["hi"]), run_id="r1")
    other_body = first.model_copy(update={"payload": UserMessage(parts=["ho"])})
    other_stream = first.model_copy(update={"run_id": "r2"})
    recs = [
        _rec(first, 0, b"r1"),
        _rec(first, 1, b"r1"),  # a repeat in the batch
        _rec(other_body, 2, b"r1"),  # the same id with another body
        _rec(other_stream, 3, b"r2"),  # the same id in another run: another event
    ]
    out = sort_out(recs, lambda r: True, {})
    assert [r.offset for r in out.kept] == [0, 3]
    assert out.duplicates == 1
    assert [(c.offset, c.reason) for c in out.conflicts] == [(2, "conflicting_duplicate_event")]
    assert set(out.claims) == {identity(recs[0]), identity(recs[3])}
    # Against what is stored: a row kept before streams were (stream "", no digest)
    # names the id in every stream and matches any body.
    legacy = sort_out([_rec(other_body, 4, b"r1")], lambda r: True, {(first.event_id, ""): None})
    assert (legacy.duplicates, legacy.conflicts) == (1, [])
    stored = {identity(recs[0]): out.claims[identity(recs[0])]}
    again = sort_out([_rec(other_body, 5, b"r1")], lambda r: True, stored)
    assert [c.reason for c in again.conflicts] == ["conflicting_duplicate_event"]


def test_fresh_records_skip_what_is_stored_and_partitions_that_moved_back() -> None:
    from runwire.log.records import TopicPartition
    from runwire.projections.runtime.protocol import Batch
    from runwire.projections.runtime.rules import fresh_records, same_positions

    event = ev(UserMessage(parts=["hi"]))
    a, b, c = TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("u", 0)
    recs = [
        SourceRecord(tp.topic, tp.partition, offset, 0, b"r1", b"", (), event)
        for tp, offset in [(a, 5), (b, 3), (a, 6), (c, 0), (b, 4), (a, 7)]
    ]
    batch = Batch(records=recs, next_positions={a: 8, b: 5, c: 1}, expected={a: 5, b: 3, c: 0})
    # Stored where the runner read: everything is fresh.
    same = fresh_records(batch, {a: 5, b: 3})
    assert (same.records, same.moved, same.skipped) == (recs, frozenset(), 0)
    # Stored further on (another instance applied some): those are skipped.
    ahead = fresh_records(batch, {a: 7, b: 3})
    assert [(r.partition, r.offset) for r in ahead.records] == [(1, 3), (0, 0), (1, 4), (0, 7)]
    assert ahead.skipped == 2
    # Below the expectation (the store switched under the runner): nothing of it.
    back = fresh_records(batch, {a: 5, b: 1})
    assert back.moved == {b}
    assert [(r.partition, r.offset) for r in back.records] == [(0, 5), (0, 6), (0, 0), (0, 7)]
    assert back.skipped == 2
    # What lets the projection reuse its guess: absent means 0.
    assert same_positions({a: 5, b: 3, c: 0}, {a: 5, b: 3})
    assert not same_positions({a: 5, b: 3}, {a: 5, b: 3, c: 1})
    assert not same_positions({a: 5}, {a: 6})


def test_the_memory_fold_knows_the_memory_stream_and_its_rows_columns() -> None:
    from runwire.contract.events import EventType, Stream
    from runwire.projections.memory.fold import _MEMORY_PAYLOADS, Entry
    from runwire.projections.memory.projection import COLUMNS

    memory = {t for t in EventType if t.stream is Stream.MEMORY}
    assert {p.event_type for p in _MEMORY_PAYLOADS} == memory
    assert tuple(name for name, _ in COLUMNS) == Entry._fields


def test_batch_timings_reach_observers_until_removed_and_their_errors_stay_theirs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from runwire.projections.runtime import timings

    seen: list[timings.BatchTiming] = []

    def broken(_: timings.BatchTiming) -> None:
        raise RuntimeError("a bug in the observer")

    assert not timings.installed
    remove_broken = timings.observe(broken)
    remove = timings.observe(seen.append)
    timing = timings.BatchTiming("runs", (timings.Span("t", 0, 5, 9, 1.0, 1.5),), 2.0, 3.0)
    timings.report(timing)  # the broken observer's error is logged, not raised
    assert seen == [timing]
    assert "a bug in the observer" in caplog.text
    remove_broken()
    assert timings.installed
    remove()
    assert not timings.installed
    timings.report(timing)
    assert seen == [timing]


def test_a_fetch_keeps_its_spans_through_extend_and_without() -> None:
    from runwire.log.records import TopicPartition
    from runwire.projections.runtime.consumer import _Fetched
    from runwire.projections.runtime.timings import Span

    a, b = TopicPartition("t", 0), TopicPartition("t", 1)
    first = _Fetched(next_positions={a: 5}, expected={a: 0}, spans=[Span("t", 0, 0, 4, 1.0, 1.1)])
    first.extend(
        _Fetched(next_positions={b: 3}, expected={b: 0}, spans=[Span("t", 1, 0, 2, 2.0, 2.1)])
    )
    assert [s.partition for s in first.spans] == [0, 1]
    kept = first.without({a})
    assert kept is not None
    assert [s.partition for s in kept.spans] == [1]
