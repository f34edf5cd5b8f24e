"""The HTTP API on the real stack: the caller's sessions and runs, filtered and keyset-paged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from runwire.contract import ids
from runwire.contract.events import (
    AssistantText,
    Event,
    RunStarted,
    SessionCreated,
    SessionEnded,
    ToolResult,
    ToolUse,
    UserMessage,
)
from runwire.log import Publisher
from runwire.log.partitioner import partition_for
from runwire.settings import Settings
from tests.helpers import assert_eventually
from tests.integration.api_support import ALICE, BOB, Api, api, auth, projectors


async def _start(rw: Api, key: str, session_id: str, prompt: str = "hello") -> str:
    response = await rw.http.post(
        "/v1/runs", json={"prompt": prompt, "session_id": session_id}, headers=auth(key)
    )
    assert response.status_code == 202, response.text
    assert response.json()["visible"] is True
    run_id: str = response.json()["run_id"]
    return run_id


async def _pages(rw: Api, path: str, key: str, **params: Any) -> list[list[dict[str, Any]]]:
    """Every page of ``path`` (following next_page), as lists of items."""
    pages: list[list[dict[str, Any]]] = []
    token: str | None = None
    while True:
        query = {**params, **({"page": token} if token else {})}
        response = await rw.http.get(path, params=query, headers=auth(key))
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["items"])
        token = body["next_page"]
        if token is None:
            return pages


async def test_sessions_are_the_callers_newest_first_filtered_and_paged(
    settings: Settings,
) -> None:
    async with projectors(settings, ("runs", "sessions")), api(settings) as rw:
        mine = [f"s-{i}" for i in range(5)]
        for session_id in mine:
            await _start(rw, ALICE, session_id)
        await _start(rw, BOB, "s-bob")
        async with Publisher(settings) as publisher:
            await publisher.publish_many(
                [
                    Event.create(
                        SessionCreated(user_id="alice", metadata={"title": "gold"}),
                        session_id="s-gold",
                        labels={"tier": "gold"},
                    ),
                    Event.create(SessionEnded(reason="done"), session_id="s-1", user_id="alice"),
                ]
            )

        async def index_shows_them() -> bool:
            found = await rw.http.get("/v1/sessions", params={"limit": 50}, headers=auth(ALICE))
            ids = {s["session_id"] for s in found.json()["items"]}
            assert ids == {*mine, "s-gold"}, ids
            ended = await rw.http.get("/v1/sessions/s-1", headers=auth(ALICE))
            assert ended.json()["status"] == "ended"
            return True

        await assert_eventually(index_shows_them, timeout=30)
        pages = await _pages(rw, "/v1/sessions", ALICE, limit=2)
        ended = await _pages(rw, "/v1/sessions", ALICE, status="ended")
        active = await _pages(rw, "/v1/sessions", ALICE, status="active", limit=10)
        gold = await _pages(rw, "/v1/sessions", ALICE, label="tier:gold")
        no_gold = await _pages(rw, "/v1/sessions", BOB, label="tier:gold")
        bad_token = await rw.http.get(
            "/v1/sessions", params={"page": "not-a-token"}, headers=auth(ALICE)
        )
        bad_limit = await rw.http.get("/v1/sessions", params={"limit": 0}, headers=auth(ALICE))

    assert [len(p) for p in pages] == [2, 2, 2]
    listed = [s for page in pages for s in page]
    assert sorted(s["session_id"] for s in listed) == sorted([*mine, "s-gold"])
    # As times: RFC 3339 text leaves out a zero fraction ("...:57Z" after "...:57.07Z").
    activity = [datetime.fromisoformat(s["last_activity_at"]) for s in listed]
    assert activity == sorted(activity, reverse=True)  # newest first, across pages
    assert all(s["user_id"] == "alice" for s in listed)
    assert [s["session_id"] for s in ended[0]] == ["s-1"]
    assert "s-1" not in {s["session_id"] for s in active[0]}
    assert len(active[0]) == 5
    assert [(s["session_id"], s["metadata"]) for s in gold[0]] == [("s-gold", {"title": "gold"})]
    assert no_gold == [[]]
    assert bad_token.status_code == 400
    assert bad_token.json()["error"] == "bad_page_token"
    assert bad_limit.status_code == 422
    assert bad_limit.json()["problems"][0]["where"] == "query.limit"


async def test_a_sessions_runs_page_in_conversation_order(settings: Settings) -> None:
    async with projectors(settings, ("runs", "sessions")), api(settings) as rw:
        runs = [await _start(rw, ALICE, "s-chat", f"turn {i}") for i in range(5)]
        oldest_first = await _pages(rw, "/v1/sessions/s-chat/runs", ALICE, limit=2, order="oldest")
        newest_first = await _pages(rw, "/v1/sessions/s-chat/runs", ALICE, limit=3)
        pending = await _pages(rw, "/v1/sessions/s-chat/runs", ALICE, status="pending")
        session = await rw.http.get("/v1/sessions/s-chat", headers=auth(ALICE))

    assert [len(p) for p in oldest_first] == [2, 2, 1]
    assert [r["run_id"] for page in oldest_first for r in page] == runs
    assert [r["run_id"] for page in newest_first for r in page] == runs[::-1]
    assert len(pending[0]) == 5  # no orchestrator: every run waits
    assert session.json()["run_count"] == 5


async def test_history_as_of_a_turn_and_a_run_as_of_an_offset(settings: Settings) -> None:
    async with projectors(settings), api(settings) as rw:
        first = await _start(rw, ALICE, "s-past", "first question")
        second = await _start(rw, ALICE, "s-past", "second question")

        async def both_cached() -> bool:
            for run_id in (first, second):
                got = await rw.http.get(f"/v1/runs/{run_id}/transcript", headers=auth(ALICE))
                assert got.status_code == 200, got.text
                assert got.json()["messages"], got.text
            return True

        await assert_eventually(both_cached, timeout=30)
        path = "/v1/sessions/s-past/history"
        one = await rw.http.get(path, params={"turn": 1}, headers=auth(ALICE))
        two = await rw.http.get(path, params={"turn": 2}, headers=auth(ALICE))
        three = await rw.http.get(path, params={"turn": 3}, headers=auth(ALICE))
        bobs = await rw.http.get(path, params={"turn": 1}, headers=auth(BOB))
        run = (await rw.http.get(f"/v1/runs/{first}", headers=auth(ALICE))).json()
        at_start = await rw.http.get(
            f"/v1/runs/{first}/transcript", params={"at": run["first_offset"]}, headers=auth(ALICE)
        )
        beyond = await rw.http.get(
            f"/v1/runs/{first}/transcript", params={"at": 10**9}, headers=auth(ALICE)
        )
    assert one.status_code == 200, one.text
    assert one.json()["run_ids"] == [first]
    assert [m["parts"][0]["text"] for m in one.json()["messages"]] == ["first question"]
    assert two.json()["run_ids"] == [first, second]
    assert three.status_code == 422
    assert three.json()["problems"] == [
        {"where": "query.turn", "what": "session s-past has 2 turns; no turn 3"}
    ]
    assert bobs.status_code == 404
    assert at_start.status_code == 200, at_start.text
    assert at_start.json()["messages"] == []  # run_started alone: no message yet
    assert beyond.status_code == 422
    assert beyond.json()["problems"][0]["where"] == "query.at"


async def test_fork_a_session_at_a_turn(settings: Settings) -> None:
    async with projectors(settings), api(settings) as rw:
        first = await _start(rw, ALICE, "s-fork", "first question")
        await _start(rw, ALICE, "s-fork", "second question")

        async def history_of(session_id: str, turn: int) -> list[str]:
            got = await rw.http.get(
                f"/v1/sessions/{session_id}/history", params={"turn": turn}, headers=auth(ALICE)
            )
            assert got.status_code == 200, got.text
            return [m["parts"][0]["text"] for m in got.json()["messages"]]

        async def both_turns() -> bool:
            assert await history_of("s-fork", 2) == ["first question", "second question"]
            return True

        await assert_eventually(both_turns, timeout=30)
        forked = await rw.http.post(
            "/v1/sessions/s-fork/fork", json={"turn": 1}, headers=auth(ALICE)
        )
        missing = await rw.http.post(
            "/v1/sessions/s-fork/fork", json={"turn": 3}, headers=auth(ALICE)
        )
        bobs = await rw.http.post("/v1/sessions/s-fork/fork", json={"turn": 1}, headers=auth(BOB))
        assert forked.status_code == 201, forked.text
        child = forked.json()["session_id"]
        assert forked.json()["visible"] is True
        assert await history_of(child, 1) == ["first question"]
        mine = await rw.http.get(f"/v1/sessions/{child}", headers=auth(ALICE))
        listed = await rw.http.get("/v1/sessions", headers=auth(ALICE))
    assert mine.status_code == 200
    assert child in {s["session_id"] for s in listed.json()["items"]}
    assert missing.status_code == 422
    assert missing.json()["problems"] == [
        {"where": "body.turn", "what": "session s-fork has 2 turns; no turn 3"}
    ]
    assert bobs.status_code == 404
    assert first


async def test_fork_a_session_at_a_run_position(settings: Settings) -> None:
    async with projectors(settings), api(settings) as rw:
        envelope: dict[str, Any] = {"run_id": "r-pos", "session_id": "s-pos", "user_id": "alice"}
        # Another run's records in the same partition: before the run, and between two
        # of its records.
        partitions = list(range(12))
        other = next(
            f"other-{k}"
            for k in range(10_000)
            if partition_for(f"other-{k}".encode(), partitions)
            == partition_for(b"r-pos", partitions)
        )
        noise = Event.create(UserMessage(parts=["noise"]), run_id=other, agent_id="x")
        async with Publisher(settings) as publisher:
            await publisher.publish(
                Event.create(SessionCreated(user_id="alice"), session_id="s-pos")
            )
            await publisher.publish(noise)
            written = [
                await publisher.publish(e)
                for e in [
                    Event.create(RunStarted(agent_id="helper"), **envelope),
                    Event.create(UserMessage(parts=["time?"]), **envelope),
                    Event.create(ToolUse(id="k1", name="clock"), **envelope),
                    Event.create(ToolResult(tool_use_id="k1", content="noon"), **envelope),
                    noise.model_copy(update={"event_id": ids.new_event_id()}),
                    Event.create(AssistantText(text="it is noon"), **envelope),
                ]
            ]
        assert len({p.partition for p in written}) == 1
        offsets = [p.offset for p in written]
        between = offsets.pop(4)  # the other run's record, after the tool result
        assert offsets[0] > 0

        async def history_of(session_id: str) -> list[str]:
            got = await rw.http.get(
                f"/v1/sessions/{session_id}/history", params={"turn": 1}, headers=auth(ALICE)
            )
            assert got.status_code == 200, got.text
            return [p["kind"] for m in got.json()["messages"] for p in m["parts"]]

        async def projected() -> bool:
            assert await history_of("s-pos") == ["text", "tool_use", "tool_result", "text"]
            return True

        await assert_eventually(projected, timeout=30)

        async def fork(body: dict[str, Any], key: str = ALICE) -> Any:
            return await rw.http.post("/v1/sessions/s-pos/fork", json=body, headers=auth(key))

        after_result = await fork({"at_run": "r-pos", "at_offset": between})
        inside = await fork({"at_run": "r-pos", "at_offset": offsets[2]})
        beyond = await fork({"at_run": "r-pos", "at_offset": offsets[-1] + 1})
        before = await fork({"at_run": "r-pos", "at_offset": offsets[0] - 1})
        elsewhere = await fork({"at_run": "r-other", "at_offset": offsets[0]})
        both = await fork({"turn": 1, "at_run": "r-pos", "at_offset": offsets[0]})
        half = await fork({"at_run": "r-pos"})
        bobs = await fork({"at_run": "r-pos", "at_offset": offsets[3]}, BOB)
        assert after_result.status_code == 201, after_result.text
        made = after_result.json()
        assert made["at_run"] == "r-pos"
        assert made["at_offset"] == offsets[3], "cut after the run's last record before it"
        assert made["turn"] == 1
        assert made["visible"] is True
        assert await history_of(made["session_id"]) == ["text", "tool_use", "tool_result"]
        listed = await rw.http.get("/v1/sessions", headers=auth(ALICE))
    assert inside.status_code == 422
    (problem,) = inside.json()["problems"]
    assert problem["where"] == "body.at_offset"
    assert "open tool call" in problem["what"]
    assert "k1" in problem["what"]
    assert beyond.status_code == 422
    assert beyond.json()["problems"][0]["where"] == "body.at_offset"
    assert "beyond" in beyond.json()["problems"][0]["what"]
    assert before.status_code == 422
    assert before.json()["problems"][0]["where"] == "body.at_offset"
    assert "before it" in before.json()["problems"][0]["what"]
    assert elsewhere.status_code == 422
    assert elsewhere.json()["problems"][0]["where"] == "body.at_run"
    assert both.status_code == 422
    assert both.json()["problems"][0]["where"] == "body.turn"
    assert half.status_code == 422
    assert half.json()["problems"][0]["where"] == "body.at_offset"
    assert bobs.status_code == 404
    # Only the one good fork was written.
    assert {s["session_id"] for s in listed.json()["items"]} == {"s-pos", made["session_id"]}
