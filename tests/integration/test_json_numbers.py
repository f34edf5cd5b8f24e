"""JSON numbers keep every digit on the real stack: log, transcript cache, memory
store, and the request a provider receives (docs/json-numbers.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from runwire.client import Client
from runwire.contract import jsonvalues
from runwire.contract.events import Event, EventType, RunStatus, ToolResult, ToolUse
from runwire.errors import InputError
from runwire.log import Publisher
from runwire.memory import AsyncMemory
from runwire.projections.transcripts.reader import TranscriptCache
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.sessions.embedded import projectors_running
from runwire.settings import Settings
from runwire.transcript.messages import TextPart, ToolUsePart
from tests.fakes.openai_chat import FakeOpenAIServer
from tests.fakes.server import Turn
from tests.helpers import assert_eventually
from tests.integration.orchestration_support import projectors
from tests.integration.test_orchestrator_lifecycle import openai_settings
from tests.support.exact_json import identical

TOOL_INPUT: dict[str, Any] = {
    "big": 123456789012345678901234567890,
    "precise": Decimal("0.10000000000000000555"),
    "max": 1e308,
    "zero": -0.0,
    "nested": [{"beyond_float": Decimal("1E+400")}, -98765432109876543210987654321],
}
TOOL_RESULT: dict[str, Any] = {
    "total": 123456789012345678901234567890123456789,
    "ratio": Decimal("3.14159265358979323846264338327950288"),
    "tiny": Decimal("2E-400"),
    "rows": [1e308, -0.0, 0.1],
}
DIGITS = [
    b"123456789012345678901234567890",
    b"0.10000000000000000555",
    b"1E+400",
    b"-98765432109876543210987654321",
    b"123456789012345678901234567890123456789",
    b"3.14159265358979323846264338327950288",
]


async def test_tool_input_and_result_reach_the_provider_with_every_digit(
    settings: Settings,
) -> None:
    async with FakeOpenAIServer() as fake:
        fake.enqueue(
            Turn(parts=(ToolUsePart(id="call_exact", name="lookup", input=TOOL_INPUT),)),
            Turn(parts=(TextPart(text="done"),)),
        )
        mine = openai_settings(settings, fake)
        async with (
            projectors(mine),
            orchestrator_service(mine),
            Client(mine) as rw,
            Publisher(mine) as publisher,
            TranscriptCache(mine) as transcripts,
        ):
            handle = await rw.run("helper", "look it up", session_id="s-exact")

            uses: list[Event] = []

            async def tool_use() -> bool:
                events = [e async for e in handle.events(follow=False)]
                uses[:] = [e for e in events if e.type is EventType.TOOL_USE]
                assert uses, [e.type for e in events]
                return True

            await assert_eventually(tool_use, timeout=30)
            use = uses[0]
            assert isinstance(use.payload, ToolUse)
            assert identical(use.payload.input, TOOL_INPUT)  # decoded from the arguments
            # The tool answers as another service would: a tool_result on the log.
            await publisher.publish(
                Event.create(
                    ToolResult(tool_use_id="call_exact", content=TOOL_RESULT),
                    run_id=handle.run_id,
                    session_id="s-exact",
                    causation_id=use.event_id,
                    producer="exact-tool",
                )
            )
            outcome = await handle.wait(timeout=60)
            assert outcome.status is RunStatus.COMPLETED, outcome.events

            async def cached() -> bool:
                assert await transcripts.get(outcome.run_id) == outcome.messages
                return True

            await assert_eventually(cached, timeout=30)
            messages = await transcripts.get(outcome.run_id)

    # The transcript cache (Redis) gives back the very values.
    cached_uses = [p for m in messages for p in m.tool_uses()]
    cached_results = [p for m in messages for p in m.tool_results()]
    assert identical(cached_uses[0].input, TOOL_INPUT)
    assert identical(cached_results[0].content, TOOL_RESULT)

    # The second call carried both, digit for digit, in OpenAI's wire format.
    raw = fake.requests[1].raw
    for digits in DIGITS:
        assert digits in raw.replace(b"\\", b""), digits
    body = jsonvalues.loads(raw)
    assistant = next(m for m in body["messages"] if m.get("tool_calls"))
    arguments = assistant["tool_calls"][0]["function"]["arguments"]
    assert identical(jsonvalues.loads(arguments), TOOL_INPUT)
    tool = next(m for m in body["messages"] if m["role"] == "tool")
    assert identical(jsonvalues.loads(tool["content"]), TOOL_RESULT)


async def test_memory_values_round_trip_through_postgres_exactly(settings: Settings) -> None:
    values: dict[str, Any] = {
        "max": 1e308,
        "beyond": Decimal("1E+400"),
        "precise": Decimal("0.10000000000000000555"),
        "big": -123456789012345678901234567890123456789,
        "tiny": Decimal("2E-400"),
        "doc": {"a": [1e-7, 1e16, 100.0, Decimal("12345.678901234567890123")], "b": 1.5},
    }
    async with (
        projectors_running(settings),
        AsyncMemory(user_id="u-exact", settings=settings) as memory,
    ):
        for key, value in values.items():
            await memory.store_memory(key, value)  # returns once the projection has it
        for key, value in values.items():
            got = await memory.get_memory(key)
            assert identical(got, value), (key, got, value)
        listed = {e.key: e.value for e in await memory.list_memory()}
        assert all(identical(listed[k], v) for k, v in values.items())
        # What Postgres cannot keep is refused before anything is written.
        with pytest.raises(InputError, match="negative zero"):
            await memory.store_memory("zero", -0.0)
