"""Usage end to end: a run of the local model -> usage events -> the usage projection ->
``GET /v1/usage`` (the caller's only) -> the web page's chart, in headless Chromium."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.services.tools.wiring import tool_runner_service
from runwire.settings import Settings
from tests.helpers import assert_eventually
from tests.integration.api_support import ALICE, BOB, api, auth, projectors, wait_status
from tests.integration.test_api_page import browser_page

PRICES = '{"runwire-local-1": {"input": 1, "output": 4}}'


async def test_a_runs_usage_reaches_the_api_and_the_page(
    settings: Settings, tmp_path: Path
) -> None:
    priced = settings.model_copy(update={"usage_prices": json.loads(PRICES)})
    async with (
        projectors(priced, ("runs", "sessions", "transcripts", "usage")),
        orchestrator_service(priced),
        tool_runner_service(priced),
        api(priced) as rw,
    ):
        started = await rw.http.post(
            "/v1/runs",
            json={"prompt": "what is 12 * (3 + 4)?", "agent_id": "calc"},
            headers=auth(ALICE),
        )
        run_id = started.json()["run_id"]
        run = await wait_status(rw.http, run_id, "completed")
        seen: dict[str, Any] = {}

        async def usage_projected() -> bool:
            answer = await rw.http.get("/v1/usage", params={"by": "agent"}, headers=auth(ALICE))
            assert answer.status_code == 200, answer.text
            seen.update(answer.json())
            assert [g["calls"] for g in seen["groups"]] == [2]  # the tool call, then the answer
            return True

        await assert_eventually(usage_projected, timeout=30)
        theirs = await rw.http.get("/v1/usage", params={"by": "run"}, headers=auth(BOB))

        async with browser_page(rw.url, tmp_path / "profile") as page:

            async def loaded() -> bool:
                assert await page.evaluate("document.readyState") == "complete"
                return True

            await assert_eventually(loaded, timeout=15)
            await page.evaluate(
                f"document.getElementById('key-input').value = {json.dumps(ALICE)};"
                "document.getElementById('key-form').requestSubmit()"
            )

            async def chart_drawn() -> bool:
                assert await page.evaluate("document.getElementById('usage').hidden") is False
                return True

            await assert_eventually(chart_drawn, timeout=15)
            chart = {
                "bars": await page.evaluate(
                    "[...document.querySelectorAll('#usage-chart g.day')]"
                    ".map(g => [g.dataset.day, Number(g.dataset.tokens)])"
                ),
                "slots": await page.evaluate(
                    "document.getElementById('usage-chart').children.length"
                ),
                "total": await page.evaluate("document.getElementById('usage-total').textContent"),
                "tip": await page.evaluate(
                    "document.querySelector('#usage-chart g.day title').textContent"
                ),
            }
            await page.screenshot(tmp_path / "usage.png")

    (group,) = seen["groups"]
    assert group["key"] == "calc"
    assert [(m["model"], m["provider"]) for m in group["models"]] == [("runwire-local-1", "local")]
    # The local model thinks before it answers: reasoning tokens, inside the output.
    assert 0 < group["reasoning_tokens"] < group["output_tokens"]
    assert group["input_tokens"] == run["input_tokens"]
    assert group["output_tokens"] == run["output_tokens"]
    expected = (group["input_tokens"] * 1 + group["output_tokens"] * 4) / 1_000_000
    assert abs(float(group["cost"]) - expected) < 1e-12
    assert theirs.json()["groups"] == []
    today = datetime.now(UTC).date().isoformat()
    assert chart["bars"] == [[today, group["total_tokens"]]]
    assert chart["slots"] == 14  # a bar or an empty mark for each day
    assert f"{group['total_tokens']:,}" in chart["total"]
    assert "USD" in chart["total"]
    assert "2 call(s)" in chart["tip"]
