"""What the orchestrator does when acting fails: retry what may pass, fail the run otherwise.

Nothing running: the orchestrator is fed a run's events through its fold
interface, its history source fails on cue, and a recorder stands in for the
publisher.
"""

from __future__ import annotations

import pytest

from runwire.contract.events import (
    Event,
    EventType,
    RunFailed,
    RunStarted,
    UserMessage,
)
from runwire.errors import ContractError, StoreError, StoreUnavailableError
from runwire.log.inmem import InMemoryLog
from runwire.providers.local import LocalModel
from runwire.providers.retry import RetryPolicy
from runwire.services.orchestrator.context import ModelInput
from runwire.services.orchestrator.run_state import Answer, RunState
from runwire.services.orchestrator.service import Orchestrator
from runwire.settings import Settings
from tests.helpers import assert_eventually

FAST = RetryPolicy(max_attempts=3, timeout=None, base_delay=0.01, max_delay=0.02)
STORE = "the run-status store (Postgres)"
TERMINAL = {EventType.RUN_COMPLETED, EventType.RUN_FAILED}


class FailingHistory:
    """A history source that raises ``error`` for its first ``failures`` calls."""

    def __init__(self, error: Exception, failures: int) -> None:
        self.error = error
        self.failures = failures
        self.calls = 0

    async def prepare(self, state: RunState, action: Answer) -> ModelInput:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return ModelInput(action.messages)


class Recorder(InMemoryLog):
    """The in-memory log, asked for the run's terminal event."""

    def ending(self) -> Event | None:
        return next((e for e in self.events if e.type in TERMINAL), None)


async def act_on_one_run(history: FailingHistory) -> tuple[Orchestrator, Event]:
    """A run with one user message, acted on until it ends; its terminal event."""
    published = Recorder()
    async with LocalModel() as model:
        orchestrator = Orchestrator(
            Settings(), provider=model, publisher=published, context=history, acting_retry=FAST
        )
        started = Event.create(RunStarted(agent_id="a"), run_id="r1", session_id="s")
        said = Event.create(UserMessage(parts=["My name is Ada."]), run_id="r1", session_id="s")
        orchestrator.assigned([0])
        orchestrator.apply(0, 0, started)
        orchestrator.apply(0, 1, said)
        orchestrator.caught_up(0)
        await assert_eventually(published.ending, timeout=5)
        await orchestrator.revoked([0])
    ending = published.ending()
    assert ending is not None
    return orchestrator, ending


async def test_a_retriable_failure_is_retried_and_the_run_completes() -> None:
    history = FailingHistory(StoreUnavailableError(f"{STORE} is unavailable", store=STORE), 2)
    orchestrator, ending = await act_on_one_run(history)
    assert ending.type is EventType.RUN_COMPLETED
    assert history.calls == 3
    assert orchestrator.stats.acting_retries == 2
    assert orchestrator.stats.failures == 0


async def test_a_retriable_failure_that_outlasts_the_retries_fails_the_run_saying_so() -> None:
    history = FailingHistory(StoreUnavailableError(f"{STORE} is unavailable", store=STORE), 99)
    orchestrator, ending = await act_on_one_run(history)
    assert isinstance(ending.payload, RunFailed)
    assert orchestrator.stats.acting_retries == FAST.max_attempts - 1
    assert ending.payload.error_kind == "store_unavailable"
    assert ending.payload.message.startswith(f"{STORE} is unavailable (still failing after 3 ")
    assert ending.payload.retryable is True
    assert history.calls == FAST.max_attempts


@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        (
            StoreError(
                f'{STORE} refused the request: relation "run_status" does not exist', store=STORE
            ),
            "store_error",
            f'{STORE} refused the request: relation "run_status" does not exist',
        ),
        (ContractError("no such agent"), "contract_error", "no such agent"),
        (KeyError("turn"), "internal_error", "KeyError: 'turn'"),
    ],
)
async def test_a_final_failure_or_a_bug_fails_the_run_at_once_with_its_reason(
    error: Exception, kind: str, message: str
) -> None:
    history = FailingHistory(error, 99)
    orchestrator, ending = await act_on_one_run(history)
    assert isinstance(ending.payload, RunFailed)
    assert (ending.payload.error_kind, ending.payload.message) == (kind, message)
    assert ending.payload.retryable is False
    assert history.calls == 1
    assert orchestrator.stats.acting_retries == 0
