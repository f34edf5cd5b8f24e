"""Page tokens: the API only follows tokens it handed out (signed), 400 for any other."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI

from runwire.projections.runtime.paging import (
    BadPageToken,
    PageTokenSigner,
    decode_token,
    encode_token,
)
from tests.unit.api_twins import (
    ALICE,
    BOB,
    Twins,
    auth,
    client,
    make_run,
    make_session,
    twin_app,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _raw(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


# -- the signer ------------------------------------------------------------------------


def test_a_sealed_token_opens_only_unchanged_with_the_same_key_and_scope() -> None:
    signer = PageTokenSigner(b"k" * 32)
    token = encode_token(T0, "s-1")
    sealed = signer.seal(token, "alice")
    assert signer.open(sealed, "alice") == token
    assert PageTokenSigner(b"k" * 32).open(sealed, "alice") == token  # another instance

    inner, tag = sealed.split(".")
    forged = [
        token,  # never sealed
        encode_token(T0, "s-2") + "." + tag,  # another token under the tag
        sealed[:-1] + ("A" if sealed[-1] != "A" else "B"),  # a changed tag
        inner + ".",
        "." + tag,
        "garbage!",
        "",
    ]
    for bad in forged:
        with pytest.raises(BadPageToken, match="not a page token this API handed out"):
            signer.open(bad, "alice")
    with pytest.raises(BadPageToken):
        signer.open(sealed, "bob")
    with pytest.raises(BadPageToken):
        PageTokenSigner(b"j" * 32).open(sealed, "alice")


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        PageTokenSigner("short")


@pytest.mark.parametrize(
    "token",
    [
        _raw([T0.isoformat(), "s\x00"]),  # NUL: no Postgres query may see it
        _raw([T0.isoformat(), "x" * 201]),
        _raw([T0.isoformat(), 7]),
        _raw(["2025-01-01T00:00:00", "s-1"]),  # no time zone
        _raw([T0.isoformat()]),
        _raw({"a": 1}),
        "%%%",
    ],
)
def test_a_store_token_holding_no_sort_key_is_bad(token: str) -> None:
    with pytest.raises(BadPageToken) as caught:
        decode_token(token)
    assert "\x00" not in str(caught.value)


# -- the API ---------------------------------------------------------------------------


def _twins() -> Twins:
    twins = Twins()
    twins.add(*(make_session(f"s{i}", "alice", minute=i) for i in range(5)))
    twins.add(*(make_session(f"b{i}", "bob", minute=i) for i in range(5)))
    twins.add(*(make_run(f"r{i}", "alice", "s1", minute=i) for i in range(5)))
    return twins


def _app(twins: Twins, secret: str | None = None) -> FastAPI:
    app = twin_app(twins)
    if secret is not None:
        app.state.page_tokens = PageTokenSigner(secret)
    return app


async def test_a_token_the_api_never_handed_out_is_400() -> None:
    """A well-formed store token (base64 JSON of a sort key) is not one the API handed out."""
    forged = encode_token(T0, "s9")
    nul = _raw([T0.isoformat(), "s\x00"])
    async with client(_app(_twins())) as http:
        answers = [
            await http.get(f"/v1/sessions?page={forged}", headers=auth(ALICE)),
            await http.get(f"/v1/sessions/s1/runs?page={forged}", headers=auth(ALICE)),
            await http.get(f"/v1/sessions?page={nul}", headers=auth(ALICE)),
        ]
    for answer in answers:
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "bad_page_token"
        assert "not a page token this API handed out" in answer.json()["message"]
        assert "\x00" not in answer.text


async def test_a_handed_out_token_pages_on_only_for_its_user_and_listing() -> None:
    async with client(_app(_twins())) as http:
        first = (await http.get("/v1/sessions?limit=2", headers=auth(ALICE))).json()
        token = first["next_page"]
        second = await http.get(f"/v1/sessions?limit=2&page={token}", headers=auth(ALICE))
        as_bob = await http.get(f"/v1/sessions?limit=2&page={token}", headers=auth(BOB))
        elsewhere = await http.get(f"/v1/sessions/s1/runs?page={token}", headers=auth(ALICE))
        runs = (await http.get("/v1/sessions/s1/runs?limit=3", headers=auth(ALICE))).json()
        more_runs = await http.get(
            f"/v1/sessions/s1/runs?limit=3&page={runs['next_page']}", headers=auth(ALICE)
        )
    assert [s["session_id"] for s in first["items"]] == ["s4", "s3"]
    assert second.status_code == 200, second.text
    assert [s["session_id"] for s in second.json()["items"]] == ["s2", "s1"]
    assert as_bob.status_code == 400
    assert elsewhere.status_code == 400
    assert [r["run_id"] for r in more_runs.json()["items"]] == ["r1", "r0"]


async def test_instances_sharing_the_secret_follow_each_others_tokens() -> None:
    twins = _twins()
    secret = "a-shared-page-secret-0123456789"
    async with client(_app(twins, secret)) as one, client(_app(twins, secret)) as two:
        token = (await one.get("/v1/sessions?limit=2", headers=auth(ALICE))).json()["next_page"]
        followed = await two.get(f"/v1/sessions?limit=2&page={token}", headers=auth(ALICE))
    async with client(_app(twins)) as three:
        stranger = await three.get(f"/v1/sessions?limit=2&page={token}", headers=auth(ALICE))
    assert followed.status_code == 200, followed.text
    assert [s["session_id"] for s in followed.json()["items"]] == ["s2", "s1"]
    assert stranger.status_code == 400


async def test_the_secret_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNWIRE_API_PAGE_SECRET", "from-the-environment-0123456789")
    twins = _twins()
    async with client(_app(twins)) as one, client(_app(twins)) as two:
        token = (await one.get("/v1/sessions?limit=2", headers=auth(ALICE))).json()["next_page"]
        followed = await two.get(f"/v1/sessions?limit=2&page={token}", headers=auth(ALICE))
    assert followed.status_code == 200, followed.text
