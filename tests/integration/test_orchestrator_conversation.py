"""A multi-turn, tool-using conversation through every service, checked in every projection."""

from __future__ import annotations

from runwire.client import Client, RunOutcome
from runwire.contract.events import EventType, RunStatus
from runwire.projections.runs.reader import RunStore
from runwire.projections.sessions.reader import SessionIndex
from runwire.projections.transcripts.reader import TranscriptCache
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.services.tools.wiring import tool_runner_service
from runwire.settings import Settings
from runwire.transcript.messages import ThinkingPart, ToolResultPart, ToolUsePart
from tests.helpers import assert_eventually
from tests.integration.orchestration_support import projectors

# (session, prompt, answer, tool calls): the colour comes back through the
# memory tool in another session of the same user, and from the session's own
# history (no tool) in the first one.
TURNS = [
    ("conversation-1", "Remember that my favourite colour is green.", "green", 1),
    ("conversation-1", "What is 12 * (3 + 4)?", "84", 1),
    ("conversation-2", "What is my favourite colour?", "Your favourite colour is green.", 1),
    ("conversation-1", "What is my favourite colour?", "Your favourite colour is green.", 0),
]


async def test_a_conversation_with_tools_lands_in_every_projection(settings: Settings) -> None:
    session = "conversation-1"
    outcomes: list[RunOutcome] = []
    async with (
        projectors(settings),
        orchestrator_service(settings),
        tool_runner_service(settings),
        await RunStore.connect(settings) as runs,
        await SessionIndex.connect(settings) as sessions,
        TranscriptCache(settings) as transcripts,
        Client(settings, runs=runs) as rw,
    ):
        for session_id, prompt, expected, tool_calls in TURNS:
            handle = await rw.run("assistant", prompt, session_id=session_id, user_id="u-1")
            outcome = await handle.wait(timeout=60)
            assert outcome.status is RunStatus.COMPLETED, outcome.events
            assert expected in outcome.text
            outcomes.append(outcome)

            # The run-status row is final as soon as wait() returns (read-your-writes).
            row = await runs.get(outcome.run_id)
            assert row.status == "completed"
            assert row.session_id == session_id
            assert row.tool_call_count == tool_calls
            assert row.tool_error_count == 0
            assert row.pending_tool_uses == []
            assert row.input_tokens > 0
            assert row.output_tokens > 0
            assert row.event_count == len(outcome.events)

            # Every event type of a tool-using turn, in the ledger's order.
            kinds = [e.type for e in outcome.events]
            assert kinds.count(EventType.THINKING) == 1 + tool_calls
            assert kinds.count(EventType.USAGE) == 1 + tool_calls
            assert kinds.count(EventType.CONTEXT_SEEDED) == 1
            if tool_calls:
                assert kinds.index(EventType.TOOL_USE) < kinds.index(EventType.TOOL_RESULT)

        async def transcripts_cached() -> bool:
            for outcome in outcomes:
                assert await transcripts.get(outcome.run_id) == outcome.messages
            return True

        await assert_eventually(transcripts_cached, timeout=30)

        async def session_indexed() -> bool:
            row = await sessions.get(session)
            assert row.run_count == 3
            assert row.user_id == "u-1"
            return True

        await assert_eventually(session_indexed, timeout=30)
        history = await transcripts.get_session(session)

    assert history == [m for o in outcomes if o is not outcomes[2] for m in o.messages]
    first = outcomes[0].messages
    assert [m.role for m in first] == ["user", "assistant", "user", "assistant"]
    assert isinstance(first[1].parts[0], ThinkingPart)
    assert first[1].parts[0].signature  # survived Kafka and Redis byte for byte
    assert isinstance(first[1].parts[-1], ToolUsePart)
    assert first[1].parts[-1].name == "remember"
    result = first[2].parts[0]
    assert isinstance(result, ToolResultPart)
    assert result.content == {"key": "favourite colour", "value": "green", "stored": True}
    # The other session recalled the colour through the memory tool (same user).
    recall = outcomes[2].messages[1].parts[-1]
    assert isinstance(recall, ToolUsePart)
    assert recall.name == "recall"
    # The first session's last run knew it from its own history.
    assert len(outcomes[3].messages) == 2
