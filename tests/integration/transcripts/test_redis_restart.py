"""Redis going away in the middle of the projector's commit (a restart, ``kill -9``,
a dropped connection) loses no event of the transcript.

The projector (real Kafka, real Redis) applies a run in three steps; the
commit of the middle step fails once with the error redis-py raises when the
server closes the connection: either before the script ran (nothing was
written) or after it (written, the reply lost). The runner retries from the
stored positions; the run's cached transcript must still be exactly the
fold of all its events, served from the cache (no miss).
"""

from __future__ import annotations

import uuid
from typing import Literal

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from runwire.contract.events import (
    AssistantText,
    Event,
    EventPayload,
    RunCompleted,
    RunStarted,
    Thinking,
    ToolResult,
    ToolUse,
    UserMessage,
)
from runwire.projections.transcripts.projection import TranscriptProjection
from runwire.projections.transcripts.reader import TranscriptCache
from runwire.projections.transcripts.redis_store import RedisTranscriptStore
from runwire.projections.transcripts.store import Commit, CommitOutcome
from runwire.settings import Settings
from runwire.transcript.ledger import build_messages_from_events
from tests.helpers import assert_eventually
from tests.integration.transcripts.conftest import publish, running, wait_caught_up

When = Literal["before", "after"]


class DroppingStore(RedisTranscriptStore):
    """The Redis store whose next commit writing ``run_id`` loses its connection:
    ``before`` the script ran, or ``after`` it (the reply lost)."""

    def __init__(self, client: aioredis.Redis, key_prefix: str) -> None:
        super().__init__(client, key_prefix)
        self._armed: tuple[str, When] | None = None
        self.dropped = 0

    def arm(self, run_id: str, when: When) -> None:
        self._armed = (run_id, when)

    async def commit(self, commit: Commit) -> CommitOutcome:
        armed = self._armed
        if armed is None or all(w.run_id != armed[0] for w in commit.runs):
            return await super().commit(commit)
        self._armed = None
        self.dropped += 1
        if armed[1] == "before":
            raise redis.exceptions.ConnectionError("Connection closed by server.")
        await super().commit(commit)
        raise redis.exceptions.ConnectionError("Error while reading: Connection reset by peer")


def _events(run_id: str, payloads: list[EventPayload]) -> list[Event]:
    return [
        Event.create(p, run_id=run_id, session_id=f"s-{run_id}", producer="test") for p in payloads
    ]


@pytest.mark.parametrize("when", ["before", "after"])
async def test_a_commit_cut_off_with_its_connection_loses_no_event(
    settings: Settings, redis_client: aioredis.Redis, when: When
) -> None:
    run_id = f"run-{uuid.uuid4()}"
    prompt = _events(run_id, [RunStarted(agent_id="a"), UserMessage(parts=["what is 6 * 7?"])])
    # The prompt becomes a committed message only with the assistant's first part:
    # in the step whose commit is cut off.
    answer = _events(
        run_id,
        [
            Thinking(text="use the tool", signature="c2lnbmF0dXJl", index=0, final=True),
            AssistantText(text="Let me compute."),
            ToolUse(id="tu-1", name="calculator", input={"expression": "6 * 7"}),
        ],
    )
    rest = _events(
        run_id,
        [
            ToolResult(tool_use_id="tu-1", content={"result": 42}),
            AssistantText(text="6 * 7 = 42."),
            RunCompleted(stop_reason="end_turn"),
        ],
    )
    store = DroppingStore(redis_client, settings.redis_key_prefix)
    async with (
        running(TranscriptProjection(store, settings), settings) as projector,
        TranscriptCache(settings, client=redis_client) as cache,
    ):
        await publish(settings, prompt)
        await wait_caught_up(store, settings)
        store.arm(run_id, when)
        await publish(settings, answer)
        await wait_caught_up(store, settings)
        assert store.dropped == 1

        async def retried() -> bool:
            assert projector.stats.retries >= 1, "the runner never saw the commit fail"
            return True

        await assert_eventually(retried, timeout=10)
        await publish(settings, rest)
        await wait_caught_up(store, settings)

        got = await cache.get(run_id)
        assert cache.misses == 0, "served from the log, not from the projection"
    expected = build_messages_from_events([*prompt, *answer, *rest], run_id)
    assert [m.role for m in expected] == ["user", "assistant", "user", "assistant"]
    assert got == expected
