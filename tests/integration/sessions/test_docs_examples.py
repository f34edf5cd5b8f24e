"""Every ```python example of docs/sessions.md runs against the real stack."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from runwire.projections.runtime.protocol import Projection
from runwire.sessions.openai_agents import close_shared_backends
from runwire.settings import Settings
from tests.integration.sessions.test_sessions_stack import stack_env

DOC = Path(__file__).resolve().parents[3] / "docs" / "sessions.md"
_BLOCK = re.compile(r"^### (?P<title>.+?)$|^```python\n(?P<code>.*?)^```$", re.M | re.S)


def examples() -> list[tuple[str, str]]:
    """(the heading above it, code) of each python block, in page order."""
    out: list[tuple[str, str]] = []
    title = "top"
    for match in _BLOCK.finditer(DOC.read_text()):
        if match["title"]:
            title = match["title"]
        else:
            out.append((title, match["code"]))
    return out


def test_the_page_has_an_example_per_topic() -> None:
    titles = [t for t, _ in examples()]
    assert len(titles) >= 10, titles
    for topic in ("generated ids", "clear", "TTL", "Export", "Events", "memory", "delete"):
        assert any(topic.lower() in t.lower() for t in titles), topic


async def test_doc_examples_run(
    settings: Settings, projectors: dict[str, Projection], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in stack_env(settings).items():
        if name.startswith("RUNWIRE_"):
            monkeypatch.setenv(name, value)
    try:
        for title, code in examples():
            compiled = compile(code, f"docs/sessions.md ({title})", "exec")
            try:
                await asyncio.to_thread(exec, compiled, {"__name__": "docs_example"})
            except Exception as e:
                raise AssertionError(
                    f"the example {title!r} of docs/sessions.md failed: {e!r}"
                ) from e
    finally:
        # RunwireSession's shared backend for this deployment's settings.
        await asyncio.to_thread(close_shared_backends)
