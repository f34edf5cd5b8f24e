"""The HTTP API attacked with hostile input on the real stack: JSON bodies that
strain the parser (exact numbers, deep nesting, huge integers, bytes that are
not UTF-8), ids the API's own paths cannot address, resume ids that are not
event ids. Each answer is a 4xx naming where, never a 500 or a silent loss."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.settings import Settings
from tests.integration.api_support import ALICE, api, auth, projectors, wait_status

pytestmark = pytest.mark.integration

JSON = {**auth(ALICE), "Content-Type": "application/json"}
PI = "3.14159265358979323846264338327950288"


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def problems(answer: Any) -> list[str]:
    return [p["where"] for p in answer.json().get("problems", [])]


async def test_tool_results_keep_exact_numbers_and_hostile_json_is_a_clear_422(
    settings: Settings,
) -> None:
    # No tool runner: the calculator call waits for a result posted over HTTP.
    async with projectors(settings), orchestrator_service(settings), api(settings) as rw:
        started = await rw.http.post(
            "/v1/runs", json={"prompt": "what is 6 * 7?"}, headers=auth(ALICE)
        )
        run_id = started.json()["run_id"]
        (tool_use_id,) = (await wait_status(rw.http, run_id, "awaiting_tools"))["pending_tool_uses"]
        url = f"/v1/runs/{run_id}/tool-results"

        def results(content: str) -> str:
            return f'{{"results": [{{"tool_use_id": "{tool_use_id}", "content": {content}}}]}}'

        hostile = {
            "deep": await rw.http.post(url, content=results(nested(500)), headers=JSON),
            "deeper": await rw.http.post(url, content=results(nested(5000)), headers=JSON),
            "digits": await rw.http.post(url, content=results("9" * 5000), headers=JSON),
            "nan": await rw.http.post(url, content=results("NaN"), headers=JSON),
            "utf8": await rw.http.post(url, content=b'{"results": "\xff"}', headers=JSON),
            "cut": await rw.http.post(url, content=results("[1, 2"), headers=JSON),
        }
        run = await wait_status(rw.http, run_id, "awaiting_tools")  # nothing was written
        exact = f'{{"huge": 1e400, "pi": {PI}, "n": 1.5}}'
        resumed = await rw.http.post(url, content=results(exact), headers=JSON)
        await wait_status(rw.http, run_id, "completed")
        transcript = await rw.http.get(f"/v1/runs/{run_id}/transcript", headers=auth(ALICE))
        events = await rw.http.get(f"/v1/runs/{run_id}/events", headers=auth(ALICE))

    for name, answer in hostile.items():
        assert answer.status_code == 422, (name, answer.text)
        assert answer.json()["error"] == "invalid_request", (name, answer.text)
    assert "nested deeper than" in hostile["deep"].text  # it was a 500
    for name in hostile:
        assert problems(hostile[name]) == ["body"], (name, hostile[name].text)
    assert "nested deeper than" in hostile["deeper"].text
    assert "digits" in hostile["digits"].text
    assert "UTF-8" in hostile["utf8"].text
    assert run["pending_tool_uses"] == [tool_use_id]

    assert resumed.status_code == 202, resumed.text
    # The numbers reach the transcript as the decimals that were sent, not floats near them.
    sent = {"huge": Decimal("1e400"), "pi": Decimal(PI), "n": Decimal("1.5")}
    (result,) = json.loads(transcript.text, parse_float=Decimal)["messages"][2]["parts"]
    assert result["content"] == sent, transcript.text  # a string would not be equal
    (streamed,) = [
        json.loads(line.removeprefix("data: "), parse_float=Decimal)
        for line in events.text.splitlines()
        if line.startswith("data: ") and '"type":"tool_result"' in line
    ]
    assert streamed["payload"]["content"] == sent, streamed


async def test_ids_the_apis_paths_cannot_address_are_refused_and_resume_ids_checked(
    settings: Settings,
) -> None:
    async with projectors(settings, ("runs", "sessions")), api(settings) as rw:
        refused = {
            session_id: await rw.http.post(
                "/v1/runs", json={"prompt": "hi", "session_id": session_id}, headers=auth(ALICE)
            )
            for session_id in ("a/b", "..", ".", "/")
        }
        started = await rw.http.post(
            "/v1/runs", json={"prompt": "hi", "session_id": "a.b%2Fc"}, headers=auth(ALICE)
        )
        run_id = started.json()["run_id"]
        session = await rw.http.get("/v1/sessions/a.b%252Fc", headers=auth(ALICE))
        async with rw.http.stream(
            "GET",
            f"/v1/runs/{run_id}/events",
            headers={**auth(ALICE), "Last-Event-ID": "not-an-event-id"},
        ) as resumed:
            if resumed.status_code != 200:  # a 200 would stream on: the run never ends
                await resumed.aread()
        listed = await rw.http.get("/v1/sessions", headers=auth(ALICE))

    for session_id, answer in refused.items():
        assert answer.status_code == 422, (session_id, answer.text)
        assert problems(answer) == ["body.session_id"], answer.text
    assert [s["session_id"] for s in listed.json()["items"]] == ["a.b%2Fc"]
    assert started.status_code == 202, started.text
    assert session.status_code == 200, session.text
    assert resumed.status_code == 422, resumed.text
    assert problems(resumed) == ["header.last-event-id"], resumed.text
