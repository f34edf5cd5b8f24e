"""What a caller writes into a session's run after it began (tool results, a cancel's
reason) is sealed with the session's key, so that erasing the session reaches it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.settings import Settings
from tests.helpers import assert_eventually
from tests.integration.api_support import ANN, Api, api, auth
from tests.integration.api_support import projectors as api_projectors
from tests.integration.sealing.scan import in_the_log, nowhere

pytestmark = pytest.mark.integration


async def awaiting_tools(rw: Api, session_id: str) -> tuple[str, str]:
    """A run of ``session_id`` waiting for its calculator call: (run id, tool_use id)."""
    started = await rw.http.post(
        "/v1/runs", json={"prompt": "what is 6 * 7?", "session_id": session_id}, headers=auth(ANN)
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    seen: dict[str, Any] = {}

    async def awaiting() -> bool:
        seen.update((await rw.http.get(f"/v1/runs/{run_id}", headers=auth(ANN))).json())
        assert seen["status"] == "awaiting_tools", seen
        return True

    await assert_eventually(awaiting, timeout=60)
    return run_id, seen["pending_tool_uses"][0]


@pytest.mark.timeout(240)
async def test_tool_results_and_cancel_reasons_are_erased_with_the_session(
    sealed: Settings,
) -> None:
    result_secret, reason_secret = f"lynx-{uuid.uuid4().hex}", f"puma-{uuid.uuid4().hex}"
    async with api_projectors(sealed), orchestrator_service(sealed), api(sealed) as rw:
        run_id, tool_use_id = await awaiting_tools(rw, "s-sealed")
        resumed = await rw.http.post(
            f"/v1/runs/{run_id}/tool-results",
            json={"results": [{"tool_use_id": tool_use_id, "content": {"note": result_secret}}]},
            headers=auth(ANN),
        )
        assert resumed.status_code == 202, resumed.text
        second, _ = await awaiting_tools(rw, "s-sealed")
        canceled = await rw.http.post(
            f"/v1/runs/{second}/cancel", json={"reason": reason_secret}, headers=auth(ANN)
        )
        assert canceled.status_code == 202, canceled.text
        # Sealed as written: the log never held either in clear.
        assert await in_the_log(sealed, result_secret.encode()) == []
        assert await in_the_log(sealed, reason_secret.encode()) == []
        erased = await rw.http.delete("/v1/sessions/s-sealed", headers=auth(ANN))
        assert erased.status_code == 200, erased.text

    async def gone() -> bool:
        return await nowhere(sealed, result_secret.encode(), reason_secret.encode())

    await assert_eventually(gone, timeout=30)
