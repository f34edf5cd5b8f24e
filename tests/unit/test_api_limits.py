"""The API's limits on the in-memory twins: the key before the body, the body limit,
outages answered 503, and the error responses the OpenAPI document declares."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any

import psycopg
import pytest
import redis.exceptions
from fastapi import FastAPI

from runwire.services.api.app import create_app
from runwire.services.api.auth import KeyRing
from runwire.services.api.backends import Options
from runwire.sessions.errors import SessionBusy
from runwire.settings import Settings
from tests.unit.api_twins import (
    ALICE,
    KEYS,
    RunsTwin,
    SessionsTwin,
    Twins,
    auth,
    client,
    make_run,
    make_session,
)

LIMIT = 1000


def app_on(twins: Twins, **options: Any) -> FastAPI:
    return create_app(
        Settings(),
        keys=KeyRing.parse(KEYS),
        runs=RunsTwin(twins),
        sessions=SessionsTwin(twins),
        transcripts=twins,
        control=twins,
        usage=twins.usage,  # a twin for every backend: nothing running behind a unit test
        options=Options(**{"visibility_timeout": 0.1, "max_body_bytes": LIMIT, **options}),
    )


class Exchange:
    """One request driven through the app as ASGI, body chunk by chunk, counting the reads."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.read = 0
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""

    async def receive(self) -> MutableMapping[str, Any]:
        if self.read < len(self.chunks):
            self.read += 1
            more = self.read < len(self.chunks)
            return {"type": "http.request", "body": self.chunks[self.read - 1], "more_body": more}
        await asyncio.Event().wait()  # the client is still there, sending nothing
        raise AssertionError("unreachable")

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    async def run(self, app: FastAPI, path: str, headers: dict[str, str]) -> dict[str, Any]:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 5000),
            "server": ("api.test", 80),
            "state": {},
        }
        await asyncio.wait_for(app(scope, self.receive, self.send), 5)
        found: dict[str, Any] = json.loads(self.body)
        return found


@pytest.fixture
def twins() -> Twins:
    t = Twins()
    t.add(make_session("s-alice", "alice"), make_run("r-alice", "alice", "s-alice"))
    return t


async def test_an_unauthenticated_request_is_401_before_a_byte_of_its_body_is_read(
    twins: Twins,
) -> None:
    app = app_on(twins)
    chunked = {"content-type": "application/json", "transfer-encoding": "chunked"}
    async with client(app):
        for headers in (chunked, {**chunked, "authorization": f"Bearer {ALICE}x"}):
            exchange = Exchange([b"x" * 100] * 50)  # 5 KB, over the limit, and not JSON
            body = await exchange.run(app, "/v1/runs", headers)
            assert exchange.status == 401, body
            assert exchange.read == 0
            assert body["error"] == "unauthorized"
            assert exchange.headers["www-authenticate"] == "Bearer"


async def test_an_unauthenticated_malformed_or_oversized_request_is_401_not_422_or_413(
    twins: Twins,
) -> None:
    headers = {"content-type": "application/json"}
    async with client(app_on(twins)) as http:
        answers = [
            await http.post("/v1/runs", content=b"{not json", headers=headers),
            await http.post("/v1/runs", json={"prompt": 7, "unknown": True}),
            await http.post("/v1/runs", content=b"x" * (LIMIT + 1), headers=headers),
            await http.post("/v1/runs/r-alice/tool-results", content=b"[", headers=headers),
            await http.get("/v1/sessions?limit=oops"),
            await http.get("/v1/no-such-route"),
        ]
    assert [a.status_code for a in answers] == [401] * len(answers), [a.text for a in answers]
    assert {a.json()["error"] for a in answers} == {"unauthorized"}
    assert answers[0].json()["where"] == "POST /v1/runs"


async def test_a_body_declared_over_the_limit_is_413_and_never_read(twins: Twins) -> None:
    app = app_on(twins)
    headers = {
        "content-type": "application/json",
        "content-length": str(LIMIT + 1),
        "authorization": f"Bearer {ALICE}",
    }
    async with client(app):
        exchange = Exchange([b"x" * (LIMIT + 1)])
        body = await exchange.run(app, "/v1/runs", headers)
    assert exchange.status == 413
    assert exchange.read == 0
    assert exchange.headers["connection"] == "close"
    assert body == {
        "error": "too_large",
        "message": f"the request body is larger than the limit of {LIMIT} bytes",
        "where": "POST /v1/runs",
    }
    assert twins.calls == []


async def test_a_chunked_body_is_cut_off_at_the_chunk_that_crosses_the_limit(
    twins: Twins,
) -> None:
    app = app_on(twins)
    headers = {
        "content-type": "application/json",
        "transfer-encoding": "chunked",
        "authorization": f"Bearer {ALICE}",
    }
    prompt = json.dumps({"prompt": "y" * 3000}).encode()
    chunks = [prompt[i : i + 100] for i in range(0, len(prompt), 100)]
    async with client(app):
        exchange = Exchange(chunks)
        body = await exchange.run(app, "/v1/runs", headers)
    assert exchange.status == 413, body
    assert exchange.read == LIMIT // 100 + 1  # nothing read after the limit was crossed
    assert exchange.headers["connection"] == "close"
    assert body["error"] == "too_large"
    assert body["where"] == "POST /v1/runs"
    assert twins.calls == []


async def test_a_body_within_the_limit_goes_through_and_the_limit_is_an_option(
    twins: Twins,
) -> None:
    body = {"prompt": "z" * (LIMIT - 100)}
    async with client(app_on(twins)) as http:
        small = await http.post("/v1/runs", json=body, headers=auth(ALICE))
    async with client(app_on(twins, max_body_bytes=LIMIT // 2)) as http:
        refused = await http.post("/v1/runs", json=body, headers=auth(ALICE))
    assert small.status_code == 202, small.text
    assert refused.status_code == 413
    assert refused.json()["message"].endswith(f"limit of {LIMIT // 2} bytes")


class Trickle(Exchange):
    """A client that sends the start of its body, then nothing, connection open."""

    async def receive(self) -> MutableMapping[str, Any]:
        if self.read == 0:
            self.read = 1
            return {"type": "http.request", "body": b'{"prompt": "', "more_body": True}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_body_that_does_not_arrive_in_time_is_408_and_a_whole_one_waits_on(
    twins: Twins,
) -> None:
    app = app_on(twins, body_timeout=0.2)
    headers = {
        "content-type": "application/json",
        "transfer-encoding": "chunked",
        "authorization": f"Bearer {ALICE}",
    }
    async with client(app):
        exchange = Trickle([])
        body = await asyncio.wait_for(exchange.run(app, "/v1/runs", headers), timeout=10)
    assert exchange.status == 408, body
    assert exchange.headers["connection"] == "close"
    assert body == {
        "error": "body_timeout",
        "message": "the request body did not arrive within 0.2 s",
        "where": "POST /v1/runs",
    }
    assert twins.calls == []
    # The deadline is the body's: a request whose body is whole is not cut short.
    async with client(app_on(twins, body_timeout=0.01)) as http:
        taken = await http.post("/v1/runs", json={"prompt": "hi"}, headers=auth(ALICE))
    assert taken.status_code == 202, taken.text


class FailingTwins(Twins):
    """Twins whose reads or writes fail the way a backend outage does."""

    def __init__(self, failure: BaseException | None) -> None:
        super().__init__()
        self.failure = failure

    async def get(self, run_id: str) -> Any:
        if self.failure is not None:
            raise self.failure
        return await super().get(run_id)

    async def cancel(self, run: Any, reason: str | None) -> Any:
        await asyncio.Event().wait()  # a write that never completes


@pytest.mark.parametrize(
    "failure",
    [
        psycopg.OperationalError("connection to server at 10.1.2.3 failed"),
        redis.exceptions.ConnectionError("Error 111 connecting to 10.1.2.3:6379"),
        TimeoutError(),
    ],
)
async def test_a_backend_outage_is_503_with_retry_after_and_no_host_in_the_body(
    failure: BaseException,
) -> None:
    twins = FailingTwins(failure)
    twins.add(make_run("r-alice", "alice", "s-alice"))
    async with client(app_on(twins)) as http:
        answer = await http.get("/v1/runs/r-alice/transcript", headers=auth(ALICE))
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["error"] == "unavailable"
    assert "10.1.2.3" not in answer.text


async def test_a_busy_session_is_409_not_503() -> None:
    """SessionBusy is retriable, but by the caller on a new version: never a 503."""
    twins = FailingTwins(SessionBusy("s-alice", "another writer was first", version=7))
    twins.add(make_run("r-alice", "alice", "s-alice"))
    async with client(app_on(twins)) as http:
        answer = await http.get("/v1/runs/r-alice/transcript", headers=auth(ALICE))
    assert answer.status_code == 409, answer.text
    assert "retry-after" not in answer.headers
    body = answer.json()
    assert body["error"] == "session_busy"
    assert body["message"] == "session s-alice is busy: another writer was first"


async def test_a_write_that_does_not_complete_is_503_after_the_backend_timeout() -> None:
    twins = FailingTwins(None)
    twins.add(make_run("r-alice", "alice", "s-alice"))
    async with client(app_on(twins, backend_timeout=0.2)) as http:
        answer = await asyncio.wait_for(
            http.post("/v1/runs/r-alice/cancel", headers=auth(ALICE)), 5
        )
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["message"].endswith("the log (Kafka) did not answer (cancel) within 0.2 s")


async def test_the_openapi_document_declares_every_error_with_the_error_body(
    twins: Twins,
) -> None:
    document = app_on(twins).openapi()
    schema = document["components"]["schemas"]["ErrorBody"]
    assert set(schema["required"]) == {"error", "message", "where"}
    statuses = {
        (method.upper(), path): set(operation["responses"])
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    assert statuses[("POST", "/v1/runs")] == {
        "202", "400", "401", "403", "404", "408", "409", "413", "422", "503"
    }  # fmt: skip
    assert statuses[("GET", "/v1/runs/{run_id}")] == {"200", "401", "404", "413", "422", "503"}
    assert "400" in statuses[("GET", "/v1/sessions")]
    assert statuses[("GET", "/healthz")] == {"200", "503"}
    for path, item in document["paths"].items():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    content = response["content"]["application/json"]["schema"]
                    assert content == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)


async def test_every_error_answer_matches_the_declared_body(twins: Twins) -> None:
    async with client(app_on(twins)) as http:
        answers = [
            await http.get("/v1/sessions"),
            await http.get("/v1/sessions?page=bogus", headers=auth(ALICE)),
            await http.get("/v1/runs/nope", headers=auth(ALICE)),
            await http.post("/v1/runs", json={}, headers=auth(ALICE)),
        ]
    for answer in answers:
        body = answer.json()
        assert set(body) <= {"error", "message", "where", "problems"}, body
        assert {"error", "message", "where"} <= set(body)
