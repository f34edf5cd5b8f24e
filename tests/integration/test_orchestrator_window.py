"""A history window through the orchestrator on the stack.

A session of 30 runs with tool calls under a 5-run window: every run's
``context_seeded`` names exactly the (up to) 5 runs before it, its model
input starts with a user message and passes every provider's rules, and a
replay after 10 more runs gives the same input byte for byte. After
``session_cleared`` the next run is shown nothing from before it.
"""

from __future__ import annotations

import contextlib

from runwire.client import Client, RunOutcome
from runwire.context import ContextPolicy, canonical_json, model_input_digest, seeded_runs
from runwire.contract.events import ContextSeeded, EventType, RunStatus
from runwire.services.orchestrator.history import SessionHistory
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.services.tools.wiring import tool_runner_service
from runwire.sessions.api import AsyncSession
from runwire.settings import Settings
from runwire.transcript.messages import Message
from runwire.transcript.validation import PROVIDERS, validate
from tests.integration.orchestration_support import first_call, local_history, projectors

WINDOW = 5


def _history(settings: Settings) -> contextlib.AbstractAsyncContextManager[SessionHistory]:
    """Session history with a 5-run window, on readers of its own."""
    return local_history(settings, default_policy=ContextPolicy(history_runs=WINDOW))


def _seeded(outcome: RunOutcome) -> ContextSeeded | None:
    found = [e.payload for e in outcome.events if e.type is EventType.CONTEXT_SEEDED]
    assert len(found) <= 1
    payload = found[0] if found else None
    assert payload is None or isinstance(payload, ContextSeeded)
    return payload


async def _replay(history: SessionHistory, outcome: RunOutcome) -> list[Message]:
    """The first model input of a recorded run, rebuilt from its log (as after a restart)."""
    replayed = await history.prepare(*first_call(outcome))
    assert replayed.seed is None  # recorded once, never decided again
    return list(replayed.messages)


async def test_thirty_runs_with_tools_under_a_five_run_window(settings: Settings) -> None:
    session = "window-30"
    async with (
        projectors(settings),
        _history(settings) as history,
        orchestrator_service(settings, context=history),
        tool_runner_service(settings),
        Client(settings) as rw,
    ):
        outcomes: list[RunOutcome] = []
        for i in range(30):
            handle = await rw.run("assistant", f"What is {i} * 7 + 1?", session_id=session)
            outcome = await handle.wait(60)
            assert outcome.status is RunStatus.COMPLETED, outcome.error
            assert str(i * 7 + 1) in outcome.text
            assert any(e.type is EventType.TOOL_RESULT for e in outcome.events)
            outcomes.append(outcome)

        for i, outcome in enumerate(outcomes):
            seeded = _seeded(outcome)
            if i == 0:
                assert seeded is None or seeded.message_count == 0
                continue
            assert seeded is not None, f"run {i} recorded no context"
            expected = [o.run_id for o in outcomes[max(0, i - WINDOW) : i]]
            assert [r.run_id for r in seeded_runs(seeded)] == expected, f"run {i}"

        last = outcomes[-1]
        seeded = _seeded(last)
        assert seeded is not None
        before = await _replay(history, last)
        window = before[: seeded.message_count]
        assert model_input_digest(window) == seeded.digest
        assert window[0].role == "user"
        for provider in PROVIDERS:
            validate(before, provider, settings.thinking_enabled, run_id=last.run_id)

        for i in range(10):
            more = await rw.run("assistant", f"What is {i} + 100?", session_id=session)
            assert (await more.wait(60)).status is RunStatus.COMPLETED

    # After the session grew by 10 runs, on fresh readers (as after a restart).
    async with projectors(settings), _history(settings) as fresh:
        after = await _replay(fresh, last)
    assert canonical_json(after) == canonical_json(before)


async def test_after_session_cleared_the_next_run_sees_nothing_before(settings: Settings) -> None:
    session = "window-cleared"
    async with (
        projectors(settings),
        _history(settings) as history,
        orchestrator_service(settings, context=history),
        tool_runner_service(settings),
        Client(settings) as rw,
    ):
        told = await (await rw.run("assistant", "My name is Alice.", session_id=session)).wait(60)
        assert told.status is RunStatus.COMPLETED
        async with AsyncSession(session_id=session, settings=settings) as chat:
            await chat.clear()
        asked = await (await rw.run("assistant", "What's my name?", session_id=session)).wait(60)
        assert asked.status is RunStatus.COMPLETED
        assert "Alice" not in asked.text
        seeded = _seeded(asked)
        assert seeded is None or seeded_runs(seeded) == ()
