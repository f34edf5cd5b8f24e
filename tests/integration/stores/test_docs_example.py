"""The example of docs/goa-ai.md, run as written on the real stack."""

from __future__ import annotations

from runwire.projections.runtime.protocol import Projection
from runwire.settings import Settings
from tests.unit.docs_examples import python_block


async def test_the_first_turn_example(
    settings: Settings, projectors: dict[str, Projection]
) -> None:
    example = python_block("goa-ai.md")
    messages = await example.first_turn(settings)
    assert [(m.role, m.text()) for m in messages] == [("user", "what is 6*7?")]
