"""The read API (RunStore, SessionIndex, wait_for) and the CLI over it."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner

from runwire.cli.main import app
from runwire.contract.events import Event, RunStarted, SessionCreated, UserMessage
from runwire.errors import NotFoundError
from runwire.log import Position, Publisher
from runwire.projections.runs.reader import RunStore
from runwire.projections.runtime.pg import Pool, open_pool
from runwire.projections.runtime.waiting import NotCaughtUpError
from runwire.projections.sessions.reader import SessionIndex
from runwire.settings import Settings
from tests.integration.projection_support import as_records, caught_up, projections, running
from tests.support.reference import Folded, fold_runs, fold_sessions
from tests.support.workload import bulk_publish, synthetic_events


async def test_wait_for_gives_read_your_writes(settings: Settings, pool: Pool) -> None:
    runs, sessions = projections(pool, settings)
    # The workload's runs are of several tenants: read as the admin.
    store = RunStore(pool, settings, admin=True)
    index = SessionIndex(pool, settings, admin=True)
    await store.prepare()
    await index.prepare()
    created = Event.create(SessionCreated(user_id="ada"), session_id="s-ryw", user_id="ada")
    started = Event.create(RunStarted(), run_id="r-ryw", session_id="s-ryw", user_id="ada")
    asked = Event.create(UserMessage(parts=["hi"]), run_id="r-ryw", session_id="s-ryw")
    async with Publisher(settings) as publisher:
        # Nothing projects yet: waiting times out, saying where the projection is.
        early = await publisher.publish(created)
        with pytest.raises(NotCaughtUpError, match="not yet past offset"):
            await index.wait_for(early, timeout=0.3)
        async with running(runs, settings), running(sessions, settings):
            await publisher.publish(started)
            position = await publisher.publish(asked)
            await store.wait_for(position, timeout=20)
            run = await store.get("r-ryw")
            assert run.message_count == 1
            assert run.status == "pending"
            await index.wait_for(early, timeout=20)
            assert (await index.get("s-ryw")).user_id == "ada"
    with pytest.raises(NotFoundError):
        await store.get("r-nope")
    with pytest.raises(ValueError, match="reads"):
        # A topic the run-status projection does not read.
        await store.wait_for(Position(settings.memory, 0, early.offset), timeout=0.1)


@pytest_asyncio.fixture(loop_scope="session")
async def projected(settings: Settings, pool: Pool) -> tuple[Folded, Folded]:
    """A small workload, projected; returns the reference folds of runs and sessions."""
    workload = synthetic_events(runs=120, sessions=25, events=2_500, seed=11)
    runs, sessions = projections(pool, settings)
    await runs.prepare()
    await sessions.prepare()
    placed = await bulk_publish(settings, workload.events)
    async with running(runs, settings), running(sessions, settings):
        await caught_up(runs, settings)
        await caught_up(sessions, settings)
    records = as_records(workload.events, placed)
    return fold_runs(records, settings.run_events, settings.session_events), fold_sessions(
        records, settings.session_events
    )


async def test_run_queries_filter_order_and_page(
    settings: Settings, pool: Pool, projected: tuple[Folded, Folded]
) -> None:
    expected = projected[0].rows
    store = RunStore(pool, settings, admin=True)  # every tenant's runs
    newest_first = sorted(expected.values(), key=lambda r: (r["started_at"], r["run_id"]))[::-1]
    seen: list[str] = []
    page = await store.list(limit=7)
    while True:
        seen += [r.run_id for r in page.items]
        if page.next_page is None:
            break
        page = await store.list(limit=7, page=page.next_page)
    assert seen == [r["run_id"] for r in newest_first]
    session = newest_first[0]["session_id"]
    mine = (await store.list(session_id=session, oldest_first=True)).items
    assert [r.run_id for r in mine] == [
        r["run_id"] for r in newest_first[::-1] if r["session_id"] == session
    ]
    failed = (await store.list(status="failed", limit=1000)).items
    assert {r.run_id for r in failed} == {k for k, r in expected.items() if r["status"] == "failed"}
    high = (await store.list(labels={"priority": "high", "tenant": "acme"}, limit=1000)).items
    assert {r.run_id for r in high} == {
        k
        for k, r in expected.items()
        if r["labels"].get("priority") == "high" and r["labels"].get("tenant") == "acme"
    }
    middle = newest_first[len(newest_first) // 2]["started_at"]
    window = (await store.list(since=middle, until=middle + timedelta(seconds=5), limit=1000)).items
    assert {r.run_id for r in window} == {
        k for k, r in expected.items() if middle <= r["started_at"] < middle + timedelta(seconds=5)
    }
    assert failed
    assert high
    assert window


async def test_session_queries_filter_order_and_page(
    settings: Settings, pool: Pool, projected: tuple[Folded, Folded]
) -> None:
    expected = projected[1]
    index = SessionIndex(pool, settings, admin=True)  # every tenant's sessions
    newest = sorted(expected.rows.values(), key=lambda s: (s["last_activity_at"], s["session_id"]))
    user = newest[-1]["user_id"]
    seen: list[str] = []
    page = await index.list(user_id=user, limit=2)
    while True:
        seen += [s.session_id for s in page.items]
        if page.next_page is None:
            break
        page = await index.list(user_id=user, limit=2, page=page.next_page)
    assert seen == [s["session_id"] for s in newest[::-1] if s["user_id"] == user]
    assert len(seen) >= 2
    ended = (await index.list(status="ended", limit=1000)).items
    assert ended
    assert {s.session_id for s in ended} == {
        k for k, s in expected.rows.items() if s["status"] == "ended"
    }
    acme = (await index.list(labels={"tenant": "acme"}, limit=1000)).items
    assert {s.session_id for s in acme} == {
        k for k, s in expected.rows.items() if s["labels"].get("tenant") == "acme"
    }
    for deleted in expected.tombstones:
        assert await index.is_deleted(deleted)
        with pytest.raises(NotFoundError):
            await index.get(deleted)


# -- the CLI --------------------------------------------------------------------


def env_of(settings: Settings) -> dict[str, str]:
    return {
        "RUNWIRE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "RUNWIRE_POSTGRES_DSN": settings.postgres_dsn,
        "RUNWIRE_TOPIC_PREFIX": settings.topic_prefix,
        "RUNWIRE_REDIS_URL": settings.redis_url,
        "RUNWIRE_REDIS_KEY_PREFIX": settings.redis_key_prefix,
    }


@pytest.fixture
def cli(settings: Settings) -> Any:
    """Invoke ``runwire ...`` in-process with this test's settings; JSON output parsed."""
    runner = CliRunner()
    env = env_of(settings)

    def invoke(*args: str) -> Any:
        result = runner.invoke(app, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout) if "--json" in args else result.stdout

    return invoke


def test_cli_lists_shows_reports_lag_rebuilds_and_handles_dead_letters(
    settings: Settings, cli: Any
) -> None:
    async def load() -> None:
        pool = await open_pool(settings)
        try:
            workload = synthetic_events(runs=40, sessions=8, events=800, seed=12)
            runs, sessions = projections(pool, settings)
            await runs.prepare()
            await sessions.prepare()
            await bulk_publish(settings, workload.events)
            producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
            await producer.start()
            try:
                await producer.send_and_wait(settings.run_events, b"not avro", key=b"r-x")
            finally:
                await producer.stop()
            async with running(runs, settings), running(sessions, settings):
                await caught_up(runs, settings)
                await caught_up(sessions, settings)
        finally:
            await pool.close()

    asyncio.run(load())
    # The workload's runs are of several tenants: an operator reads them with --admin.
    assert cli("runs", "list", "--json")["runs"] == []  # none of them is without a tenant
    listed = cli("runs", "list", "--json", "--limit", "5", "--admin")
    assert len(listed["runs"]) == 5
    assert listed["next_page"]
    more = cli("runs", "list", "--json", "--limit", "5", "--page", listed["next_page"], "--admin")
    assert not {r["run_id"] for r in more["runs"]} & {r["run_id"] for r in listed["runs"]}
    run = cli("runs", "show", listed["runs"][0]["run_id"], "--json", "--admin")
    assert run["run_id"] == listed["runs"][0]["run_id"]
    assert "run" in cli("runs", "list", "--admin")  # the table
    sessions = cli("sessions", "list", "--json", "--limit", "100", "--admin")["sessions"]
    assert sessions
    shown = cli("sessions", "show", sessions[0]["session_id"], "--json", "--admin")
    assert shown["run_count"] == len(shown["runs"])
    status = {p["name"]: p for p in cli("projections", "status", "--json")}
    assert status["runs"]["lag"] == 0
    assert status["runs"]["live_generation"] == 1
    # Kafka's committed offsets are only a lag hint, but after the projectors'
    # clean stop they are exactly the stored positions, for every partition.
    for name in ("runs", "sessions"):
        partitions = status[name]["partitions"]
        assert any(p["position"] > 0 for p in partitions)
        assert [p["committed"] for p in partitions] == [p["position"] for p in partitions]
    assert status["sessions"]["lag"] == 0
    rebuilt = cli("projections", "rebuild", "runs", "--json")
    assert rebuilt["generation"] == 2
    assert rebuilt["records"] >= 800 * 0.9
    assert cli("projections", "status", "runs", "--json")[0]["live_generation"] == 2
    letters = cli("dlq", "list", "--json")
    assert {(d["consumer"], d["reason"]) for d in letters} >= {
        ("runs", "bad_magic"),
        ("sessions", "bad_magic"),
    }
    assert cli("dlq", "redrive", "--json", "--consumer", "runs", "--dry-run")["redriven"] == 1
    # A real redrive re-publishes the record to its source topic, once: the
    # next redrive starts where this one stopped.
    assert cli("dlq", "redrive", "--json", "--consumer", "runs")["redriven"] == 1
    assert cli("dlq", "redrive", "--json", "--consumer", "runs")["redriven"] == 0
    assert (
        cli("dlq", "redrive", "--json", "--consumer", "runs", "--from-start", "--dry-run")[
            "redriven"
        ]
        == 1
    )

    async def bad_records() -> int:
        from tests.support.workload import read_raw

        return sum(r.value == b"not avro" for r in await read_raw(settings, [settings.run_events]))

    assert asyncio.run(bad_records()) == 2
