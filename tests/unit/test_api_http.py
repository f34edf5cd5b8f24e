"""The HTTP API on in-memory twins: authentication, isolation, validation, errors, writes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from runwire.contract.codec import EventTooLargeError
from runwire.contract.events import Event, RunStarted
from runwire.errors import InputError
from runwire.projections.runs.fold import RunRow
from runwire.services.api import exact_json
from runwire.services.api.auth import KeyRing
from runwire.services.api.errors import ApiError
from runwire.transcript.messages import Message, TextPart, ThinkingPart, ToolResultPart
from tests.unit.api_twins import (
    ALICE,
    ALICE_READ_ONLY,
    BOB,
    Twins,
    auth,
    client,
    make_run,
    make_session,
    twin_app,
)


@pytest.fixture
def twins() -> Twins:
    t = Twins()
    t.add(
        make_session("s-alice", "alice", minute=1),
        make_session("s-bob", "bob", minute=2),
        make_session("s-nobody", None, minute=3),
        make_run("r-alice", "alice", "s-alice", minute=1, status="running"),
        make_run("r-bob-in-alices", "bob", "s-alice", minute=2),
        make_run("r-bob", "bob", "s-bob", minute=3),
        make_run("r-nobody", None, "s-nobody", minute=4),
        make_run("r-done", "alice", "s-alice", minute=5, status="completed"),
        make_run("r-waiting", "alice", "s-alice", minute=6, pending_tool_uses=["tu-1", "tu-2"]),
    )
    return t


async def test_no_key_another_scheme_or_an_unknown_key_is_401(twins: Twins) -> None:
    async with client(twin_app(twins)) as http:
        answers = [
            await http.get("/v1/sessions"),
            await http.get("/v1/sessions", headers={"Authorization": f"Basic {ALICE}"}),
            await http.get("/v1/sessions", headers=auth(ALICE + "x")),
            await http.post("/v1/runs", json={"prompt": "hi"}),
            await http.get("/v1/runs/r-alice/events"),
        ]
    for answer in answers:
        assert answer.status_code == 401, answer.text
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.json()["error"] == "unauthorized"
    assert "Authorization: Bearer" in answers[0].json()["message"]
    assert answers[2].json()["message"] == "the API key is not valid"
    assert answers[2].json()["where"] == "GET /v1/sessions"


async def test_a_read_only_key_reads_but_every_write_is_403(twins: Twins) -> None:
    key = auth(ALICE_READ_ONLY)
    async with client(twin_app(twins)) as http:
        reads = [
            await http.get("/v1/runs/r-alice", headers=key),
            await http.get("/v1/me", headers=key),
        ]
        writes = [
            await http.post("/v1/runs", json={"prompt": "hi"}, headers=key),
            await http.post("/v1/runs/r-alice/cancel", headers=key),
            await http.post(
                "/v1/runs/r-waiting/tool-results",
                json={"results": [{"tool_use_id": "tu-1"}]},
                headers=key,
            ),
        ]
    assert [r.status_code for r in reads] == [200, 200]
    assert reads[1].json() == {"user_id": "alice", "access": "read", "tenant": None}
    for answer in writes:
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"] == "forbidden"
        assert "read-only" in answer.json()["message"]
    assert twins.calls == []


@pytest.mark.parametrize(
    "path",
    [
        "/v1/runs/{run}",
        "/v1/runs/{run}/transcript",
        "/v1/runs/{run}/events",
    ],
)
async def test_another_users_run_reads_exactly_like_a_missing_one(twins: Twins, path: str) -> None:
    async with client(twin_app(twins)) as http:
        theirs = await http.get(path.format(run="r-bob"), headers=auth(ALICE))
        ownerless = await http.get(path.format(run="r-nobody"), headers=auth(ALICE))
        missing = await http.get(path.format(run="r-zzzzz"), headers=auth(ALICE))
    assert theirs.status_code == ownerless.status_code == missing.status_code == 404

    def shape(body: dict[str, str], run: str) -> dict[str, str]:
        return {k: v.replace(run, "ID") for k, v in body.items()}

    assert shape(theirs.json(), "r-bob") == shape(missing.json(), "r-zzzzz")
    assert shape(ownerless.json(), "r-nobody") == shape(missing.json(), "r-zzzzz")
    assert theirs.json()["message"] == "run 'r-bob' not found"


async def test_another_users_session_is_not_found_and_takes_no_runs(twins: Twins) -> None:
    twins.deleted.add("s-gone")
    async with client(twin_app(twins)) as http:
        answers = {
            "get": await http.get("/v1/sessions/s-bob", headers=auth(ALICE)),
            "runs": await http.get("/v1/sessions/s-bob/runs", headers=auth(ALICE)),
            "ownerless": await http.get("/v1/sessions/s-nobody", headers=auth(ALICE)),
            "start in theirs": await http.post(
                "/v1/runs", json={"prompt": "hi", "session_id": "s-bob"}, headers=auth(ALICE)
            ),
            "start in a deleted one": await http.post(
                "/v1/runs", json={"prompt": "hi", "session_id": "s-gone"}, headers=auth(ALICE)
            ),
            "cancel theirs": await http.post("/v1/runs/r-bob/cancel", headers=auth(ALICE)),
        }
    for what, answer in answers.items():
        assert answer.status_code == 404, (what, answer.text)
    assert answers["get"].json()["message"] == "session 's-bob' not found"
    assert twins.calls == []


async def test_lists_show_only_the_callers_items(twins: Twins) -> None:
    async with client(twin_app(twins)) as http:
        sessions = await http.get("/v1/sessions", headers=auth(ALICE))
        runs = await http.get("/v1/sessions/s-alice/runs", headers=auth(ALICE))
        oldest = await http.get("/v1/sessions/s-alice/runs?order=oldest", headers=auth(ALICE))
        done = await http.get("/v1/sessions/s-alice/runs?status=completed", headers=auth(ALICE))
    assert [s["session_id"] for s in sessions.json()["items"]] == ["s-alice"]
    assert [r["run_id"] for r in runs.json()["items"]] == ["r-waiting", "r-done", "r-alice"]
    assert [r["run_id"] for r in oldest.json()["items"]] == ["r-alice", "r-done", "r-waiting"]
    assert [r["run_id"] for r in done.json()["items"]] == ["r-done"]


async def test_sessions_page_by_token_and_filter_by_status_and_label() -> None:
    twins = Twins()
    twins.add(
        *(make_session(f"s{i}", "alice", minute=i) for i in range(5)),
        make_session("s-gold", "alice", minute=9, labels={"tier": "gold"}, status="ended"),
    )
    async with client(twin_app(twins)) as http:
        first = (await http.get("/v1/sessions?limit=4", headers=auth(ALICE))).json()
        second = (
            await http.get(f"/v1/sessions?limit=4&page={first['next_page']}", headers=auth(ALICE))
        ).json()
        gold = await http.get("/v1/sessions?label=tier:gold", headers=auth(ALICE))
        not_gold = await http.get("/v1/sessions?label=tier:silver", headers=auth(ALICE))
        ended = await http.get("/v1/sessions?status=ended", headers=auth(ALICE))
    assert [s["session_id"] for s in first["items"]] == ["s-gold", "s4", "s3", "s2"]
    assert [s["session_id"] for s in second["items"]] == ["s1", "s0"]
    assert second["next_page"] is None
    assert [s["session_id"] for s in gold.json()["items"]] == ["s-gold"]
    assert not_gold.json()["items"] == []
    assert [s["session_id"] for s in ended.json()["items"]] == ["s-gold"]


@pytest.mark.parametrize(
    ("method", "path", "body", "where"),
    [
        ("POST", "/v1/runs", {}, "body.prompt"),
        ("POST", "/v1/runs", {"prompt": "   "}, "body.prompt"),
        ("POST", "/v1/runs", {"prompt": "hi", "model": "x"}, "body.model"),
        ("POST", "/v1/runs", {"prompt": "hi", "labels": {"a": 1}}, "body.labels.a"),
        ("POST", "/v1/runs", {"prompt": "hi", "session_id": ""}, "body.session_id"),
        ("GET", "/v1/sessions?limit=0", None, "query.limit"),
        ("GET", "/v1/sessions?limit=201", None, "query.limit"),
        ("GET", "/v1/sessions?status=asleep", None, "query.status"),
        ("GET", "/v1/sessions?label=nocolon", None, "query.label"),
        ("GET", "/v1/sessions/s-alice/runs?order=random", None, "query.order"),
        ("POST", "/v1/runs/r-waiting/tool-results", {"results": []}, "body.results"),
        (
            "POST",
            "/v1/runs/r-waiting/tool-results",
            {"results": [{"tool_use_id": "tu-1"}, {"tool_use_id": "tu-1"}]},
            "body.results",
        ),
    ],
)
async def test_invalid_requests_are_422_naming_where(
    twins: Twins, method: str, path: str, body: object, where: str
) -> None:
    async with client(twin_app(twins)) as http:
        answer = await http.request(method, path, json=body, headers=auth(ALICE))
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert error["error"] == "invalid_request"
    assert error["where"] == f"{method} {path.split('?')[0]}"
    assert where in [p["where"] for p in error["problems"]], error
    assert where in error["message"]
    assert twins.calls == []


async def test_a_page_token_not_handed_out_is_400(twins: Twins) -> None:
    async with client(twin_app(twins)) as http:
        answer = await http.get("/v1/sessions?page=garbage!", headers=auth(ALICE))
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_page_token"
    assert answer.json()["message"].startswith("query.page:")


async def test_starting_a_run_publishes_it_for_the_caller(twins: Twins) -> None:
    async with client(twin_app(twins)) as http:
        in_mine = await http.post(
            "/v1/runs",
            json={"prompt": "hi", "session_id": "s-alice", "agent_id": "a1", "labels": {"k": "v"}},
            headers=auth(ALICE),
        )
        in_new = await http.post(
            "/v1/runs", json={"prompt": "hey", "session_id": "s-fresh"}, headers=auth(BOB)
        )
        generated = await http.post("/v1/runs", json={"prompt": "yo"}, headers=auth(ALICE))
        twins.caught_up = False
        behind = await http.post(
            "/v1/runs", json={"prompt": "later", "session_id": "s-alice"}, headers=auth(ALICE)
        )
        unconfirmed = await http.post("/v1/runs", json={"prompt": "new"}, headers=auth(ALICE))
    assert in_mine.status_code == 202, in_mine.text
    body = in_mine.json()
    assert body["session_id"] == "s-alice"
    assert body["visible"] is True
    assert body["position"] == {"topic": "run-events", "partition": 0, "offset": 101}
    assert twins.calls[0] == ("start", ("run-101", "a1", "hi", "s-alice", "alice", {"k": "v"}))
    assert in_new.json()["session_id"] == "s-fresh"
    # A new session id is claimed for the caller before its run is written.
    assert twins.calls[1] == ("declare", ("s-fresh", "bob"))
    assert twins.calls[2][1][3:5] == ("s-fresh", "bob")
    assert generated.json()["session_id"] not in ("", None, "s-alice")
    assert behind.status_code == 202
    assert behind.json()["visible"] is False
    # A claim the index cannot confirm starts nothing.
    assert unconfirmed.status_code == 503, unconfirmed.text
    assert [c for c in twins.calls if c[0] == "start"][-1][1][2] == "later"


async def test_cancel_and_tool_results_are_refused_for_ended_runs_and_unknown_calls(
    twins: Twins,
) -> None:
    async with client(twin_app(twins)) as http:
        canceled = await http.post(
            "/v1/runs/r-alice/cancel", json={"reason": "enough"}, headers=auth(ALICE)
        )
        no_body = await http.post("/v1/runs/r-waiting/cancel", headers=auth(ALICE))
        ended = await http.post("/v1/runs/r-done/cancel", headers=auth(ALICE))
        unknown = await http.post(
            "/v1/runs/r-waiting/tool-results",
            json={"results": [{"tool_use_id": "tu-1"}, {"tool_use_id": "tu-9"}]},
            headers=auth(ALICE),
        )
        resumed = await http.post(
            "/v1/runs/r-waiting/tool-results",
            json={"results": [{"tool_use_id": "tu-2", "content": {"v": [1]}, "is_error": True}]},
            headers=auth(ALICE),
        )
        ended_resume = await http.post(
            "/v1/runs/r-done/tool-results",
            json={"results": [{"tool_use_id": "tu-1"}]},
            headers=auth(ALICE),
        )
    assert canceled.status_code == 202
    assert canceled.json() == {
        "run_id": "r-alice",
        "positions": [{"topic": "run-events", "partition": 0, "offset": 7}],
    }
    assert no_body.status_code == 202
    assert ended.status_code == 409
    assert ended.json()["message"] == "run 'r-done' has ended (completed); cannot cancel it"
    assert unknown.status_code == 409
    assert "'tu-9'" in unknown.json()["message"]
    assert "'tu-1', 'tu-2'" in unknown.json()["message"]
    assert resumed.status_code == 202
    assert len(resumed.json()["positions"]) == 1
    assert ended_resume.status_code == 409
    assert twins.calls == [
        ("cancel", ("r-alice", "enough")),
        ("cancel", ("r-waiting", None)),
        (
            "resume",
            ("r-waiting", [ToolResultPart(tool_use_id="tu-2", content={"v": [1]}, is_error=True)]),
        ),
    ]


async def test_the_transcript_is_served_with_thinking_bytes_intact(twins: Twins) -> None:
    secret = bytes(range(256))
    messages = [
        Message(role="user", parts=(TextPart(text="hi"),)),
        Message(
            role="assistant",
            parts=(
                ThinkingPart(redacted=secret),
                ThinkingPart(text="t", signature="sig"),
                TextPart(text="hello"),
            ),
        ),
    ]
    twins.messages["r-alice"] = messages
    async with client(twin_app(twins)) as http:
        answer = await http.get("/v1/runs/r-alice/transcript", headers=auth(ALICE))
    assert answer.status_code == 200
    body = answer.json()
    assert body["run_id"] == "r-alice"
    assert body["status"] == "running"
    assert [Message.model_validate(m) for m in body["messages"]] == messages


async def test_without_open_backends_the_api_answers_503(twins: Twins) -> None:
    app = twin_app(twins)
    import httpx

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api.test"
    ) as http:  # no lifespan: the backends never opened
        answer = await http.get("/v1/runs/r-alice", headers=auth(ALICE))
    assert answer.status_code == 503
    assert answer.json()["error"] == "unavailable"


async def test_health_metrics_page_and_unknown_routes(twins: Twins) -> None:
    async with client(twin_app(twins)) as http:
        health = await http.get("/healthz")
        await http.get("/v1/runs/r-bob", headers=auth(ALICE))
        await http.get("/v1/runs/r-alice", headers=auth(ALICE))
        unknown = await http.get("/v1/nothing-here", headers=auth(ALICE))
        metrics = await http.get("/metrics")
        page = await http.get("/")
        script = await http.get("/static/app.js")
        style = await http.get("/static/app.css")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "not_found"
    text = metrics.text
    assert (
        'runwire_api_requests_total{method="GET",route="/v1/runs/{run_id}",status="404"} 1.0'
        in text
    )
    assert (
        'runwire_api_requests_total{method="GET",route="/v1/runs/{run_id}",status="200"} 1.0'
        in text
    )
    assert 'route="<unmatched>",status="404"' in text
    assert 'runwire_api_request_duration_seconds_count{method="GET",route="/healthz"} 1.0' in text
    assert "r-bob" not in text  # ids never become labels
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/static/app.js"' in page.text
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "readEvents" in script.text
    assert style.status_code == 200


async def test_made_up_methods_are_counted_as_other_not_each_as_a_label(twins: Twins) -> None:
    # The method comes from the request line, any token a client likes (uvicorn's
    # h11 takes them all, no key needed): each one kept as a label would stay in
    # memory for good and grow every scrape.
    async with client(twin_app(twins)) as http:
        for i in range(50):
            await http.request(f"X{i}" + "Y" * 4000, "/v1/nothing-here")
        await http.request("PATCH", "/v1/nothing-here")
        text = (await http.get("/metrics")).text
    methods = set(re.findall(r'^runwire_api_requests_total\{method="([^"]*)"', text, re.M))
    assert methods == {"<other>", "PATCH"}
    assert 'runwire_api_requests_total{method="<other>",route="<unmatched>",status="401"} 50.0' in (
        text
    )
    assert "YYYY" not in text


def test_an_app_without_keys_is_refused_at_once() -> None:
    from runwire.errors import ConfigurationError
    from runwire.services.api.app import create_app
    from runwire.settings import Settings

    with pytest.raises(ConfigurationError, match="RUNWIRE_API_KEYS"):
        create_app(Settings(api_keys=None))


def test_not_found_words_do_not_depend_on_why() -> None:
    assert str(ApiError.not_found("run", "x")) == "run 'x' not found"
    assert isinstance(KeyRing.parse(f"{ALICE}:alice"), KeyRing)
    assert RunRow is not None


@pytest.mark.parametrize(
    ("refusal", "status", "code"),
    [
        (EventTooLargeError("run_started is 9 MB, over max_event_bytes"), 413, "too_large"),
        (InputError("labels['k']", "holds U+0000"), 422, "invalid_request"),
    ],
)
async def test_a_write_the_sdk_refuses_is_a_client_error_not_500(
    twins: Twins, monkeypatch: pytest.MonkeyPatch, refusal: Exception, status: int, code: str
) -> None:
    async def refuse(**_: object) -> None:
        raise refusal

    monkeypatch.setattr(twins, "start_run", refuse)
    async with client(twin_app(twins)) as http:
        answer = await http.post(
            "/v1/runs", json={"prompt": "hi", "session_id": "s-alice"}, headers=auth(ALICE)
        )
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == code


async def test_a_held_tool_call_is_approved_or_denied_by_its_runs_owner(twins: Twins) -> None:
    twins.add(
        make_run(
            "r-held",
            "alice",
            "s-alice",
            minute=7,
            status="awaiting_tools",
            phase="awaiting_approval",
            pending_tool_uses=["tu-9"],
            awaiting_approval=["tu-9"],
        )
    )
    path = "/v1/runs/r-held/approvals/tu-9"
    async with client(twin_app(twins)) as http:
        shown = await http.get("/v1/runs/r-held", headers=auth(ALICE))
        denied = await http.post(
            path, json={"approved": False, "reason": "not now"}, headers=auth(ALICE)
        )
        approved = await http.post(path, json={"approved": True}, headers=auth(ALICE))
        not_held = await http.post(
            "/v1/runs/r-waiting/approvals/tu-1", json={"approved": True}, headers=auth(ALICE)
        )
        theirs = await http.post(path, json={"approved": True}, headers=auth(BOB))
        read_only = await http.post(path, json={"approved": True}, headers=auth(ALICE_READ_ONLY))
        no_verdict = await http.post(path, json={}, headers=auth(ALICE))
    assert shown.json()["awaiting_approval"] == ["tu-9"]
    assert denied.status_code == approved.status_code == 202
    assert denied.json()["positions"][0]["offset"] == 9
    assert not_held.status_code == 409
    assert "holds no tool call 'tu-1'" in not_held.json()["message"]
    assert theirs.status_code == 404
    assert read_only.status_code == 403
    assert no_verdict.status_code == 422
    assert twins.calls == [
        ("decide", ("r-held", "tu-9", False, "not now", "alice")),
        ("decide", ("r-held", "tu-9", True, None, "alice")),
    ]


async def test_a_runs_tree_lists_its_children_depth_first(twins: Twins) -> None:
    twins.add(
        make_run("r-kid", "alice", "s-alice", minute=8, parent_run_id="r-alice"),
        make_run("r-grandkid", "alice", "s-alice", minute=9, parent_run_id="r-kid"),
        make_run("r-other", "alice", "s-alice", minute=10),
    )
    async with client(twin_app(twins)) as http:
        mine = await http.get("/v1/runs/r-alice/tree", headers=auth(ALICE))
        leaf = await http.get("/v1/runs/r-grandkid/tree", headers=auth(ALICE))
        theirs = await http.get("/v1/runs/r-alice/tree", headers=auth(BOB))
    assert mine.status_code == 200, mine.text
    assert [(n["depth"], n["run"]["run_id"]) for n in mine.json()["items"]] == [
        (0, "r-alice"),
        (1, "r-kid"),
        (2, "r-grandkid"),
    ]
    assert mine.json()["items"][1]["run"]["parent_run_id"] == "r-alice"
    assert [n["run"]["run_id"] for n in leaf.json()["items"]] == ["r-grandkid"]
    assert theirs.status_code == 404


async def test_every_time_is_written_with_the_same_precision(twins: Twins) -> None:
    """Whole-minute times too: RFC 3339 in UTC with six fraction digits, so that
    text order is time order (pydantic alone drops a zero fraction)."""
    fixed = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

    def times(value: object) -> list[str]:
        if isinstance(value, dict):
            found = [v for k, v in value.items() if k.endswith("_at") and v is not None]
            return found + [t for v in value.values() for t in times(v)]
        if isinstance(value, list):
            return [t for v in value for t in times(v)]
        return []

    async with client(twin_app(twins)) as http:
        answers = [
            await http.get(path, headers=auth(ALICE))
            for path in (
                "/v1/sessions",
                "/v1/sessions/s-alice",
                "/v1/sessions/s-alice/runs",
                "/v1/runs/r-alice",
                "/v1/runs/r-alice/tree",
            )
        ]
    written = [t for answer in answers for t in times(answer.json())]
    # What the event stream writes (see test_api_sse.py for the stream itself).
    event = Event.create(RunStarted(), run_id="r-1", occurred_at=datetime(2025, 1, 1, tzinfo=UTC))
    written.append(json.loads(exact_json.dumps(event))["occurred_at"])
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert "2025-01-01T00:01:00.000000Z" in written, written
    assert all(isinstance(t, str) and fixed.match(t) for t in written), written
