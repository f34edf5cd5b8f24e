"""Session history in the model input, through the orchestrator on the stack."""

from __future__ import annotations

from runwire.client import Client
from runwire.context import seeded_runs
from runwire.contract.events import ContextSeeded, EventType, RunStatus
from runwire.log.records import SourceRecord
from runwire.log.runs import RunReader
from runwire.providers.local import LocalModel
from runwire.services.orchestrator.history import SessionHistory
from runwire.services.orchestrator.wiring import orchestrator_service, session_history
from runwire.services.tools.wiring import tool_runner_service
from runwire.settings import Settings
from tests.integration.orchestration_support import first_call, local_history, projectors


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
            replayed = await history.prepare(*first_call(second))
            assert replayed.seed is None  # recorded once, never decided again
            assert list(replayed.messages) == [*first.messages, *second.messages[:1]]


class _CountingReader(RunReader):
    """A log reader that counts the runs it reads."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.reads: list[str] = []

    async def read(self, run_id: str, partition: int, first: int, last: int) -> list[SourceRecord]:
        self.reads.append(run_id)
        return await super().read(run_id, partition, first, last)


async def test_kept_windows_stay_within_their_token_budget(settings: Settings) -> None:
    session = "history-budget"
    async with (
        projectors(settings),
        orchestrator_service(settings),
        tool_runner_service(settings),
        Client(settings) as rw,
    ):
        outcomes = []
        for text in ("My name is Alice.", "What's my name?", "What is 1 + 1?"):
            outcome = await (await rw.run("assistant", text, session_id=session)).wait(60)
            assert outcome.status is RunStatus.COMPLETED
            outcomes.append(outcome)
        second, third = outcomes[1], outcomes[2]

        # Within the budget (the default): a run's later call reuses its window.
        roomy_log = _CountingReader(settings)
        async with local_history(settings, roomy_log) as roomy:
            first_input = await roomy.prepare(*first_call(second))
            assert roomy_log.reads  # its window, read from the log
            await roomy.prepare(*first_call(third))
            roomy_log.reads.clear()
            again = await roomy.prepare(*first_call(second))
            assert roomy_log.reads == []
            assert again.messages == first_input.messages
        # Over it (a budget below one window): only the newest window is kept; the
        # older run's is read from the log again, the same input.
        tight_log = _CountingReader(settings)
        async with local_history(settings, tight_log, max_window_tokens=1) as tight:
            await tight.prepare(*first_call(second))
            await tight.prepare(*first_call(third))
            tight_log.reads.clear()
            again = await tight.prepare(*first_call(second))
            assert tight_log.reads  # forgotten, so read again
            assert again.messages == first_input.messages
