"""The web page in a real browser (headless Chromium): a run's transcript, drawn live over SSE.

Chromium is a system package (``./dev test`` installs it) driven over the
DevTools protocol, so the test can wait for what the page shows instead of
sleeping. The page is opened by a link naming a session and run in its
fragment, and carrying another user's key, which the page must not use (a
link must not sign a victim in to its maker's account); the key is then
typed into the page, which signs in and opens the session and run named in
the link. Screenshots land in the test's tmp_path.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import shutil
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.services.tools.builtin import builtin_registry
from runwire.services.tools.memory import InMemoryMemory
from runwire.services.tools.registry import Tool, ToolContext, ToolFunction, ToolRegistry
from runwire.services.tools.wiring import tool_runner_service
from runwire.settings import Settings
from tests.helpers import assert_eventually
from tests.integration.api_support import ALICE, BOB, api, auth, projectors, wait_status

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)


class DevTools:
    """The browser's DevTools socket: one call at a time (events in between are skipped)."""

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        self._ids = itertools.count(1)

    async def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        await self._socket.send(json.dumps(message))
        while True:
            reply = json.loads(await self._socket.recv())
            if reply.get("id") == message_id:
                assert "error" not in reply, f"{method}: {reply['error']}"
                result: dict[str, Any] = reply["result"]
                return result


class Page:
    """One browser tab (a flat session on the browser's socket)."""

    def __init__(self, tools: DevTools, session_id: str) -> None:
        self._tools = tools
        self._session = session_id

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        return await self._tools.call(method, self._session, **params)

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", format="png")
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))


@contextlib.asynccontextmanager
async def browser_page(url: str, profile: Path) -> AsyncIterator[Page]:
    """A fresh headless Chromium (own profile) showing ``url`` in a 1400x900 tab."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "chromium is not installed: apt-get install chromium (./dev test does)"
    process = await asyncio.create_subprocess_exec(
        binary,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    drain: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(30):
            while True:
                line = (await process.stderr.readline()).decode(errors="replace")
                assert line, "chromium exited before its DevTools endpoint was up"
                found = re.search(r"DevTools listening on (ws://\S+)", line)
                if found:
                    break
        stderr = process.stderr

        async def discard() -> None:  # chromium keeps logging; a full pipe would stall it
            while await stderr.read(65536):
                pass

        drain = asyncio.create_task(discard())
        async with connect(found.group(1), max_size=None) as socket:
            tools = DevTools(socket)
            target = await tools.call("Target.createTarget", url="about:blank")
            attached = await tools.call(
                "Target.attachToTarget", targetId=target["targetId"], flatten=True
            )
            page = Page(tools, attached["sessionId"])
            await page.send(
                "Emulation.setDeviceMetricsOverride",
                width=1400,
                height=900,
                deviceScaleFactor=1,
                mobile=False,
            )
            await page.send("Page.enable")
            await page.send("Page.navigate", url=url)
            yield page
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
        if drain is not None:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain


def entries(kind: str) -> str:
    """JS: the texts of the transcript entries of CSS class ``kind``."""
    return f"[...document.querySelectorAll('#transcript li.{kind}')].map(e => e.textContent)"


def gated(function: ToolFunction, gate: asyncio.Event) -> ToolFunction:
    async def when_open(tool_input: Mapping[str, Any], context: ToolContext) -> Any:
        await gate.wait()
        return await function(tool_input, context)

    return when_open


async def test_the_page_draws_a_runs_transcript_live_from_the_event_stream(
    settings: Settings, tmp_path: Path
) -> None:
    # The calculator answers only once the page has been seen drawing the call:
    # the run stays open while the page watches it, however loaded the machine.
    seen_live = asyncio.Event()
    builtin = builtin_registry(InMemoryMemory())
    tools = ToolRegistry(
        Tool(tool.spec, gated(tool.function, seen_live), timeout=120.0)
        for tool in (builtin.get(name) for name in builtin.names())
        if tool is not None
    )
    async with (
        projectors(settings),
        orchestrator_service(settings),
        tool_runner_service(settings, registry=tools),
        api(settings) as rw,
    ):
        started = await rw.http.post(
            "/v1/runs",
            json={"prompt": "what is 12 * (3 + 4)?", "session_id": "s-page"},
            headers=auth(ALICE),
        )
        run_id = started.json()["run_id"]
        # A link made by someone else, carrying their key (bob's).
        url = f"{rw.url}/#key={BOB}&session=s-page&run={run_id}"
        async with browser_page(url, tmp_path / "profile") as page:

            async def link_refused() -> bool:
                assert await page.evaluate("document.readyState") == "complete"
                assert "not used" in await page.evaluate(
                    "document.getElementById('notice').innerText"
                )
                return True

            await assert_eventually(link_refused, timeout=10)
            from_link = {
                "href": await page.evaluate("location.href"),
                "stored": await page.evaluate("sessionStorage.getItem('runwire.apiKey')"),
                "whoami": await page.evaluate("document.getElementById('whoami').innerText"),
                "sessions": await page.evaluate(
                    "document.querySelectorAll('#session-list li').length"
                ),
            }
            # The user types (pastes) their own key.
            await page.evaluate(
                f"document.getElementById('key-input').value = {json.dumps(ALICE)};"
                "document.getElementById('key-form').requestSubmit()"
            )

            async def tool_call_drawn_while_live() -> bool:
                assert await page.evaluate(entries("tool-use") + ".length") == 1
                return True

            await assert_eventually(tool_call_drawn_while_live, timeout=15)
            live = {
                "live": await page.evaluate("document.getElementById('live').innerText"),
                "results": await page.evaluate(entries("tool-result")),
            }
            await page.screenshot(tmp_path / "live.png")
            seen_live.set()

            async def run_ended_on_the_page() -> bool:
                assert await page.evaluate("document.getElementById('live').innerText") == "ended"
                listed = "document.querySelector('#run-list li.selected .badge')?.textContent"
                assert await page.evaluate(listed) == "completed"  # the run list caught up
                return True

            await assert_eventually(run_ended_on_the_page, timeout=20)
            await page.screenshot(tmp_path / "ended.png")
            seen = {
                "href": await page.evaluate("location.href"),
                "whoami": await page.evaluate("document.getElementById('whoami').innerText"),
                "session": await page.evaluate(
                    "document.querySelector('#session-list li.selected').dataset.id"
                ),
                "status": await page.evaluate("document.getElementById('run-status').innerText"),
                "order": await page.evaluate(
                    "[...document.querySelectorAll('#transcript li')].map(e => e.className)"
                ),
                "user": await page.evaluate(entries("user")),
                "thinking": await page.evaluate(entries("thinking")),
                "tool_use": await page.evaluate(entries("tool-use")),
                "tool_result": await page.evaluate(entries("tool-result")),
                "assistant": await page.evaluate(entries("assistant")),
            }
        await wait_status(rw.http, run_id, "completed")

    # While the calculator was still working, the page already showed its call, live.
    assert live == {"live": "live", "results": []}
    # The link's key was never used: not stored, not signed in, gone from the address bar.
    assert from_link == {
        "href": f"{rw.url}/#session=s-page&run={run_id}",
        "stored": None,
        "whoami": "not signed in",
        "sessions": 0,
    }
    assert BOB not in seen["href"]
    assert ALICE not in seen["href"]
    assert seen["whoami"] == "alice"
    assert seen["session"] == "s-page"
    assert seen["status"] == "completed"
    assert len(seen["user"]) == 1
    assert "what is 12 * (3 + 4)?" in seen["user"][0]
    assert "calculator" in seen["tool_use"][0]
    assert '"expression"' in seen["tool_use"][0]
    assert "calculator" in seen["tool_result"][0]
    assert "84" in seen["tool_result"][0]
    assert len(seen["thinking"]) == 2  # one before the call, one before the answer
    assert any("84" in text for text in seen["assistant"])
    # The entries are drawn in log order: question, call, result, answer.
    kinds = [k for k in seen["order"] if k in ("user", "tool-use", "tool-result", "assistant")]
    assert kinds.index("user") < kinds.index("tool-use") < kinds.index("tool-result")
    assert kinds[-1] == "assistant"
    assert (tmp_path / "live.png").stat().st_size > 20_000  # drawn pages, not blank ones
    assert (tmp_path / "ended.png").stat().st_size > 20_000


async def test_the_page_draws_the_answer_as_it_streams_then_the_canonical_one(
    settings: Settings, tmp_path: Path
) -> None:
    from runwire.providers.local import LocalModel

    # A model writing two characters every 60 ms: the answer streams for seconds.
    model = LocalModel(chunk_chars=2, chunk_interval=0.06)
    async with (
        projectors(settings),
        orchestrator_service(settings, provider=model),
        api(settings) as rw,
    ):
        started = await rw.http.post(
            "/v1/runs",
            json={"prompt": "my favourite colour is a deep ultramarine", "session_id": "s-live"},
            headers=auth(ALICE),
        )
        run_id = started.json()["run_id"]
        async with browser_page(f"{rw.url}/#session=s-live&run={run_id}", tmp_path / "p") as page:

            async def loaded() -> bool:
                assert await page.evaluate("document.readyState") == "complete"
                assert await page.evaluate("!!document.getElementById('key-form')")
                return True

            await assert_eventually(loaded, timeout=10)
            await page.evaluate(
                f"document.getElementById('key-input').value = {json.dumps(ALICE)};"
                "document.getElementById('key-form').requestSubmit()"
            )
            streaming = "[...document.querySelectorAll('#transcript li.streaming')]"
            partial: list[str] = []

            async def answer_drawn_while_it_streams() -> bool:
                texts = await page.evaluate(f"{streaming}.map(e => e.textContent)")
                assert texts
                assert await page.evaluate(entries("assistant:not(.streaming)") + ".length") == 0
                partial.extend(texts)
                return True

            await assert_eventually(answer_drawn_while_it_streams, timeout=20, interval=0.05)

            async def run_ended_on_the_page() -> bool:
                assert await page.evaluate("document.getElementById('live').innerText") == "ended"
                return True

            await assert_eventually(run_ended_on_the_page, timeout=30)
            left = await page.evaluate(f"{streaming}.length")
            answers = await page.evaluate(entries("assistant"))
        await wait_status(rw.http, run_id, "completed")
    # What streamed was drawn first; the canonical message replaced it.
    assert partial
    assert left == 0
    assert len(answers) == 1
    assert "ultramarine" in answers[0]
    assert "writing" not in answers[0]
