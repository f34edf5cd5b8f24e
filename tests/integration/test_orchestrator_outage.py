"""A store failing while the orchestrator acts never strands a run (on the real stack).

Only the orchestrator reaches Postgres through a :class:`~tests.faultproxy.FaultProxy`
(its session-history readers); the projectors and the client use the shared
server directly, which is never stopped.
"""

from __future__ import annotations

import asyncio

import psycopg

from runwire.client import Client, RunHandle, RunOutcome
from runwire.contract.events import RunStatus
from runwire.projections.runs.reader import RunStore
from runwire.providers.retry import RetryPolicy
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.settings import Settings
from tests.faultproxy import FaultProxy
from tests.helpers import assert_eventually
from tests.integration.orchestration_support import projectors

OUTAGE_RETRY = RetryPolicy(max_attempts=12, timeout=None, base_delay=0.2, max_delay=2.0)
"""Room for the outage below (each attempt also waits for the pool to reconnect)."""

OUTAGE_SECONDS = 4.0


async def outcomes(handles: list[RunHandle], timeout: float) -> dict[str, RunOutcome | str]:  # noqa: ASYNC109
    """Each run's outcome, or what it was doing when ``timeout`` ran out."""
    found = await asyncio.gather(*(h.wait(timeout) for h in handles), return_exceptions=True)
    return {
        h.run_id: r if isinstance(r, RunOutcome) else f"{type(r).__name__}: {r}"
        for h, r in zip(handles, found, strict=True)
    }


async def test_runs_acting_through_a_postgres_outage_all_complete(settings: Settings) -> None:
    async with FaultProxy.to(settings.postgres_dsn) as proxy:
        through = settings.model_copy(update={"postgres_dsn": proxy.url(settings.postgres_dsn)})
        async with (
            projectors(settings),
            orchestrator_service(through, acting_retry=OUTAGE_RETRY) as orchestrator,
            Client(settings) as rw,
            await RunStore.connect(settings) as runs,
        ):
            # Warm up: the history readers hold connections through the proxy.
            warm = await (await rw.run("assistant", "My name is Ada.", session_id="s0")).wait(60)
            assert warm.status is RunStatus.COMPLETED, warm.events

            proxy.cut()
            handles = [
                await rw.run("assistant", f"My name is User{i}.", session_id=f"s{i % 3}")
                for i in range(12)
            ]
            await asyncio.sleep(OUTAGE_SECONDS)
            during = proxy.refused
            proxy.restore()

            ended = await outcomes(handles, timeout=60)
            statuses = {
                run: o.status.value if isinstance(o, RunOutcome) else o for run, o in ended.items()
            }
            assert all(s == "completed" for s in statuses.values()), statuses
            # The outage was met while acting (not slept through by luck).
            assert during > 0
            assert orchestrator.stats.acting_retries > 0
            assert orchestrator.stats.failures == 0

            async def none_left_running() -> bool:
                rows = (await runs.list(limit=100)).items
                mine = {r.run_id: r.status for r in rows if r.run_id in ended}
                assert mine == dict.fromkeys(ended, "completed"), mine
                return True

            await assert_eventually(none_left_running, timeout=30)


async def test_a_store_error_that_will_not_pass_fails_the_run_with_its_reason(
    settings: Settings,
) -> None:
    async with (
        orchestrator_service(settings) as orchestrator,
        Client(settings) as rw,
    ):
        # The orchestrator's session index reader made its tables; take one away,
        # as a broken deployment would: no retry can help.
        async with await psycopg.AsyncConnection.connect(
            settings.postgres_dsn, autocommit=True
        ) as conn:
            await conn.execute("DROP VIEW session_index")
        handle = await rw.run("assistant", "My name is Bea.", session_id="broken")
        outcome = await handle.wait(60)

    assert outcome.status is RunStatus.FAILED, outcome.events
    assert outcome.error is not None
    assert outcome.error.error_kind == "store_error"
    assert outcome.error.message.startswith("the session index (Postgres) refused the request")
    assert 'relation "session_index" does not exist' in outcome.error.message
    assert outcome.error.retryable is False
    assert orchestrator.stats.acting_retries == 0  # a final error is not retried
