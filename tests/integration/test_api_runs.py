"""The HTTP API on the real stack: runs started over HTTP complete, stream live, cancel, resume."""

from __future__ import annotations

from runwire.providers.local import LocalModel
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.services.tools.wiring import tool_runner_service
from runwire.settings import Settings
from tests.integration.api_support import (
    ALICE,
    ALICE_READ_ONLY,
    BOB,
    api,
    auth,
    projectors,
    read_sse,
    wait_status,
)
from tests.integration.orchestration_support import read_run_log


async def test_a_run_started_over_http_completes_and_streams_its_events_in_log_order(
    settings: Settings,
) -> None:
    async with (
        projectors(settings),
        orchestrator_service(settings),
        tool_runner_service(settings),
        api(settings) as rw,
    ):
        started = await rw.http.post(
            "/v1/runs",
            json={"prompt": "what is 12 * (3 + 4)?", "agent_id": "helper"},
            headers=auth(ALICE),
        )
        assert started.status_code == 202, started.text
        body = started.json()
        run_id, session_id = body["run_id"], body["session_id"]
        assert body["visible"] is True
        assert body["position"]["topic"] == settings.run_events

        # Opened right away, the stream follows the run live until it ends.
        stream = await read_sse(rw.http, run_id, ALICE)
        run = await wait_status(rw.http, run_id, "completed")
        transcript = await rw.http.get(f"/v1/runs/{run_id}/transcript", headers=auth(ALICE))
        session = await rw.http.get(f"/v1/sessions/{session_id}", headers=auth(ALICE))
        session_runs = await rw.http.get(f"/v1/sessions/{session_id}/runs", headers=auth(ALICE))
        log = [r for r in await read_run_log(settings) if r.event.run_id == run_id]

    assert [m.event for m in stream][-1] == "end"
    assert stream[-1].data == {"run_id": run_id, "status": "completed"}
    events = stream[:-1]
    assert [m.id for m in events] == [r.event.event_id for r in sorted(log, key=lambda r: r.offset)]
    assert [m.event for m in events] == [m.data["type"] for m in events]
    kinds = [m.event for m in events]
    assert kinds[:2] == ["run_started", "user_message"]
    assert kinds.index("tool_use") < kinds.index("tool_result") < kinds.index("run_completed")

    assert run["user_id"] == "alice"
    assert run["session_id"] == session_id
    assert run["tool_call_count"] == 1
    assert transcript.status_code == 200, transcript.text
    messages = transcript.json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    parts = [p["kind"] for p in messages[1]["parts"]]
    assert parts[0] == "thinking"
    assert parts[-1] == "tool_use"
    assert messages[2]["parts"][0]["kind"] == "tool_result"
    assert "84" in "".join(p.get("text", "") for p in messages[3]["parts"])

    assert session.status_code == 200
    assert session.json()["user_id"] == "alice"
    assert [r["run_id"] for r in session_runs.json()["items"]] == [run_id]


async def test_another_users_run_is_not_found_and_a_read_only_key_cannot_write(
    settings: Settings,
) -> None:
    async with projectors(settings, ("runs", "sessions")), api(settings) as rw:
        started = await rw.http.post(
            "/v1/runs", json={"prompt": "hello", "session_id": "s-alice"}, headers=auth(ALICE)
        )
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        bob = auth(BOB)
        missing = await rw.http.get("/v1/runs/no-such-run", headers=bob)
        answers = {
            "run": await rw.http.get(f"/v1/runs/{run_id}", headers=bob),
            "transcript": await rw.http.get(f"/v1/runs/{run_id}/transcript", headers=bob),
            "events": await rw.http.get(f"/v1/runs/{run_id}/events", headers=bob),
            "cancel": await rw.http.post(f"/v1/runs/{run_id}/cancel", headers=bob),
            "resume": await rw.http.post(
                f"/v1/runs/{run_id}/tool-results",
                json={"results": [{"tool_use_id": "t1", "content": 1}]},
                headers=bob,
            ),
            "session": await rw.http.get("/v1/sessions/s-alice", headers=bob),
            "session runs": await rw.http.get("/v1/sessions/s-alice/runs", headers=bob),
            "run in her session": await rw.http.post(
                "/v1/runs", json={"prompt": "hi", "session_id": "s-alice"}, headers=bob
            ),
        }
        bobs_sessions = await rw.http.get("/v1/sessions", headers=bob)
        alices = await rw.http.get(f"/v1/runs/{run_id}", headers=auth(ALICE))
        read_only = await rw.http.post(
            "/v1/runs", json={"prompt": "hi"}, headers=auth(ALICE_READ_ONLY)
        )
        read_only_get = await rw.http.get(f"/v1/runs/{run_id}", headers=auth(ALICE_READ_ONLY))
        no_key = await rw.http.get(f"/v1/runs/{run_id}")
        bad_key = await rw.http.get(f"/v1/runs/{run_id}", headers=auth("x" * 24))

    for what, answer in answers.items():
        assert answer.status_code == 404, (what, answer.text)
        assert answer.json()["error"] == "not_found", what
    # Another user's run reads exactly like a run that does not exist.
    assert answers["run"].json()["message"].replace(run_id, "ID") == missing.json()[
        "message"
    ].replace("no-such-run", "ID")
    assert bobs_sessions.json() == {"items": [], "next_page": None}
    assert alices.status_code == 200
    assert alices.json()["user_id"] == "alice"
    assert read_only.status_code == 403
    assert read_only.json()["error"] == "forbidden"
    assert read_only_get.status_code == 200
    assert no_key.status_code == 401
    assert no_key.headers["www-authenticate"] == "Bearer"
    assert bad_key.status_code == 401


async def test_cancel_over_http_ends_a_running_run_and_its_stream(settings: Settings) -> None:
    slow = LocalModel(model=settings.model_name, latency=60.0)
    async with (
        projectors(settings, ("runs", "sessions")),
        orchestrator_service(settings, provider=slow),
        api(settings) as rw,
    ):
        started = await rw.http.post(
            "/v1/runs", json={"prompt": "tell me a story"}, headers=auth(ALICE)
        )
        run_id = started.json()["run_id"]
        await wait_status(rw.http, run_id, "running")  # the model call is under way
        canceled = await rw.http.post(
            f"/v1/runs/{run_id}/cancel", json={"reason": "changed my mind"}, headers=auth(ALICE)
        )
        stream = await read_sse(rw.http, run_id, ALICE)
        run = await wait_status(rw.http, run_id, "canceled")
        again = await rw.http.post(f"/v1/runs/{run_id}/cancel", headers=auth(ALICE))

    assert canceled.status_code == 202, canceled.text
    assert canceled.json()["run_id"] == run_id
    assert stream[-1].event == "end"
    assert stream[-1].data["status"] == "canceled"
    assert stream[-2].event == "run_canceled"
    assert stream[-2].data["payload"]["reason"] == "changed my mind"
    assert "assistant_text" not in [m.event for m in stream]  # the model call was aborted
    assert run["ended_at"] is not None
    assert again.status_code == 409
    assert again.json()["error"] == "conflict"


async def test_tool_results_posted_over_http_resume_a_run(settings: Settings) -> None:
    # No tool runner: the calculator call waits for a result from outside.
    async with projectors(settings), orchestrator_service(settings), api(settings) as rw:
        started = await rw.http.post(
            "/v1/runs", json={"prompt": "what is 6 * 7?"}, headers=auth(ALICE)
        )
        run_id = started.json()["run_id"]
        run = await wait_status(rw.http, run_id, "awaiting_tools")
        (tool_use_id,) = run["pending_tool_uses"]
        wrong = await rw.http.post(
            f"/v1/runs/{run_id}/tool-results",
            json={"results": [{"tool_use_id": "not-a-call", "content": 1}]},
            headers=auth(ALICE),
        )
        resumed = await rw.http.post(
            f"/v1/runs/{run_id}/tool-results",
            json={"results": [{"tool_use_id": tool_use_id, "content": {"result": 42}}]},
            headers=auth(ALICE),
        )
        await wait_status(rw.http, run_id, "completed")
        transcript = await rw.http.get(f"/v1/runs/{run_id}/transcript", headers=auth(ALICE))

    assert wrong.status_code == 409
    assert "not-a-call" in wrong.json()["message"]
    assert resumed.status_code == 202, resumed.text
    messages = transcript.json()["messages"]
    assert messages[2]["parts"][0] == {
        "kind": "tool_result",
        "tool_use_id": tool_use_id,
        "content": {"result": 42},
        "is_error": False,
    }
    assert "42" in messages[-1]["parts"][-1]["text"]
