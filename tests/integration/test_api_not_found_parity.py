"""Another user's run or session is answered exactly like an id that does not exist,
on every route, read or write, whatever else the request carries."""

from __future__ import annotations

import pytest

from runwire.contract import ids
from runwire.settings import Settings
from tests.integration.api_support import ALICE, BOB, api, auth, projectors

pytestmark = pytest.mark.integration

EVENT_ID = "01a20188-d737-7744-9122-2886aa05c016"


@pytest.mark.timeout(120)
async def test_every_route_answers_another_users_ids_as_unknown_ones(settings: Settings) -> None:
    async with projectors(settings, ("runs", "sessions", "transcripts")), api(settings) as rw:
        started = await rw.http.post(
            "/v1/runs", json={"prompt": "bob's", "session_id": "s-bob"}, headers=auth(BOB)
        )
        assert started.json()["visible"] is True, started.text
        theirs = {"run": started.json()["run_id"], "session": "s-bob"}
        unknown = {"run": ids.new_event_id(), "session": "s-nobody"}

        async def ask(which: dict[str, str]) -> list[tuple[str, int, str]]:
            run, session = which["run"], which["session"]
            calls = [
                ("GET", f"/v1/runs/{run}", None, {}),
                ("GET", f"/v1/runs/{run}/tree", None, {}),
                ("GET", f"/v1/runs/{run}/transcript", None, {}),
                ("GET", f"/v1/runs/{run}/transcript?at=0", None, {}),
                ("GET", f"/v1/runs/{run}/transcript?turn=1", None, {}),
                ("GET", f"/v1/runs/{run}/events", None, {"Last-Event-ID": EVENT_ID}),
                ("GET", f"/v1/runs/{run}/events?live=true", None, {}),
                ("POST", f"/v1/runs/{run}/cancel", {"reason": "x"}, {}),
                ("POST", f"/v1/runs/{run}/cancel", None, {}),
                (
                    "POST",
                    f"/v1/runs/{run}/tool-results",
                    {"results": [{"tool_use_id": "toolu_1", "content": 1}]},
                    {},
                ),
                ("POST", f"/v1/runs/{run}/approvals/toolu_1", {"approved": True}, {}),
                ("GET", f"/v1/sessions/{session}", None, {}),
                ("GET", f"/v1/sessions/{session}/runs", None, {}),
                ("GET", f"/v1/sessions/{session}/runs?order=oldest&status=pending", None, {}),
                ("GET", f"/v1/sessions/{session}/history?turn=1", None, {}),
                ("POST", f"/v1/sessions/{session}/fork", {"turn": 1}, {}),
                ("POST", f"/v1/sessions/{session}/fork", {"at_run": run, "at_offset": 0}, {}),
                ("DELETE", f"/v1/sessions/{session}", None, {}),
            ]
            out = []
            for method, path, body, extra in calls:
                answer = await rw.http.request(
                    method, path, json=body, headers={**auth(ALICE), **extra}
                )
                text = answer.text.replace(run, "<run>").replace(session, "<session>")
                out.append(
                    (
                        f"{method} {path.replace(run, '<run>').replace(session, '<s>')}",
                        answer.status_code,
                        text,
                    )
                )
            return out

        seen_theirs = await ask(theirs)
        seen_unknown = await ask(unknown)
    differing = [
        (a[0], a[1:], b[1:]) for a, b in zip(seen_theirs, seen_unknown, strict=True) if a != b
    ]
    assert differing == [], differing
    assert all(status == 404 for _, status, _ in seen_theirs), seen_theirs
