"""The built-in tools and the registry (nothing running)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from runwire.providers.base import ToolSpec
from runwire.providers.local import LOCAL_MODEL_TOOLS
from runwire.services.tools.builtin import builtin_registry, memory_owner
from runwire.services.tools.calculator import MAX_INT_BITS, CalculatorError, calculate
from runwire.services.tools.memory import InMemoryMemory
from runwire.services.tools.registry import Tool, ToolContext, ToolError, ToolRegistry

CTX = ToolContext(run_id="r1", tool_use_id="t1", session_id="s1", user_id="alice")


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("12 * (3 + 4)", 84),
        ("2 ** 10 - 24", 1000),
        ("2 ^ 3", 8),
        ("100 / 8", 12.5),
        ("6 / 3", 2),
        ("7 // 2", 3),
        ("-7 % 3", 2),
        ("0.1 + 0.2", 0.3),
        ("-(2 + 3) * +4", -20),
        ("3 \u00d7 4 \u00f7 2", 6),
    ],
)
def test_the_calculator_computes(expression: str, value: float) -> None:
    assert calculate(expression) == value


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("__import__('os').system('true')", "not allowed"),
        ("().__class__", "not allowed"),
        ("open('x')", "not allowed"),
        ("x + 1", "not allowed"),
        ("1 < 2", "not allowed"),
        ("'a' * 3", "not a number"),
        ("True + 1", "not a number"),
        ("1 / 0", "division by zero"),
        ("9 ** 9 ** 9", "too large"),
        ("10.0 ** 400", "too large"),
        ("0 ** -1", "negative power"),
        ("(-8) ** 0.5", "not a real number"),
        ("1 +", "not an arithmetic expression"),
        ("", "empty"),
        ("1+" * 600 + "1", "longer than"),
    ],
)
def test_the_calculator_refuses_what_is_not_safe_arithmetic(expression: str, says: str) -> None:
    with pytest.raises(CalculatorError, match=says):
        calculate(expression)


def test_integer_results_stay_bounded() -> None:
    assert calculate(f"2 ** {MAX_INT_BITS - 1}") == 2 ** (MAX_INT_BITS - 1)
    with pytest.raises(CalculatorError):
        calculate(f"2 ** {MAX_INT_BITS} * 2 ** {MAX_INT_BITS}")


async def test_builtin_tools_answer_in_json_and_fail_as_errors() -> None:
    memory = InMemoryMemory()
    fixed = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    tools = builtin_registry(memory, now=lambda: fixed)
    assert set(tools.names()) == set(LOCAL_MODEL_TOOLS)
    calc = await tools.execute("calculator", {"expression": "6 * 7"}, CTX)
    assert calc.content == {"expression": "6 * 7", "result": 42}
    assert not calc.is_error
    clock = await tools.execute("clock", {"timezone": "Europe/Paris"}, CTX)
    assert clock.content == {"time": "2026-01-02T04:04:05+01:00", "timezone": "Europe/Paris"}
    bad_zone = await tools.execute("clock", {"timezone": "Mars/Olympus"}, CTX)
    assert bad_zone.is_error
    assert "Mars/Olympus" in bad_zone.content
    bad_math = await tools.execute("calculator", {"expression": "1/0"}, CTX)
    assert bad_math.is_error
    assert bad_math.content == "calculator: division by zero"
    missing = await tools.execute("calculator", {}, CTX)
    assert missing.is_error
    assert "expression" in missing.content


async def test_remember_and_recall_are_scoped_to_the_user_else_the_session() -> None:
    memory = InMemoryMemory()
    tools = builtin_registry(memory)
    stored = await tools.execute("remember", {"key": "Colour", "value": "green"}, CTX)
    assert stored.content == {"key": "colour", "value": "green", "stored": True}
    assert memory.values == {("user", "alice", "colour"): "green"}
    again = await tools.execute("recall", {"key": "colour"}, CTX)
    assert again.content == {"key": "colour", "value": "green"}
    other = ToolContext(run_id="r2", tool_use_id="t2", session_id="s1", user_id="bob")
    assert (await tools.execute("recall", {"key": "colour"}, other)).content["value"] == ""
    anonymous = ToolContext(run_id="r3", tool_use_id="t3", session_id="s9")
    assert memory_owner(anonymous) == ("session", "s9")
    assert memory_owner(ToolContext(run_id="r4", tool_use_id="t")) == ("session", "run:r4")


async def test_the_registry_turns_timeouts_bad_output_and_crashes_into_error_results() -> None:
    async def slow(tool_input: Mapping[str, Any], context: ToolContext) -> Any:
        await asyncio.sleep(5)

    async def not_json(tool_input: Mapping[str, Any], context: ToolContext) -> Any:
        return {"when": datetime.now(UTC)}

    async def crash(tool_input: Mapping[str, Any], context: ToolContext) -> Any:
        raise KeyError("boom")

    async def refuse(tool_input: Mapping[str, Any], context: ToolContext) -> Any:
        raise ToolError("no such customer")

    registry = ToolRegistry(
        [
            Tool(ToolSpec(name="slow"), slow, timeout=0.05),
            Tool(ToolSpec(name="not_json"), not_json),
            Tool(ToolSpec(name="crash"), crash),
            Tool(ToolSpec(name="refuse"), refuse),
        ]
    )
    assert (await registry.execute("slow", {}, CTX)).content == "slow timed out after 0.05s"
    assert "not JSON" in (await registry.execute("not_json", {}, CTX)).content
    assert (await registry.execute("crash", {}, CTX)).content == "crash failed: KeyError: 'boom'"
    assert (await registry.execute("refuse", {}, CTX)).content == "refuse: no such customer"
    unknown = await registry.execute("nope", {}, CTX)
    assert unknown.is_error
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Tool(ToolSpec(name="slow"), slow))
