"""The Agents SDK's Runner keeps its history in a runwire session (one line changed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from agents import Agent, Runner, function_tool, set_tracing_disabled
from agents.memory.session import Session as AgentsSessionProtocol
from agents.testing.model import ScriptedModel, assistant_message, function_call

from runwire.sessions import InMemoryBackend
from runwire.sessions.openai_agents import RunwireSession
from tests.contract.sessions import roles_and_text


@pytest.fixture(autouse=True)
def no_tracing() -> Iterator[None]:
    set_tracing_disabled(True)
    yield
    set_tracing_disabled(False)


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


async def test_runner_history_lives_in_runwire() -> None:
    backend = InMemoryBackend()
    model = ScriptedModel(
        [
            [function_call("get_weather", {"city": "Paris"}, call_id="call_1")],
            [assistant_message("Sunny in Paris.")],
            [assistant_message("You asked about Paris.")],
        ]
    )
    agent = Agent(name="helper", instructions="Be brief.", model=model, tools=[get_weather])
    session = RunwireSession("conv-1", user_id="alice", backend=backend)
    assert isinstance(session, AgentsSessionProtocol)
    first = await Runner.run(agent, "Weather in Paris?", session=session)
    assert first.final_output == "Sunny in Paris."

    later = RunwireSession("conv-1", user_id="alice", backend=backend)  # another process, say
    second = await Runner.run(agent, "What did I ask?", session=later)
    assert second.final_output == "You asked about Paris."
    sent = model.last_call
    assert sent is not None
    shown = repr(sent.input)
    assert "Weather in Paris?" in shown, "the model got the earlier turn from runwire"
    assert "sunny in Paris" in shown
    assert roles_and_text(await later.session.get_messages()) == [
        ("user", "Weather in Paris?"),
        ("assistant", "<tool_use>"),
        ("user", "<tool_result>"),
        ("assistant", "Sunny in Paris."),
        ("user", "What did I ask?"),
        ("assistant", "You asked about Paris."),
    ]
    items = await later.get_items(limit=2)
    assert items[0] == {"role": "user", "content": "What did I ask?"}
    # The Runner's own item comes back as it stored it, not rewritten.
    assert items[1]["type"] == "message"
    assert items[1]["status"] == "completed"
    assert items[1]["content"][0]["type"] == "output_text"
    assert items[1]["content"][0]["text"] == "You asked about Paris."
    assert await later.pop_item() == items[1]
    assert await later.get_items(limit=1) == [items[0]]
    # The canonical transcript hides the popped answer too.
    assert roles_and_text(await later.session.get_messages())[-1] == ("user", "What did I ask?")
    await later.clear_session()
    assert await later.get_items() == []
    assert await later.pop_item() is None
    await session.close()
    await later.close()
    with pytest.raises(RuntimeError):
        await later.add_items([])
