"""The single-writer fence in the session index: the twin folds random claims and
releases (random batches, topics interleaved, redeliveries) exactly as the
independently written reference does, and the rules hold on hand-made cases."""

from __future__ import annotations

import random
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pytest

from runwire.contract.events import (
    Event,
    RunStarted,
    SessionCreated,
    SessionWriterClaimed,
    SessionWriterReleased,
)
from runwire.projections.sessions.fold import BOOKKEEPING, SessionRow, apply_session_event
from runwire.projections.sessions.inmem import InMemorySessions
from tests.support.reference import fold_sessions
from tests.unit.test_projection_twins import RUN_TOPIC, SESSION_TOPIC, feed, log_of

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _session_event(sid: str, payload: object, at: datetime) -> Event:
    return Event.create(payload, session_id=sid, occurred_at=at)  # type: ignore[arg-type]


def _random_log(rng: random.Random, sessions: int = 30) -> list[Event]:
    streams: list[list[Event]] = []
    for n in range(sessions):
        sid = f"s-{n}"
        at = T0 + timedelta(seconds=n)
        stream = [_session_event(sid, SessionCreated(user_id="u"), at)]
        run = Event.create(RunStarted(), run_id=f"r-{n}", session_id=sid, occurred_at=at)
        streams.append([run])
        for _ in range(rng.randint(0, 12)):
            at += timedelta(milliseconds=rng.choice([1, 5, 50, 2000]))
            holder = rng.choice(["w0", "w1", "w2", "r-1"])
            if rng.random() < 0.6:
                payload: object = SessionWriterClaimed(
                    holder=holder,
                    expected_version=rng.choice([None, 0, 1, 2, 3]),
                    lease_ms=rng.choice([None, 10, 1000, 60_000]),
                )
            else:
                payload = SessionWriterReleased(holder=holder, committed=rng.random() < 0.8)
            stream.append(_session_event(sid, payload, at))
        streams.append(stream)
    # Interleave the sessions' streams, each kept in its order (one partition per key).
    out: list[Event] = []
    while streams:
        stream = rng.choice(streams)
        out.append(stream.pop(0))
        if not stream:
            streams.remove(stream)
    return out


@pytest.mark.parametrize("seed", range(5))
async def test_the_twin_folds_claims_like_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    records = log_of(_random_log(rng), {RUN_TOPIC: 4, SESSION_TOPIC: 3})
    sessions = InMemorySessions(SESSION_TOPIC, RUN_TOPIC)
    await feed(sessions, records, rng)
    expected = fold_sessions(records, SESSION_TOPIC)
    actual = {
        k: {c: v for c, v in asdict(row).items() if c not in BOOKKEEPING}
        for k, row in sessions.state.rows.items()
    }
    assert actual == expected.rows
    versions = [row["version"] for row in expected.rows.values()]
    assert sum(versions) >= 3, "the log does move versions"
    assert any(row["writer"] for row in expected.rows.values()), "and leaves some claims open"


def _fold(*payloads: tuple[object, float]) -> SessionRow:
    row = SessionRow.new("s", T0)
    for payload, seconds in payloads:
        apply_session_event(row, _session_event("s", payload, T0 + timedelta(seconds=seconds)))
    return row


def test_first_claim_at_a_version_wins() -> None:
    row = _fold(
        (SessionWriterClaimed(holder="a", expected_version=0, lease_ms=30_000), 0),
        (SessionWriterClaimed(holder="b", expected_version=0, lease_ms=30_000), 0.1),
    )
    assert (row.writer, row.version) == ("a", 0)
    row = _fold(
        (SessionWriterClaimed(holder="a", expected_version=0, lease_ms=30_000), 0),
        (SessionWriterReleased(holder="b"), 0.1),  # not the holder: nothing
        (SessionWriterReleased(holder="a"), 0.2),
        (SessionWriterClaimed(holder="b", expected_version=0), 0.3),  # stale version
    )
    assert (row.writer, row.version, row.version_by) == (None, 1, "a")


def test_a_lease_lapses_and_no_lease_holds() -> None:
    lapsed = _fold(
        (SessionWriterClaimed(holder="a", lease_ms=1000), 0),
        (SessionWriterClaimed(holder="b", lease_ms=1000), 1.0),  # at the lapse: taken
    )
    assert lapsed.writer == "b"
    assert lapsed.writer_until == T0 + timedelta(seconds=2)
    held = _fold(
        (SessionWriterClaimed(holder="run-1"), 0),
        (SessionWriterClaimed(holder="b", lease_ms=1000), 3600),
    )
    assert (held.writer, held.writer_until) == ("run-1", None)


def test_an_uncommitted_release_keeps_the_version() -> None:
    row = _fold(
        (SessionWriterClaimed(holder="a", expected_version=0, lease_ms=1000), 0),
        (SessionWriterReleased(holder="a", committed=False), 0.5),
    )
    assert (row.writer, row.version, row.version_by) == (None, 0, None)
