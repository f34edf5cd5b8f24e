"""Deep JSON in a transcript: what is accepted is read back everywhere, the rest refused.

One budget (``runwire.transcript.depth.MAX_VALUE_DEPTH``) for a tool_use input and a
tool_result content, which the transcript cache keeps a few levels down in a
run's body: every reader (this process, another, a rebuild from the log) reads
back what was accepted, and nothing deeper gets into a transcript.
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest

from runwire.contract.events import Event, ToolUse
from runwire.memory.checks import InputError
from runwire.projections.runtime.protocol import Projection, Rebuildable
from runwire.projections.runtime.rebuild import rebuild
from runwire.projections.transcripts.body import decode_messages, decode_runs, encode_messages
from runwire.sessions import AsyncSession
from runwire.sessions.log_backend import LogBackend
from runwire.sessions.openai_agents import RunwireSession, close_shared_backends
from runwire.sessions.responses_items import MAX_ITEM_DEPTH
from runwire.settings import Settings
from runwire.transcript.depth import MAX_VALUE_DEPTH
from runwire.transcript.errors import LedgerError
from runwire.transcript.ledger import TranscriptBuilder
from runwire.transcript.messages import Message, TextPart, ToolResultPart, ToolUsePart


def deep_object(depth: int) -> dict[str, Any]:
    """An object nested ``depth`` levels (itself included), a big integer at the bottom."""
    value: dict[str, Any] = {"n": 2**70}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def deep_list(depth: int) -> list[Any]:
    value: list[Any] = [2**70, -0.0]
    for _ in range(depth - 1):
        value = [value]
    return value


async def fresh(session: RunwireSession, settings: Settings) -> RunwireSession:
    """The same session as another process sees it: nothing held in memory."""
    await asyncio.to_thread(close_shared_backends)
    return RunwireSession(session.session_id, user_id="alice", settings=settings)


async def rebuilt(
    session: RunwireSession, settings: Settings, projectors: dict[str, Projection]
) -> RunwireSession:
    """The session as read after the transcript cache was rebuilt from offset 0."""
    projection = projectors["transcripts"]
    assert isinstance(projection, Rebuildable)
    assert (await rebuild(projection, settings)).records > 0
    return await fresh(session, settings)


@pytest.mark.parametrize("depth", [197, MAX_VALUE_DEPTH, MAX_VALUE_DEPTH + 1, 250])
@pytest.mark.parametrize("kind", ["function_call", "custom_tool_call"])
async def test_call_arguments_of_any_depth_leave_the_session_readable_everywhere(
    sessions: Settings, projectors: dict[str, Projection], kind: str, depth: int
) -> None:
    """Arguments that parse within the budget are the tool_use input; deeper ones
    are kept as their text (as text that is not JSON is); either way the items
    come back unchanged in every process and after a rebuild."""
    text = json.dumps(deep_object(depth))
    call: dict[str, Any] = {"type": kind, "call_id": "c", "name": "f"}
    call["arguments" if kind == "function_call" else "input"] = text
    output = {"type": f"{kind}_output", "call_id": "c", "output": "o"}
    items = [{"role": "user", "content": "q"}, call, output, {"role": "assistant", "content": "a"}]
    session = RunwireSession(user_id="alice", settings=sessions)
    await session.add_items(copy.deepcopy(items[:2]))
    await session.add_items(copy.deepcopy(items[2:3]))  # the writer plans on its own write
    other = await fresh(session, sessions)
    await other.add_items(copy.deepcopy(items[3:]))  # another process plans on the cache's
    expected_input = deep_object(depth) if depth <= MAX_VALUE_DEPTH else {"arguments": text}
    for rebuild_first in (False, True):
        if rebuild_first:
            reader = await rebuilt(session, sessions, projectors)
        else:
            reader = await fresh(session, sessions)
        assert await reader.get_items() == items
        messages = await reader.messages()
        assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
        assert messages[1].parts == (ToolUsePart(id="c", name="f", input=expected_input),)
    assert await reader.pop_item() == items[-1]
    await reader.add_items([{"role": "assistant", "content": "again"}])
    assert await (await fresh(session, sessions)).get_items() == [
        *items[:-1],
        {"role": "assistant", "content": "again"},
    ]


async def test_an_output_as_deep_as_an_item_may_be_is_its_tool_result_everywhere(
    sessions: Settings, projectors: dict[str, Projection]
) -> None:
    output = {
        "type": "function_call_output",
        "call_id": "c",
        "output": deep_list(MAX_ITEM_DEPTH - 1),
    }
    items = [
        {"role": "user", "content": "q"},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
        output,
    ]
    session = RunwireSession(user_id="alice", settings=sessions)
    await session.add_items(copy.deepcopy(items))
    other = await fresh(session, sessions)
    await other.add_items([{"role": "assistant", "content": "done"}])
    items.append({"role": "assistant", "content": "done"})
    for rebuild_first in (False, True):
        if rebuild_first:
            reader = await rebuilt(session, sessions, projectors)
        else:
            reader = await fresh(session, sessions)
        assert await reader.get_items() == items
        messages = await reader.messages()
        assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
        assert messages[2].parts == (ToolResultPart(tool_use_id="c", content=output["output"]),)


async def test_the_session_api_keeps_tool_json_up_to_the_budget_and_refuses_deeper(
    settings: Settings, log_backend: LogBackend
) -> None:
    session = AsyncSession(user_id="alice", backend=log_backend)
    await session.add_message("user", "q")
    deepest = ToolUsePart(id="c", name="f", input=deep_object(MAX_VALUE_DEPTH))
    await session.add_message("assistant", [deepest])
    result = ToolResultPart(tool_use_id="c", content=deep_list(MAX_VALUE_DEPTH))
    too_deep = ToolResultPart(tool_use_id="c", content=deep_list(MAX_VALUE_DEPTH + 1))
    with pytest.raises(InputError) as refused:
        await session.add_message("tool", [too_deep])
    assert "nested_too_deep" in str(refused.value)
    await session.add_message("tool", [result])
    with pytest.raises(InputError) as refused:
        await session.add_message(
            "assistant", [ToolUsePart(id="d", name="f", input=deep_object(MAX_VALUE_DEPTH + 1))]
        )
    assert "nested_too_deep" in str(refused.value)
    expected = [
        Message(role="user", parts=(TextPart(text="q"),)),
        Message(role="assistant", parts=(deepest,)),
        Message(role="user", parts=(result,)),
    ]
    assert await session.get_messages() == expected
    await log_backend.settle(session.session_id)
    async with LogBackend(settings) as elsewhere:  # another process: the cache's copy
        again = AsyncSession(session.session_id, user_id="alice", backend=elsewhere)
        assert await again.get_messages() == expected
        await again.add_message("assistant", "done")
        assert len(await again.get_messages()) == 4
    # An export of it imports again (the document holds the JSON a few levels deeper).
    doc = json.loads(json.dumps(await session.export()))
    imported = await AsyncSession.import_data(doc, backend=log_backend)
    assert (await imported.get_messages())[:3] == expected


def test_every_fold_refuses_tool_json_deeper_than_a_body_holds() -> None:
    """The ledger's rule: the orchestrator's run state, the cache and a session's
    plan all fold through it, so a model's too-deep call is refused alike."""
    builder = TranscriptBuilder("r")
    deep = ToolUse(id="c", name="f", input=deep_object(MAX_VALUE_DEPTH + 1))
    with pytest.raises(LedgerError) as refused:
        builder.apply(Event.create(deep, run_id="r", producer="test"))
    assert refused.value.rule == "nested_too_deep"
    assert builder.messages() == []


def test_a_body_as_deep_as_the_budget_decodes_exactly() -> None:
    """pydantic's JSON parser stops at 200 levels; a body holding the deepest tool
    JSON nests a few more and still decodes, numbers exact."""
    messages = [
        Message(
            role="assistant",
            parts=(ToolUsePart(id="c", name="f", input=deep_object(MAX_VALUE_DEPTH)),),
        ),
        Message(
            role="user",
            parts=(ToolResultPart(tool_use_id="c", content=deep_list(MAX_VALUE_DEPTH)),),
        ),
    ]
    body = encode_messages(messages)
    assert decode_messages(body) == messages
    assert decode_runs([body, body]) == [messages, messages]
