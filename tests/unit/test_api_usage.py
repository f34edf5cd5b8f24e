"""``GET /v1/usage`` on the in-memory twins: the caller's usage only, priced, checked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.contract.usage import Rig, usage
from tests.unit.api_twins import ALICE, ALICE_READ_ONLY, BOB, Twins, auth, client, twin_app


async def _fed(twins: Twins) -> None:
    today = datetime.now(UTC).date()
    rig = Rig(twins.usage, twins.usage, "run-events", "session-events")
    await rig.feed(
        [
            usage("r1", user="alice", agent="helper", model="gpt-x", day=today),
            usage("r2", user="alice", agent="helper", model="mystery", day=today),
            usage("r3", user="alice", agent="coder", model="gpt-x", day=today - timedelta(days=1)),
            usage("r4", user="alice", agent="coder", model="gpt-x", day=today - timedelta(days=9)),
            usage("r5", user="bob", agent="spy", model="gpt-x", day=today),
        ]
    )


async def _get(key: str, **params: Any) -> Any:
    twins = Twins()
    await _fed(twins)
    async with client(twin_app(twins)) as http:
        return await http.get("/v1/usage", params=params, headers=auth(key))


async def test_the_caller_sees_only_their_usage_priced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNWIRE_USAGE_PRICES", '{"gpt-x": {"input": 1, "output": 10}}')
    answer = await _get(ALICE, by="agent")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["by"] == "agent"
    assert body["since"] == (datetime.now(UTC).date() - timedelta(days=6)).isoformat()
    groups = {g["key"]: g for g in body["groups"]}
    assert set(groups) == {"helper", "coder"}  # bob's "spy" never shows
    # The nine-day-old call is outside the default week.
    assert groups["coder"]["calls"] == 1
    # 100 input at 1 + 10 output at 10 per million.
    assert groups["coder"]["cost"] == "0.0002"
    assert groups["coder"]["currency"] == "USD"
    assert groups["helper"]["cost"] is None
    assert groups["helper"]["unpriced_models"] == ["mystery"]
    assert [m["model"] for m in groups["helper"]["models"]] == ["gpt-x", "mystery"]
    assert groups["helper"]["models"][0]["cost"] == "0.0002"


async def test_days_and_a_longer_window() -> None:
    body = (await _get(ALICE_READ_ONLY, by="day", since="30d")).json()
    assert [g["calls"] for g in body["groups"]] == [1, 1, 2]
    keys = [g["key"] for g in body["groups"]]
    assert keys == sorted(keys)


async def test_another_user_sees_nothing_of_alice() -> None:
    body = (await _get(BOB, by="run")).json()
    assert [g["key"] for g in body["groups"]] == ["r5"]


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"since": "last week"}, "query.since"),
        ({"until": "2026-02-30"}, "query.until"),
        ({"by": "user"}, "query.by"),
        ({"limit": "0"}, "query.limit"),
    ],
)
async def test_a_bad_query_is_422_naming_the_parameter(params: dict[str, str], where: str) -> None:
    answer = await _get(ALICE, **params)
    assert answer.status_code == 422, answer.text
    assert where in answer.text


async def test_no_key_is_401() -> None:
    twins = Twins()
    async with client(twin_app(twins)) as http:
        assert (await http.get("/v1/usage")).status_code == 401
