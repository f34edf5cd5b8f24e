"""Compaction through the orchestrator on the stack: older turns summarized by the local
model, recorded, reused, replayed; the log and the transcript cache keep every original."""

from __future__ import annotations

import uuid

from runwire.client import Client, RunOutcome
from runwire.context import CompactionPolicy
from runwire.context.compaction import SUMMARY_PREFIX
from runwire.contract.events import ContextCompacted, EventType, RunStatus
from runwire.projections.transcripts.reader import TranscriptCache
from runwire.providers.local import LocalModel
from runwire.services.orchestrator.agents import AgentDirectory, AgentProfile
from runwire.services.orchestrator.run_state import Answer, RunState
from runwire.services.orchestrator.wiring import orchestrator_service, session_history
from runwire.services.run_context import RunContext
from runwire.settings import Settings
from tests.integration.orchestration_support import projectors

COMPACT = CompactionPolicy(keep_turns=2, chunk_turns=2)


def compaction_of(outcome: RunOutcome) -> ContextCompacted | None:
    found = [e.payload for e in outcome.events if isinstance(e.payload, ContextCompacted)]
    return found[0] if found else None


async def test_older_turns_are_summarized_recorded_reused_and_replayed(
    settings: Settings,
) -> None:
    session = f"compact-{uuid.uuid4().hex[:8]}"
    agents = AgentDirectory(AgentProfile(compaction=COMPACT))
    prompts = ["My name is Alice.", *(f"What is {i} + 1?" for i in range(6))]
    outcomes: list[RunOutcome] = []
    async with (
        projectors(settings),
        orchestrator_service(settings, provider=LocalModel(), agents=agents),
        Client(settings) as rw,
    ):
        for prompt in prompts:
            handle = await rw.run("assistant", prompt, session_id=session, user_id="alice")
            outcome = await handle.wait(60)
            assert outcome.status is RunStatus.COMPLETED, outcome.error
            outcomes.append(outcome)

        compactions = [compaction_of(o) for o in outcomes]
        # Runs 1-4 see at most 3 turns: fewer than 2 older than the 2 kept.
        assert compactions[:4] == [None] * 4
        later = [c for c in compactions[4:] if c is not None]
        assert len(later) == 3
        made = [c for c in later if c.reused_from is None]
        reused = [c for c in later if c.reused_from is not None]
        assert made, "a summary was made by a model call"
        assert reused, "and reused while the span stayed"
        for c in reused:
            same = [m for m in made if m.span == c.span and m.fingerprint == c.fingerprint]
            assert same
            assert c.summary == same[0].summary
        last = outcomes[-1]
        kinds = [e.type for e in last.events]
        # Recorded in one batch, the summary first, before the model was called.
        at = kinds.index(EventType.CONTEXT_COMPACTED)
        assert kinds[at + 1] is EventType.CONTEXT_SEEDED
        assert at + 1 < kinds.index(EventType.ASSISTANT_TEXT)

        # The log and the transcript cache keep every original message.
        cache = TranscriptCache(settings)
        try:
            for outcome in outcomes:
                assert await cache.get(outcome.run_id) == outcome.messages
        finally:
            await cache.close()
        assert outcomes[0].messages[0].text() == "My name is Alice."

        # Replay: a fresh history source (a restarted orchestrator) rebuilds the
        # recorded input from the log (checked against the recorded digest).
        async with await session_history(settings, LocalModel(), agents) as history:
            replays = []
            for _ in range(2):
                state = RunState(RunContext.of(last.events[0]), 0, max_turns=8)
                for offset, event in enumerate(
                    last.events[: kinds.index(EventType.CONTEXT_SEEDED) + 1]
                ):
                    state.apply(event, offset)
                action = state.next_action()
                assert isinstance(action, Answer)
                replays.append(await history.prepare(state, action))
        first, second = replays
        assert first.seed is None, "never decided again"
        assert first.compacted is None
        assert first.messages == second.messages
        assert first.messages[0].text().startswith(SUMMARY_PREFIX)
        assert first.messages[-1] == last.messages[0]
