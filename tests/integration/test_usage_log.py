"""The usage projection on the log: projected, rebuilt, read by the CLI with prices."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from runwire.cli.main import app
from runwire.contract.events import Event, SessionDeleted, Usage
from runwire.log.records import TopicPartition
from runwire.projections.runtime.pg import open_pool
from runwire.projections.runtime.protocol import Batch
from runwire.projections.usage.inmem import InMemoryUsage
from runwire.projections.usage.projection import UsageProjection
from runwire.projections.usage.reader import DIMENSIONS, UsageStore
from runwire.settings import Settings
from tests.contract.projections import RecordingSink
from tests.integration.projection_support import as_records, caught_up, publish, running
from tests.integration.test_projection_reads import env_of

MODELS = [("gpt-x", "openai"), ("claude-x", "anthropic"), ("mystery", "bedrock")]
PRICES = """
[models."gpt-x"]
input = 2
output = 8
cache_read = 0.5

[models."claude-x"]
input = 3
output = 15
cache_read = 0.3
cache_write = 3.75
"""


def workload(seed: int = 5) -> list[Event]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    events: list[Event] = []
    for n in range(300):
        run = f"run-{n % 60}"
        session = f"s-{n % 60 // 4}"
        model, provider = MODELS[n % 60 % 3] if n % 7 else MODELS[0]
        events.append(
            Event.create(
                Usage(
                    model=model,
                    provider=provider,
                    input_tokens=rng.randint(0, 5000),
                    output_tokens=rng.randint(0, 900),
                    cache_read_tokens=rng.randint(0, 3000) if provider != "bedrock" else 0,
                    cache_write_tokens=rng.randint(0, 200) if provider == "anthropic" else 0,
                    reasoning_tokens=rng.randint(0, 100) if provider == "openai" else 0,
                ),
                run_id=run,
                session_id=session,
                user_id=f"u-{n % 60 % 5}",
                agent_id=f"agent-{n % 60 % 4}",
                # Most of it this week, some twelve days ago.
                occurred_at=now - timedelta(days=12 if n % 10 == 0 else n % 3),
            )
        )
    events.insert(150, Event.create(SessionDeleted(), session_id="s-3"))
    return events


async def reference(events: list[Event], placed: Any, settings: Settings) -> InMemoryUsage:
    twin = InMemoryUsage(settings.run_events, settings.session_events)
    records = as_records(events, placed)
    nxt: dict[TopicPartition, int] = {}
    for r in records:
        nxt[r.tp] = max(nxt.get(r.tp, 0), r.offset + 1)
    await twin.apply(Batch(records=records, next_positions=nxt, expected={}), RecordingSink())
    return twin


def test_projected_rebuilt_and_priced_by_the_cli(settings: Settings, tmp_path: Path) -> None:
    events = workload()

    async def load() -> InMemoryUsage:
        pool = await open_pool(settings)
        try:
            projection = UsageProjection(pool, settings)
            await projection.prepare()
            placed = await publish(settings, events)
            async with running(projection, settings):
                await caught_up(projection, settings)
            return await reference(events, placed, settings)
        finally:
            await pool.close()

    twin = asyncio.run(load())

    async def read_all() -> dict[str, Any]:
        async with await UsageStore.connect(settings) as store:
            return {by: await store.summary(by=by, limit=10_000) for by in DIMENSIONS}

    projected = asyncio.run(read_all())
    for by in DIMENSIONS:
        assert projected[by] == asyncio.run(twin.summary(by=by, limit=10_000)), by
    assert "s-3" not in {g.key for g in projected["session"]}
    assert len(projected["run"]) == 56  # 60 runs, the deleted session's 4 gone

    runner = CliRunner()
    prices = tmp_path / "prices.toml"
    prices.write_text(PRICES)
    env = {**env_of(settings), "RUNWIRE_USAGE_PRICES_FILE": str(prices)}

    def cli(*args: str) -> Any:
        result = runner.invoke(app, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout) if "--json" in args else result.stdout

    rebuilt = cli("projections", "rebuild", "usage", "--json")
    assert rebuilt["generation"] == 2
    assert asyncio.run(read_all()) == projected

    week = cli("usage", "--by", "model", "--since", "7d", "--json")
    by_model = {g["key"]: g for g in week["groups"]}
    cutoff = (datetime.now(UTC) - timedelta(days=6)).date()
    expected = asyncio.run(twin.summary(by="model", since=cutoff))
    assert {g.key: g.tokens.calls for g in expected} == {k: g["calls"] for k, g in by_model.items()}
    gpt = {g.key: g for g in expected}["gpt-x"].tokens
    exact = (gpt.input_tokens * 2 + gpt.output_tokens * 8 + gpt.cache_read_tokens * 0.5) / 1_000_000
    assert abs(float(by_model["gpt-x"]["cost"]) - exact) < 1e-12
    assert by_model["mystery"]["cost"] is None
    assert by_model["mystery"]["unpriced_models"] == ["mystery"]
    # Every week's agent mixes in the unpriced model, so its cost is unknown as a whole.
    agents = cli("usage", "--by", "agent", "--json")["groups"]
    assert agents
    assert all(g["cost"] is None and g["unpriced_models"] == ["mystery"] for g in agents)
    table = cli("usage", "--by", "day")
    assert "unknown: no price for mystery" in table
    assert cli("usage", "--by", "day", "--since", "30d", "--json")["groups"][0]["key"] == (
        (datetime.now(UTC) - timedelta(days=12)).date().isoformat()
    )
    bad = runner.invoke(app, ["usage", "--by", "tenant"], env=env)
    assert bad.exit_code == 1
    assert "by: 'tenant' is not one of run, session" in bad.output
