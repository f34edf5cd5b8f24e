"""Erasing a session through the HTTP API: only the caller's (tenant, user) session,
and afterwards its secret is in no byte of the deployment."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from runwire.services.api.app import create_app
from runwire.services.api.server import ApiServer
from runwire.sessions import AsyncSession
from runwire.sessions.embedded import projectors_running
from runwire.sessions.log_backend import LogBackend
from runwire.settings import Settings
from tests.helpers import assert_eventually
from tests.integration.sealing.scan import in_postgres, in_redis, nowhere

A, B = "tenant-a", "tenant-b"
KEY_A, KEY_A_READ, KEY_B = "erase-key-a-6f2c9d1e", "erase-read-a-0b8e3f7a", "erase-key-b-4d1a7c2f"


@pytest_asyncio.fixture(loop_scope="session")
async def sealed(settings: Settings, tmp_path: Path) -> AsyncIterator[Settings]:
    keys = f"{KEY_A}:ann:write:{A}, {KEY_A_READ}:ann:read:{A}, {KEY_B}:ann:write:{B}"
    yield settings.model_copy(
        update={
            "sealing": True,
            "sealing_key_file": tmp_path / "kek.json",
            "sealing_key_cache_seconds": 0.0,
            "api_keys": SecretStr(keys),
        }
    )


async def _session(sealed: Settings, tenant: str, secret: str) -> str:
    async with (
        LogBackend(sealed.model_copy(update={"tenant": tenant})) as backend,
        AsyncSession(user_id="ann", tenant=tenant, backend=backend) as s,
    ):
        await s.add_message("user", f"my secret is {secret}")
        await s.add_message("assistant", f"noted: {secret}")
        return s.session_id


@pytest.mark.timeout(180)
async def test_the_api_erases_only_the_callers_session_and_every_byte_of_it(
    sealed: Settings,
) -> None:
    secret, kept = f"lynx-{uuid.uuid4().hex}", f"ibex-{uuid.uuid4().hex}"
    async with projectors_running(sealed):
        mine = await _session(sealed, A, secret)
        theirs = await _session(sealed, B, kept)
        async with (
            ApiServer(create_app(sealed), port=0, grace=1.0) as server,
            httpx.AsyncClient(base_url=server.url, timeout=60.0) as http,
        ):

            def key(k: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {k}"}

            # Another tenant's session (same user id): not found, nothing erased.
            answer = await http.delete(f"/v1/sessions/{theirs}", headers=key(KEY_A))
            assert answer.status_code == 404, answer.text
            # A read-only key may not erase.
            answer = await http.delete(f"/v1/sessions/{mine}", headers=key(KEY_A_READ))
            assert answer.status_code == 403, answer.text

            answer = await http.delete(f"/v1/sessions/{mine}", headers=key(KEY_A))
            assert answer.status_code == 200, answer.text
            receipt = answer.json()
            assert receipt["session_id"] == mine
            assert receipt["erased_key_ids"]
            assert all(k.startswith(f"{mine}/") for k in receipt["erased_key_ids"])
            assert (await http.get(f"/v1/sessions/{mine}", headers=key(KEY_A))).status_code == 404
            again = await http.delete(f"/v1/sessions/{mine}", headers=key(KEY_A))
            assert again.status_code == 404  # erased: gone for the API too
            assert (await http.get(f"/v1/sessions/{theirs}", headers=key(KEY_B))).status_code == 200

        await assert_eventually(lambda: nowhere(sealed, secret.encode()), timeout=30)
        # The other tenant's session is whole, and served only by the projections.
        assert await in_postgres(sealed, kept.encode()) + await in_redis(sealed, kept.encode())


@pytest.mark.timeout(180)
async def test_a_user_erases_itself_and_only_itself(sealed: Settings) -> None:
    secret, kept = f"marten-{uuid.uuid4().hex}", f"bison-{uuid.uuid4().hex}"
    async with projectors_running(sealed):
        mine = await _session(sealed, A, secret)
        theirs = await _session(sealed, B, kept)  # the same user id in another tenant
        async with (
            ApiServer(create_app(sealed), port=0, grace=1.0) as server,
            httpx.AsyncClient(base_url=server.url, timeout=60.0) as http,
        ):

            def key(k: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {k}"}

            answer = await http.delete("/v1/me", headers=key(KEY_A_READ))
            assert answer.status_code == 403, answer.text
            answer = await http.delete("/v1/me", headers=key(KEY_A))
            assert answer.status_code == 200, answer.text
            receipt = answer.json()
            assert (receipt["user_id"], receipt["tenant"]) == ("ann", A)
            assert receipt["session_ids"] == [mine]
            assert any(k.startswith(f"{mine}/") for k in receipt["erased_key_ids"])
            again = await http.delete("/v1/me", headers=key(KEY_A))
            assert again.status_code == 200, again.text
            for field in ("session_ids", "erased_key_ids"):
                assert again.json()[field] == receipt[field]
            # The erased user's key can write nothing more: a clear 409, not a 500.
            answer = await http.post("/v1/runs", json={"prompt": "back?"}, headers=key(KEY_A))
            assert answer.status_code == 409, answer.text
            assert answer.json()["error"] == "erased"
            assert "ann" in answer.json()["message"]
            assert (await http.get(f"/v1/sessions/{mine}", headers=key(KEY_A))).status_code == 404
            assert (await http.get(f"/v1/sessions/{theirs}", headers=key(KEY_B))).status_code == 200

        await assert_eventually(lambda: nowhere(sealed, secret.encode()), timeout=30)
        assert await in_postgres(sealed, kept.encode()) + await in_redis(sealed, kept.encode())


async def test_an_api_that_does_not_seal_refuses_to_erase_and_deletes_nothing(
    settings: Settings,
) -> None:
    plain = settings.model_copy(update={"api_keys": SecretStr(f"{KEY_A}:ann:write:{A}")})
    async with projectors_running(plain):
        mine = await _session(plain, A, "not-secret")
        async with (
            ApiServer(create_app(plain), port=0, grace=1.0) as server,
            httpx.AsyncClient(base_url=server.url, timeout=60.0) as http,
        ):
            headers = {"Authorization": f"Bearer {KEY_A}"}
            answer = await http.delete(f"/v1/sessions/{mine}", headers=headers)
            assert answer.status_code == 409, answer.text
            assert answer.json()["error"] == "erasure_unavailable"
            answer = await http.delete("/v1/me", headers=headers)
            assert answer.status_code == 409, answer.text
            assert answer.json()["error"] == "erasure_unavailable"
            assert (await http.get(f"/v1/sessions/{mine}", headers=headers)).status_code == 200
