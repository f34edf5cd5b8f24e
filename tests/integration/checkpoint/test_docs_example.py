"""The example of docs/frameworks/langgraph.md runs as shown, on the stack."""

from __future__ import annotations

from runwire.settings import Settings
from tests.unit.docs_examples import python_block


async def test_the_docs_example_keeps_the_conversation(settings: Settings) -> None:
    page = python_block("frameworks/langgraph.md")
    assert await page.chat(settings, "ticket-42", "hi") == ["hi", "you said: hi"]
    assert await page.chat(settings, "ticket-42", "again") == [
        "hi",
        "you said: hi",
        "again",
        "you said: again",
    ]
