"""Goa-AI's documented chat flow, end to end on the real stack, through the store contracts.

A user starts a chat (session created) -> sends a message (run started) ->
the agent uses a tool (tool call recorded, with the planner's note) ->
answers (run completed) -> another message (a new run) -> the session ends
(session updated). Then what the documentation promises of the stores:
debug (inspect each run), audit (every tool call and decision, from the
log) and resume (continue an interrupted session).
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path

import pytest

from runwire.contract.events import now
from runwire.projections.runtime.protocol import Projection
from runwire.projections.transcripts.reader import TranscriptCache
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.services.tools.wiring import tool_runner_service
from runwire.settings import Settings
from runwire.stores import (
    MemoryEvent,
    MemoryEventType,
    RunRecord,
    RunStatus,
    SessionEndedError,
    SessionStatus,
    build_messages_from_events,
)
from runwire.stores.log_backend import LogStores, run_events
from tests.helpers import assert_eventually
from tests.integration.transcripts.test_crash import projector_env

T = MemoryEventType
AGENT = "helper"


async def send(stores: LogStores, session_id: str, run_id: str, turn: str, text: str) -> None:
    """What a chat front end does for one user message: a run, then the message."""
    await stores.runs.upsert(
        RunRecord(
            agent_id=AGENT,
            run_id=run_id,
            session_id=session_id,
            turn_id=turn,
            labels={"tenant": "acme"},
        )
    )
    await stores.memory.append_events(
        AGENT, run_id, MemoryEvent(T.USER_MESSAGE, now(), {"message": text})
    )


async def ends_as(stores: LogStores, run_id: str, status: RunStatus) -> None:
    async def ended() -> bool:
        record = await stores.runs.load(run_id)
        if record.status.terminal and record.status is not status:
            events = await run_events(stores.log.settings, run_id)
            pytest.fail(f"run {run_id} is {record.status}: {events[-1].payload!r}")
        assert record.status is status, record
        return True

    await assert_eventually(ended, timeout=60)


async def runwire_cli(env: dict[str, str], *args: str, code: int = 0) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "runwire.cli.main",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == code, err.decode()
    return out.decode() + err.decode()


async def test_the_documented_chat_flow(
    settings: Settings,
    projectors: dict[str, Projection],
    log_stores: LogStores,
    tmp_path: Path,
) -> None:
    stores = log_stores
    chat = f"chat-{uuid.uuid4().hex[:8]}"
    first, second = f"{chat}-run-1", f"{chat}-run-2"

    async with tool_runner_service(settings):
        async with orchestrator_service(settings):
            # The user starts a chat: the session is created.
            created = await stores.sessions.create(
                chat, user_id="alice", metadata={"title": "arithmetic"}
            )
            assert created.status is SessionStatus.ACTIVE
            # Sends a message: a run starts; the agent uses a tool and answers.
            await send(stores, chat, first, "turn-1", "what is 12 * (3 + 4)?")
            await ends_as(stores, first, RunStatus.COMPLETED)
            # Another message: a new run in the same session.
            await send(stores, chat, second, "turn-2", "and what is 2 + 3?")
            await ends_as(stores, second, RunStatus.COMPLETED)
        # The session ends.
        ended = await stores.sessions.end(chat)
        assert ended.status is SessionStatus.ENDED
        assert ended.ended_at is not None
        assert ended.run_count == 2
        assert (ended.user_id, dict(ended.metadata)) == ("alice", {"title": "arithmetic"})
        with pytest.raises(SessionEndedError):
            await send(stores, chat, f"{chat}-run-3", "turn-3", "one more?")

        # -- debug: inspect each run ---------------------------------------------------
        runs = await stores.runs.list_by_session(chat)
        assert [(r.run_id, r.turn_id, r.status) for r in runs] == [
            (first, "turn-1", RunStatus.COMPLETED),
            (second, "turn-2", RunStatus.COMPLETED),
        ]
        assert all(r.agent_id == AGENT and r.labels["tenant"] == "acme" for r in runs)
        assert ended.last_activity_at >= max(r.updated_at for r in runs if r.updated_at)
        snapshots = {r.run_id: await stores.memory.load_run(AGENT, r.run_id) for r in runs}
        async with TranscriptCache(settings) as cache:
            for run_id, snapshot in snapshots.items():
                # The messages rebuilt from the memory events are the transcript runwire
                # serves to providers, part for part (signed thinking included).
                assert build_messages_from_events(snapshot.events) == await cache.get(run_id)
        answer = snapshots[first].latest(T.ASSISTANT_MESSAGE)
        assert answer is not None
        assert "84" in answer.data["message"]
        assert snapshots[first].events[0].data == {"message": "what is 12 * (3 + 4)?"}

        # -- audit: every tool call and decision, from the log ----------------------------
        calls = [e for s in snapshots.values() for e in s.filter_by_type(T.TOOL_CALL)]
        results = {
            e.data["tool_call_id"]: e
            for s in snapshots.values()
            for e in s.filter_by_type(T.TOOL_RESULT)
        }
        assert calls, "the agent used a tool"
        for call in calls:
            assert call.data["tool_name"] == "calculator"
            result = results[call.data["tool_call_id"]]
            assert result.data["tool_name"] == "calculator"
            assert "error_message" not in result.data
        notes = snapshots[first].filter_by_type(T.PLANNER_NOTE)
        assert len(notes) == 1
        assert "calculator" in notes[0].data["note"]
        assert "12 * (3 + 4)" in notes[0].data["note"]
        shown = json.loads(
            await runwire_cli(
                projector_env(settings, tmp_path), "transcript", first, "--notes", "--json"
            )
        )
        assert [n["text"] for n in shown["notes"]] == [notes[0].data["note"]]
        assert shown["messages"][shown["notes"][0]["after_message"]]["role"] == "assistant"
        env = projector_env(settings, tmp_path)
        assert "note: " in await runwire_cli(env, "transcript", first, "--notes")
        assert "no-such-run" in await runwire_cli(
            env, "transcript", "no-such-run", "--notes", code=1
        )

        # -- resume: continue an interrupted session ----------------------------------------
        later = f"{chat}-later"
        interrupted = f"{later}-run-1"
        await stores.sessions.create(later, user_id="alice")
        await send(stores, later, interrupted, "turn-1", "what is 6 * 7?")
        # Interrupted before anyone answered: paused, with no orchestrator running.
        await stores.runs.upsert(
            RunRecord(agent_id=AGENT, run_id=interrupted, session_id=later, status=RunStatus.PAUSED)
        )
        async with orchestrator_service(settings):
            # Where the session stands, from the stores alone: an unfinished run whose
            # last word is the user's.
            open_runs = await stores.runs.list_by_session(
                later, [RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED]
            )
            assert [r.run_id for r in open_runs] == [interrupted]
            history = await stores.memory.load_run(AGENT, interrupted)
            assert [e.type for e in history.events] == [T.USER_MESSAGE]
            await asyncio.sleep(1.0)  # a paused run gets no answer
            assert (await stores.runs.load(interrupted)).status is RunStatus.PAUSED
            # Resume it: the orchestrator continues from the log.
            await stores.runs.upsert(
                RunRecord(
                    agent_id=AGENT, run_id=interrupted, session_id=later, status=RunStatus.RUNNING
                )
            )
            await ends_as(stores, interrupted, RunStatus.COMPLETED)
        resumed = await stores.memory.load_run(AGENT, interrupted)
        final = resumed.latest(T.ASSISTANT_MESSAGE)
        assert final is not None
        assert "42" in final.data["message"]
        assert len(resumed.filter_by_type(T.PLANNER_NOTE)) == 1
        assert (await stores.sessions.load(later)).run_count == 1
