"""Session history in the model input, through the orchestrator on the stack."""

from __future__ import annotations

from runwire.client import Client
from runwire.context import seeded_runs
from runwire.contract.events import ContextSeeded, EventType, RunStatus
from runwire.providers.local import LocalModel
from runwire.services.orchestrator.history import SessionHistory
from runwire.services.orchestrator.run_state import Answer, RunState
from runwire.services.orchestrator.wiring import orchestrator_service, session_history
from runwire.services.run_context import RunContext
from runwire.services.tools.wiring import tool_runner_service
from runwire.settings import Settings
from tests.integration.orchestration_support import projectors


async def test_a_new_run_of_the_session_sees_the_earlier_runs(settings: Settings) -> None:
    session = "history-1"
    async with (
        projectors(settings),
        orchestrator_service(settings),
        tool_runner_service(settings),
        Client(settings) as rw,
    ):
        first = await (await rw.run("assistant", "My name is Alice.", session_id=session)).wait(60)
        second_handle = await rw.run("assistant", "What's my name?", session_id=session)
        second = await second_handle.wait(60)
        # More runs join the session afterwards: the second run's input must not change.
        for i in range(3):
            later = await rw.run("assistant", f"What is {i} + 1?", session_id=session)
            assert (await later.wait(60)).status is RunStatus.COMPLETED

        assert first.text == "Nice to meet you, Alice!"
        assert second.status is RunStatus.COMPLETED
        assert second.text == "Your name is Alice."
        assert not [e for e in second.events if e.type is EventType.TOOL_USE]  # no recall needed
        seeded = [e for e in second.events if e.type is EventType.CONTEXT_SEEDED]
        assert len(seeded) == 1
        payload = seeded[0].payload
        assert isinstance(payload, ContextSeeded)
        assert [r.run_id for r in seeded_runs(payload)] == [first.run_id]
        assert payload.message_count == len(first.messages)
        kinds = [e.type for e in second.events]
        assert kinds.index(EventType.CONTEXT_SEEDED) < kinds.index(EventType.ASSISTANT_TEXT)

        # Replay: the recorded window gives the same model input now that the
        # session has grown (as after a restart: a fresh history source).
        async with await session_history(settings, LocalModel()) as history:
            assert isinstance(history, SessionHistory)
            state = RunState(RunContext.of(second.events[0]), 0, max_turns=8)
            for offset, event in enumerate(
                second.events[: kinds.index(EventType.CONTEXT_SEEDED) + 1]
            ):
                state.apply(event, offset)
            action = state.next_action()
            assert isinstance(action, Answer)
            replayed = await history.prepare(state, action)
            assert replayed.seed is None  # recorded once, never decided again
            assert list(replayed.messages) == [*first.messages, *second.messages[:1]]
