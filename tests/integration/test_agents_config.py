"""Agents from an agents file, on the real stack: per-agent provider, model, system
prompt and tools (built-in and HTTP), the session's system prompt, and a bad file
refused by ``runwire serve`` before anything starts."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from runwire.client import Client
from runwire.contract.events import EventType, RunStatus, ToolResult
from runwire.projections.sessions import SessionIndex
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.services.process import settings_env
from runwire.services.tools.wiring import tool_runner_service
from runwire.settings import Settings
from runwire.transcript.messages import TextPart
from tests.fakes.openai_chat import FakeOpenAIServer
from tests.fakes.server import Turn
from tests.integration.orchestration_support import projectors


class _Lookup(BaseHTTPRequestHandler):
    seen: list[tuple[dict[str, Any], dict[str, str]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((body, dict(self.headers)))
        if body.get("q") == "boom":
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b"lookup is down")
            return
        answer = json.dumps({"found": str(body.get("q", "")).upper()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def lookup_url() -> Iterator[str]:
    _Lookup.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Lookup)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/lookup"
    finally:
        server.shutdown()
        server.server_close()


def _agents_file(tmp_path: Path, lookup_url: str, openai_url: str) -> Path:
    path = tmp_path / "agents.toml"
    path.write_text(
        f"""
[tools.lookup]
url = "{lookup_url}"
description = "Look a word up."
input_schema = {{ type = "object", properties = {{ q = {{ type = "string" }} }}, required = ["q"] }}
headers = {{ Authorization = "Bearer ${{LOOKUP_TOKEN}}" }}

[agents.clerk]
system = "You are the clerk."
tools = ["lookup"]
history = false

[agents.french]
provider = "openai"
model = "gpt-french"
base_url = "{openai_url}"
api_key_env = "FRENCH_KEY"
system = "Reponds en francais."
max_tokens = 300
"""
    )
    return path


async def test_agents_of_a_file_get_their_provider_model_prompt_and_tools(
    settings: Settings, tmp_path: Path, lookup_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOKUP_TOKEN", "t0ken")
    monkeypatch.setenv("FRENCH_KEY", "sk-french")
    async with FakeOpenAIServer() as fake:
        fake.enqueue(Turn(parts=(TextPart(text="Bonjour !"),)))
        mine = settings.model_copy(
            update={"agents_file": _agents_file(tmp_path, lookup_url, fake.base_url)}
        )
        async with (
            projectors(mine),
            orchestrator_service(mine),
            tool_runner_service(mine),
            Client(mine) as rw,
        ):
            declared = await rw.declare_session(
                "s1", user_id="u", metadata={"system": "The user is called Ada."}
            )
            async with await SessionIndex.connect(mine) as index:
                await index.wait_for(declared, timeout=30)
            french = await (await rw.run("french", "hello", session_id="s1", user_id="u")).wait(
                timeout=60
            )
            looked = await (
                await rw.run("clerk", 'call the lookup tool with {"q": "abc"}', user_id="u")
            ).wait(timeout=60)
            down = await (
                await rw.run("clerk", 'call the lookup tool with {"q": "boom"}', user_id="u")
            ).wait(timeout=60)
            sums = await (await rw.run("clerk", "what is 2 + 3?", user_id="u")).wait(timeout=60)

    # The french agent: its own provider, model, key, budget, system prompt + the session's.
    assert french.status is RunStatus.COMPLETED, french.events
    assert french.text == "Bonjour !"
    assert len(fake.requests) == 1
    request = fake.requests[0]
    assert request.body["model"] == "gpt-french"
    assert request.headers["authorization"] == "Bearer sk-french"
    assert request.body.get("max_tokens", request.body.get("max_completion_tokens")) == 300
    system = request.body["messages"][0]
    assert system["role"] in ("system", "developer")
    assert system["content"] == "Reponds en francais.\n\nThe user is called Ada."

    # The clerk: the HTTP tool runs, with its headers; its failure is an error result.
    assert looked.status is RunStatus.COMPLETED, looked.events
    results = [e.payload for e in looked.events if isinstance(e.payload, ToolResult)]
    assert [(r.content, r.is_error) for r in results] == [({"found": "ABC"}, False)]
    body, headers = _Lookup.seen[0]
    assert body == {"q": "abc"}
    assert headers["Authorization"] == "Bearer t0ken"
    assert headers["X-Runwire-Run-Id"] == looked.run_id
    assert down.status is RunStatus.COMPLETED, down.events
    failed = [e.payload for e in down.events if isinstance(e.payload, ToolResult)]
    assert len(failed) == 1
    assert failed[0].is_error
    assert "answered 503: lookup is down" in str(failed[0].content)
    # ... and only its own tools: no calculator for the clerk.
    assert sums.status is RunStatus.COMPLETED
    assert not [e for e in sums.events if e.type is EventType.TOOL_USE]
    assert "I would need the calculator tool" in sums.text


async def test_serve_refuses_a_bad_agents_file_naming_the_mistake(
    settings: Settings, tmp_path: Path
) -> None:
    bad = tmp_path / "agents.toml"
    bad.write_text('[agents.a]\nagents = ["b"]\n[agents.b]\nagents = ["a"]\n')
    for name in ("orchestrator", "tools"):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "runwire.cli.main",
            "serve",
            name,
            "--agents",
            str(bad),
            env=settings_env(settings),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 1, (out, err)
        assert "agents call each other in a cycle: a -> b -> a" in err.decode(), err
