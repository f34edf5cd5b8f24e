"""Hostile input against the API and the SDK on the real stack: NUL, control characters,
oversize ids and labels, forged page tokens. Never a 500, never a run the projections
cannot apply."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import quote

import pytest

from runwire.client import Client
from runwire.errors import InputError
from runwire.projections.runtime.paging import encode_token
from runwire.settings import Settings
from tests.integration.api_support import ALICE, api, auth, projectors

pytestmark = pytest.mark.integration


async def test_ids_labels_and_tokens_no_store_can_hold_are_refused_never_500(
    settings: Settings,
) -> None:
    async with projectors(settings, ("runs", "sessions")), api(settings) as rw:
        started = await rw.http.post(
            "/v1/runs",
            json={"prompt": "hi", "session_id": "s-1", "labels": {"tier": "gold"}},
            headers=auth(ALICE),
        )
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]

        reads = {
            path: await rw.http.get(path, headers=auth(ALICE))
            for bad in ("%00", quote("r\x00"), quote("\x1b[2J"), "r" * 201)
            for path in (
                f"/v1/runs/{bad}",
                f"/v1/runs/{bad}/transcript",
                f"/v1/runs/{bad}/events",
                f"/v1/sessions/{bad}",
                f"/v1/sessions/{bad}/runs",
            )
        }
        labels = await rw.http.get("/v1/sessions", params={"label": "a:\x00"}, headers=auth(ALICE))
        forged = encode_token(datetime.now(UTC), "s-1")  # well-formed, never handed out
        tokens = [
            await rw.http.get("/v1/sessions", params={"page": forged}, headers=auth(ALICE)),
            await rw.http.get(
                "/v1/sessions/s-1/runs", params={"page": forged}, headers=auth(ALICE)
            ),
        ]
        headers = {**auth(ALICE), "Content-Type": "application/json"}
        writes = [
            await rw.http.post(
                "/v1/runs", content=json.dumps({"prompt": "hi", **body}), headers=headers
            )
            for body in (
                {"agent_id": "a\x00"},
                {"turn_id": "t\x00"},
                {"session_id": "s\x00"},
                {"labels": {"k": "v\x00"}},
                {"labels": {"k": "v" * 2_000_000}},
            )
        ]
        ok = await rw.http.get(f"/v1/runs/{run_id}", headers=auth(ALICE))
        listed = await rw.http.get(
            "/v1/sessions", params={"label": "tier:gold"}, headers=auth(ALICE)
        )

    for path, answer in reads.items():
        assert answer.status_code == 422, (path, answer.text)
        assert answer.json()["problems"][0]["where"] in ("path.run_id", "path.session_id")
    assert labels.status_code == 422, labels.text
    assert [p["where"] for p in labels.json()["problems"]] == ["query.label"]
    for answer in tokens:
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "bad_page_token"
    for answer in writes[:4]:
        assert answer.status_code == 422, answer.text
    assert writes[4].status_code in (413, 422), writes[4].text
    assert ok.status_code == 200
    assert ok.json()["labels"] == {"tier": "gold"}
    assert listed.status_code == 200, listed.text  # a well-formed filter is still taken


async def test_handed_out_page_tokens_page_through_the_real_stores(settings: Settings) -> None:
    async with projectors(settings, ("runs", "sessions")), api(settings) as rw:
        for i in range(3):
            started = await rw.http.post(
                "/v1/runs", json={"prompt": f"p{i}", "session_id": "s-paged"}, headers=auth(ALICE)
            )
            assert started.json()["visible"] is True, started.text
        first = (await rw.http.get("/v1/sessions/s-paged/runs?limit=2", headers=auth(ALICE))).json()
        second = await rw.http.get(
            "/v1/sessions/s-paged/runs",
            params={"limit": 2, "page": first["next_page"]},
            headers=auth(ALICE),
        )
        inner = first["next_page"].rsplit(".", 1)[0]  # the store's own token, unsigned
        unsigned = await rw.http.get(
            "/v1/sessions/s-paged/runs", params={"limit": 2, "page": inner}, headers=auth(ALICE)
        )
    assert len(first["items"]) == 2
    assert second.status_code == 200, second.text
    assert len(second.json()["items"]) == 1
    assert second.json()["next_page"] is None
    assert unsigned.status_code == 400


async def test_the_sdk_refuses_such_values_before_anything_is_written(
    settings: Settings,
) -> None:
    async with Client(settings) as rw:
        with pytest.raises(InputError) as agent:
            await rw.run("a\x00", "hi", run_id="r-nul")
        with pytest.raises(InputError) as labels:
            await rw.run("agent", "hi", labels={"k": "v" * 2_000_000})
        handle = await rw.run("agent: café", "hi", session_id="s-1", turn_id="t-1")
    assert agent.value.field == "agent_id"
    assert labels.value.field == "payload.labels['k']"
    assert handle.run_id
