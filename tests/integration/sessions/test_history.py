"""A session's history as of a turn, read from the log: what ``get_messages()``
returned once that turn was answered (Session API, CLI)."""

from __future__ import annotations

import json

import pytest

from runwire.errors import InputError
from runwire.projections.transcripts.history import messages_json
from runwire.sessions import AsyncSession
from runwire.sessions.log_backend import LogBackend
from runwire.settings import Settings
from runwire.transcript.messages import ToolUsePart
from tests.integration.sessions.test_sessions_cli import runwire
from tests.integration.sessions.test_sessions_stack import stack_env


async def test_as_of_each_turn_is_what_the_live_read_gave_then(
    log_backend: LogBackend, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshots: list[bytes] = []
    async with AsyncSession(user_id="alice", backend=log_backend) as s:
        await s.add_messages([("user", "old turn"), ("assistant", "old answer")])
        await s.clear()  # turns count from here
        await s.add_message("user", "What is 6*7?")
        await s.add_message(
            "assistant", ["Let me compute.", ToolUsePart(id="c1", name="calc", input={"e": "6*7"})]
        )
        await s.add_message("tool", {"tool_use_id": "c1", "content": {"result": 42}})
        await s.add_message("assistant", "42.")
        snapshots.append(messages_json(await s.get_messages()))
        for k in range(2, 6):
            await s.add_messages([("user", f"question {k}"), ("assistant", f"answer {k}")])
            snapshots.append(messages_json(await s.get_messages()))
        for turn, held in enumerate(snapshots, start=1):
            assert messages_json(await s.get_messages(as_of=turn)) == held, turn
        assert [m.text() for m in await s.get_messages(limit=1, as_of=3)] == [
            "question 3",
            "answer 3",
        ]
        with pytest.raises(InputError, match="has 5 turns; no turn 6") as beyond:
            await s.get_messages(as_of=6)
        assert beyond.value.field == "turn"
        with pytest.raises(InputError, match="at least 1"):
            await s.get_messages(as_of=0)

        for name, value in stack_env(settings).items():
            if name.startswith("RUNWIRE_"):
                monkeypatch.setenv(name, value)
        shown = await runwire("sessions", "show", s.session_id, "--turn", "2", "--json")
        assert shown.exit_code == 0, shown.output
        doc = json.loads(shown.stdout)
        assert doc["turn"] == 2
        assert json.dumps(doc["messages"]) == json.dumps(json.loads(snapshots[1]))
        missing = await runwire("sessions", "show", s.session_id, "--turn", "9")
        assert missing.exit_code != 0
        assert "no turn 9" in missing.output

        # A run's own transcript by turn and by offset, from the CLI.
        run_id = doc["run_ids"][-1]
        one = await runwire("transcript", run_id, "--turn", "1", "--json")
        assert one.exit_code == 0, one.output
        assert [m["role"] for m in json.loads(one.stdout)] == ["user", "assistant"]
        meta = (await log_backend.cache.get_at(run_id, turn=1)).offset
        at = await runwire("transcript", run_id, "--at", str(meta), "--json")
        assert at.exit_code == 0, at.output
        assert json.loads(at.stdout) == json.loads(one.stdout)
        first_of_run = (await log_backend.cache.start_of(run_id)) or (0, 0)
        before = await runwire("transcript", run_id, "--at", str(first_of_run[1] - 1))
        if first_of_run[1] > 0:
            assert before.exit_code != 0
            assert "is before it" in before.output
