"""JSON values over HTTP on the real stack: what no store can hold (a lone surrogate,
a number no decimal holds) is 422 naming where, before anything is written; what
they can hold, however far out, is taken exactly."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.settings import Settings
from tests.helpers import assert_eventually
from tests.integration.api_support import ALICE, api, auth, projectors

pytestmark = pytest.mark.integration

JSON = {**auth(ALICE), "Content-Type": "application/json"}


def results(*contents: str, ids: tuple[str, ...]) -> str:
    """A tool-results body, its contents as raw JSON text (escapes as a client sends them)."""
    items = [
        f'{{"tool_use_id": {json.dumps(i)}, "content": {c}}}'
        for i, c in zip(ids, contents, strict=True)
    ]
    return f'{{"results": [{", ".join(items)}]}}'


@pytest.mark.timeout(180)
async def test_json_values_no_store_holds_are_422_naming_where_and_nothing_is_written(
    settings: Settings,
) -> None:
    async with projectors(settings), orchestrator_service(settings), api(settings) as rw:
        started = await rw.http.post(
            "/v1/runs", json={"prompt": "what is 6 * 7?"}, headers=auth(ALICE)
        )
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        pending: list[str] = []

        async def awaiting() -> bool:
            got = (await rw.http.get(f"/v1/runs/{run_id}", headers=auth(ALICE))).json()
            assert got["status"] == "awaiting_tools", got
            pending[:] = got["pending_tool_uses"]
            return True

        await assert_eventually(awaiting, timeout=60)
        (use,) = pending
        one = (use,)
        tool_results = f"/v1/runs/{run_id}/tool-results"
        refused: dict[str, tuple[str, dict[str, Any]]] = {
            "text": (tool_results, {"content": results('"\\ud800"', ids=one)}),
            "key": (tool_results, {"content": results('{"\\ud800": 1}', ids=one)}),
            "nested": (
                tool_results,
                {"content": results('{"rows": ["ok", "x\\udfffy"]}', ids=one)},
            ),
            "second result": (
                tool_results,
                {"content": results('"fine"', '["\\udc80"]', ids=(use, "other"))},
            ),
            "huge exponent": (
                tool_results,
                {"content": results("1e999999999999999999999", ids=one)},
            ),
            "tiny exponent": (
                tool_results,
                {"content": results("[-1.5e-99999999999999999999999]", ids=one)},
            ),
            # The API's other fields refuse the same text as they always did.
            "prompt": ("/v1/runs", {"content": '{"prompt": "a\\ud800"}'}),
            "label": ("/v1/runs", {"content": '{"prompt": "hi", "labels": {"k": "\\ud800"}}'}),
        }
        answers = {
            name: await rw.http.post(path, headers=JSON, **body)
            for name, (path, body) in refused.items()
        }
        still = (await rw.http.get(f"/v1/runs/{run_id}", headers=auth(ALICE))).json()

        # What a decimal holds, however far out, and whole surrogate pairs: taken exactly.
        taken = await rw.http.post(
            tool_results,
            content=results('{"big": 1e999999999999999999, "text": "\\ud83d\\ude00"}', ids=one),
            headers=JSON,
        )
        shown: list[Any] = []

        async def has_result() -> bool:
            got = await rw.http.get(f"/v1/runs/{run_id}/transcript", headers=auth(ALICE))
            parts = [
                p
                for m in json.loads(got.text, parse_float=Decimal)["messages"]
                for p in m["parts"]
                if p["kind"] == "tool_result"
            ]
            assert parts, got.text
            shown[:] = parts
            return True

        await assert_eventually(has_result, timeout=30)

    problems = {
        name: (a.status_code, [p["where"] for p in a.json().get("problems", [])], a.text[:300])
        for name, a in answers.items()
    }
    expected = {
        "text": "body.results.0.content",
        "key": "body.results.0.content",
        "nested": "body.results.0.content",
        "second result": "body.results.1.content",
        "huge exponent": "body",
        "tiny exponent": "body",
        "prompt": "body.prompt",
        "label": "body.labels",
    }
    for name, where in expected.items():
        status, wheres, text = problems[name]
        assert (status, wheres) == (422, [where]), (name, problems[name])
        assert answers[name].json()["error"] == "invalid_request", (name, text)
    for name in ("text", "key", "second result"):
        assert "lone surrogate" in answers[name].text, answers[name].text
    assert "value.rows[1] holds a lone surrogate (U+DFFF) at 1" in answers["nested"].text
    huge = answers["huge exponent"].json()["problems"][0]["what"]
    assert "the number 1e999999999999999999999 at line 1 column" in huge, huge
    assert "out of range" in huge, huge
    assert "-1.5e-99999999999999999999999" in answers["tiny exponent"].text
    # Nothing of the refused requests was written: the run awaits the same call.
    assert (still["status"], still["pending_tool_uses"]) == ("awaiting_tools", [use]), still
    assert taken.status_code == 202, taken.text
    assert shown[0]["content"] == {"big": Decimal("1e999999999999999999"), "text": "😀"}, shown
