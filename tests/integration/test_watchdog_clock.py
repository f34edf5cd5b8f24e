"""The watchdog measures a run's quiet on its own clock too: a run whose producer
stamped it in the future (a clock running ahead) is failed once its row has not
moved for the stall time, as one stamped now is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runwire.contract.events import Event, RunStarted, UserMessage
from runwire.errors import NotFoundError
from runwire.log import Publisher
from runwire.projections.runs.reader import RunStore
from runwire.projections.runtime.pg import open_pool
from runwire.services.orchestrator.watchdog import Watchdog
from runwire.settings import Settings
from tests.helpers import assert_eventually
from tests.integration.api_support import projectors

pytestmark = pytest.mark.integration


@pytest.mark.timeout(120)
async def test_a_run_stamped_in_the_future_is_failed_once_quiet_on_the_watchdogs_clock(
    settings: Settings,
) -> None:
    ahead = datetime.now(UTC) + timedelta(days=365)
    start = Event.create(RunStarted(agent_id="a"), run_id="run-ahead", occurred_at=ahead)
    asked = Event.create(
        UserMessage(parts=["hello?"]), run_id="run-ahead", occurred_at=ahead, causation_id=None
    )
    clock = [datetime.now(UTC)]
    pool = await open_pool(settings)
    async with projectors(settings, ("runs",)):
        runs = RunStore(pool, settings)
        await runs.prepare()
        async with Publisher(settings) as publisher:
            await publisher.publish_message([start, asked])

        async def listed() -> bool:
            try:
                return (await runs.get("run-ahead")).status == "pending"
            except NotFoundError:
                return False

        await assert_eventually(listed, timeout=30)
        async with Watchdog(settings, stall_seconds=60, runs=runs, now=lambda: clock[0]) as dog:
            assert await dog.sweep() == []  # first seen now: not quiet yet
            clock[0] += timedelta(seconds=30)
            assert await dog.sweep() == []
            clock[0] += timedelta(seconds=31)
            failed = await dog.sweep()
    await pool.close()
    assert [(s.run_id, s.error_kind) for s in failed] == [("run-ahead", "owner_lost")]
    assert "no event for 61s" in failed[0].message, failed[0].message
