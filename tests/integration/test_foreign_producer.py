"""A conversation published by a Java program (Apache kafka-clients + Apache Avro,
written from schemas/README.md and the .avsc files alone) is read by every consumer
exactly as one of runwire's own: the orchestrator answers it with a tool call, the
run completes, every projection shows it, the subscriber and the session watcher
see every event, and nothing is dead-lettered."""

from __future__ import annotations

import uuid
from typing import Any

from runwire.contract.events import EventType, RunStatus
from runwire.projections.memory.reader import MemoryEntries
from runwire.projections.runs.reader import RunStore
from runwire.projections.sessions.reader import SessionIndex
from runwire.projections.transcripts.reader import TranscriptCache
from runwire.sessions.protocol import SessionEvent
from runwire.settings import Settings
from runwire.transcript.messages import TextPart, ToolResultPart, ToolUsePart
from tests.foreign.build import produce
from tests.helpers import assert_eventually
from tests.support.every_consumer import every_consumer


def conversation(run_id: str, session_id: str, user_id: str) -> list[dict[str, Any]]:
    """What a foreign service writes: a session, its metadata, memory, a run and its prompt."""
    who = {"session_id": session_id, "user_id": user_id, "tenant": None}
    run = {**who, "run_id": run_id, "agent_id": "assistant", "labels": {"origin": "java"}}
    return [
        {
            "type": "session_created",
            "envelope": who,
            "payload": {"user_id": user_id, "metadata": {"topic": "maths", "größe": 1.5}},
        },
        {
            "type": "session_metadata_set",
            "envelope": who,
            "payload": {"key": "plan", "value": {"tier": "pro", "seats": 3}},
        },
        # Non-ASCII and JSON-special characters: the memory key's bytes must match.
        {
            "type": "memory_set",
            "envelope": who,
            "payload": {
                "scope": "user",
                "owner": user_id,
                "key": 'units <"metric"> & größe',
                "value": {"system": "metric"},
            },
        },
        {
            "type": "memory_set",
            "envelope": who,
            "payload": {"scope": "session", "owner": session_id, "key": "scratch", "value": 1},
        },
        {
            "type": "memory_deleted",
            "envelope": who,
            "payload": {"scope": "session", "owner": session_id, "key": "scratch"},
        },
        {"type": "run_started", "envelope": run, "payload": {"agent_id": "assistant"}},
        {
            "type": "user_message",
            "envelope": run,
            "payload": {"parts": ["what is 12 * (3 + 4)?"]},
            "caused_by": 5,
        },
    ]


async def test_a_java_producers_conversation_is_read_alike_by_every_consumer(
    settings: Settings,
) -> None:
    tag = uuid.uuid4().hex[:8]
    run_id, session_id, user_id = f"java-run-{tag}", f"java-session-{tag}", f"java-user-{tag}"
    plan = conversation(run_id, session_id, user_id)
    async with every_consumer(settings, sessions=[session_id]) as consumers:
        published = await produce(settings, plan)
        assert [p.type for p in published] == [line["type"] for line in plan]
        run_records = [p for p in published if p.topic == settings.run_events]
        assert run_records[0].offset + 1 == run_records[1].offset  # one partition, in order

        handle = consumers.client.handle(
            run_id, session_id=session_id, first_offset=run_records[0].offset
        )
        outcome = await handle.wait(timeout=90)
        assert outcome.status is RunStatus.COMPLETED, outcome.events
        assert "84" in outcome.text
        types = [e.type for e in outcome.events]
        assert EventType.TOOL_USE in types
        assert EventType.TOOL_RESULT in types
        # The orchestrator's answer is caused by the Java producer's user message.
        prompt_id = published[6].event_id
        assert any(e.causation_id == prompt_id for e in outcome.events)

        await consumers.wait_caught_up()
        consumers.assert_alive()

        async with await RunStore.connect(settings) as runs:
            run = await runs.get(run_id)
        assert run.status == "completed"
        assert (run.session_id, run.user_id, run.agent_id) == (session_id, user_id, "assistant")
        assert run.labels == {"origin": "java"}
        assert run.first_offset == run_records[0].offset
        assert run.tool_call_count == 1

        async with await SessionIndex.connect(settings) as index:
            session = await index.get(session_id)
        assert session.user_id == user_id
        assert session.metadata == {
            "topic": "maths",
            "größe": 1.5,
            "plan": {"tier": "pro", "seats": 3},
        }
        assert session.run_count == 1
        assert session.last_run_id == run_id

        async with TranscriptCache(settings) as cache:
            messages = await cache.get(run_id)
            assert await cache.session_runs(session_id) == [run_id]
        assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
        assert messages[0].parts == (TextPart(text="what is 12 * (3 + 4)?"),)
        use = next(p for p in messages[1].parts if isinstance(p, ToolUsePart))
        result = next(p for p in messages[2].parts if isinstance(p, ToolResultPart))
        assert use.name == "calculator"
        assert result.tool_use_id == use.id

        async with await MemoryEntries.connect(settings) as memory:
            kept = await memory.get("user", user_id, 'units <"metric"> & größe')
            deleted = await memory.get("session", session_id, "scratch")
        assert kept is not None
        assert kept.value == {"system": "metric"}
        assert deleted is None

        # The subscriber saw every event: the Java producer's and the run's answers.
        async def subscriber_saw_all() -> bool:
            ids = {e.event_id for e in consumers.subscribed}
            want = {p.event_id for p in published} | {e.event_id for e in outcome.events}
            assert want <= ids, want - ids
            return True

        await assert_eventually(subscriber_saw_all, timeout=30, interval=0.3)
        by_id = {e.event_id: e for e in consumers.subscribed}
        assert by_id[published[6].event_id].producer == "java-foreign-producer"

        # The session watcher heard the metadata and both sides of the conversation.
        changes = consumers.changes[session_id]
        kinds = {c.kind for c in changes}
        assert {SessionEvent.METADATA_SET, SessionEvent.MESSAGE_ADDED} <= kinds, kinds
        assert any(c.role == "user" and "12 * (3 + 4)" in c.text() for c in changes)

        assert consumers.undecodable == {}
        assert await consumers.dead_letters() == {}
