"""The tool runner executes a call once at most, whatever the log repeats."""

from __future__ import annotations

import asyncio

from runwire.contract.events import Event, RunStarted, ToolUse
from runwire.log import Publisher
from runwire.services.tools.wiring import tool_runner_service
from runwire.settings import Settings
from tests.helpers import assert_eventually


async def test_a_repeated_or_rewritten_tool_use_is_not_executed_again(
    settings: Settings,
) -> None:
    run_id = "tools-once"

    def use(call_id: str, expression: str) -> Event:
        return Event.create(
            ToolUse(id=call_id, name="calculator", input={"expression": expression}),
            run_id=run_id,
        )

    first = use("toolu_1", "2 + 2")
    # The same event id and call id with another input: someone rewriting the call.
    rewritten = first.model_copy(
        update={"payload": ToolUse(id="toolu_1", name="calculator", input={"expression": "9 * 9"})}
    )
    barrier = use("toolu_2", "1 + 1")
    async with tool_runner_service(settings) as runner, Publisher(settings) as publisher:
        await publisher.publish_many([Event.create(RunStarted(), run_id=run_id), first])
        await assert_eventually(lambda: runner.stats.executed == 1, timeout=30)
        # After its result is in: a plain repeat, the rewritten copy, then a new call.
        await publisher.publish_many([first, rewritten, barrier])
        await assert_eventually(lambda: runner.stats.executed >= 2, timeout=30)
        await asyncio.sleep(0.5)  # a wrongly started copy would have finished by now
        assert runner.stats.executed == 2
