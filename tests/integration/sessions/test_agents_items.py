"""``RunwireSession`` on the real stack: items kept exactly, pops in the log, threads."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import redis.asyncio as aioredis
from agents import Agent, Runner
from agents.testing.model import ScriptedModel, assistant_message

from runwire.projections.runtime.protocol import Projection, Rebuildable
from runwire.projections.runtime.rebuild import rebuild
from runwire.projections.transcripts.keys import Keyspace
from runwire.sessions.openai_agents import (
    ItemNotJSONError,
    RunwireSession,
    close_shared_backends,
)
from runwire.settings import Settings
from tests.contract.sessions import roles_and_text

ITEMS: list[dict[str, Any]] = [
    {"role": "user", "content": "What is the weather in Paris?"},
    {
        "role": "user",
        "content": [
            {"type": "input_text", "text": "And this picture?"},
            {"type": "input_image", "image_url": "https://example.com/p.png", "detail": "auto"},
            {"type": "input_file", "file_id": "file-abc123"},
        ],
    },
    {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": "Look it up."}],
        "encrypted_content": "gAAAAABo-opaque==",
    },
    {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
        "status": "completed",
    },
    {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21°C"},
    {
        "type": "web_search_call",
        "id": "ws_1",
        "status": "completed",
        "action": {"type": "search", "query": "paris weather"},
    },
    {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "status": "completed",
        "content": [
            {
                "type": "output_text",
                "text": "Sunny in Paris [1].",
                "annotations": [
                    {
                        "type": "url_citation",
                        "start_index": 15,
                        "end_index": 18,
                        "url": "https://weather.example",
                        "title": "Weather",
                    }
                ],
                "logprobs": [],
            }
        ],
    },
    {"type": "a_kind_no_one_has_seen", "payload": {"n": 1.5, "big": 2**63 + 5, "none": None}},
]


async def test_every_item_comes_back_exactly(sessions: Settings) -> None:
    session = RunwireSession(user_id="alice", settings=sessions)
    await session.add_items(ITEMS[:3])
    await session.add_items(ITEMS[3:])
    assert await session.get_items() == ITEMS
    assert await session.get_items(limit=2) == ITEMS[-2:]
    # What the items stand for is runwire's canonical transcript, in the log too.
    assert roles_and_text(await session.messages()) == [
        ("user", "What is the weather in Paris?And this picture?"),
        ("assistant", "<tool_use>"),
        ("user", "<tool_result>"),
        ("assistant", "Sunny in Paris [1]."),
    ]
    # Another process (a fresh backend: nothing held) reads the same.
    await asyncio.to_thread(close_shared_backends)
    again = RunwireSession(session.session_id, user_id="alice", settings=sessions)
    assert await again.get_items() == ITEMS


async def test_pop_is_an_event_that_replay_and_rebuild_honour(
    sessions: Settings, projectors: dict[str, Projection]
) -> None:
    session = RunwireSession(user_id="alice", settings=sessions)
    await session.add_items(ITEMS[:7])
    assert await session.pop_item() == ITEMS[6]
    assert await session.pop_item() == ITEMS[5]
    kept = ITEMS[:5]
    assert await session.get_items() == kept
    shown = roles_and_text(await session.messages())
    assert shown == [
        ("user", "What is the weather in Paris?And this picture?"),
        ("assistant", "<tool_use>"),
        ("user", "<tool_result>"),
    ], "the popped answer is gone from the canonical transcript too"

    # The run's cached transcript dropped: the miss path folds it from the log again.
    client = aioredis.Redis.from_url(sessions.redis_url)
    try:
        keys = Keyspace(sessions.redis_key_prefix)
        live = int(await client.get(keys.live) or 0)
        run_keys = [k async for k in client.scan_iter(match=keys.generation(live).body("*"))]
        assert run_keys
        await client.delete(*run_keys)
    finally:
        await client.aclose()
    await asyncio.to_thread(close_shared_backends)
    fresh = RunwireSession(session.session_id, user_id="alice", settings=sessions)
    assert await fresh.get_items() == kept
    assert roles_and_text(await fresh.messages()) == shown

    # A rebuild of the transcript cache from offset 0 gives the same.
    projection = projectors["transcripts"]
    assert isinstance(projection, Rebuildable)
    assert (await rebuild(projection, sessions)).records > 0
    await asyncio.to_thread(close_shared_backends)
    rebuilt = RunwireSession(session.session_id, user_id="alice", settings=sessions)
    assert await rebuilt.get_items() == kept
    assert roles_and_text(await rebuilt.messages()) == shown
    assert await rebuilt.pop_item() == ITEMS[4]


async def test_a_bad_item_is_refused_naming_it_and_nothing_is_written(sessions: Settings) -> None:
    session = RunwireSession(user_id="alice", settings=sessions)
    await session.add_items([ITEMS[0]])
    bad = {"role": "user", "content": [{"type": "input_text", "text": {1, 2}}]}
    with pytest.raises(ItemNotJSONError) as refused:
        await session.add_items([ITEMS[1], bad])
    assert refused.value.field == "items[1].content[0].text"
    assert isinstance(refused.value, TypeError)
    assert await session.get_items() == [ITEMS[0]]


def _writer(session: RunwireSession, name: str, count: int, failures: list[BaseException]) -> None:
    async def write() -> None:
        for i in range(count):
            await session.add_items([{"role": "user", "content": f"{name}-{i}"}])

    try:
        asyncio.run(write())  # a loop of this thread's own
    except BaseException as e:
        failures.append(e)


async def test_threads_on_one_session_store_every_write_once_in_order(sessions: Settings) -> None:
    session = RunwireSession(user_id="alice", settings=sessions)
    failures: list[BaseException] = []
    threads = [
        threading.Thread(target=_writer, args=(session, f"w{n}", 4, failures)) for n in range(5)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        await asyncio.to_thread(thread.join, 120)
    assert failures == []
    stored = [item["content"] for item in await session.get_items()]
    assert sorted(stored) == sorted(f"w{n}-{i}" for n in range(5) for i in range(4))
    for n in range(5):
        mine = [c for c in stored if c.startswith(f"w{n}-")]
        assert mine == [f"w{n}-{i}" for i in range(4)], "each writer's items in its order"


def _run_sync(agent: Agent[Any], session: RunwireSession, text: str) -> str:
    # run_sync leaves the thread's default loop open on purpose; this worker's is
    # closed after it (as the SDK's own tests do), so no socket outlives the test.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return str(Runner.run_sync(agent, text, session=session).final_output)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


async def test_runner_run_sync_in_worker_threads(sessions: Settings) -> None:
    model = ScriptedModel([[assistant_message(f"answer {i}")] for i in range(4)])
    agent = Agent(name="helper", model=model)
    session = RunwireSession(user_id="alice", settings=sessions)
    answers = [
        await asyncio.to_thread(_run_sync, agent, session, f"question {i}") for i in range(2)
    ]
    others = [RunwireSession(user_id="bob", settings=sessions) for _ in range(2)]
    answers += await asyncio.gather(
        *(asyncio.to_thread(_run_sync, agent, s, "hello") for s in others)
    )
    assert sorted(answers) == [f"answer {i}" for i in range(4)]
    items = await session.get_items()
    assert [i.get("content") for i in items if i.get("role") == "user"] == [
        "question 0",
        "question 1",
    ]
    assert "question 0" in repr(model.calls[1].input), "the second turn saw the first"
