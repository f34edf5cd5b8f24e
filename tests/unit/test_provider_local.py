"""The deterministic local model: thinks, calls tools, reads results, remembers."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from runwire.errors import ProviderError
from runwire.providers.base import ModelProvider, ModelRequest, ModelResponse, StreamDelta
from runwire.providers.local import (
    LOCAL_MODEL_TOOLS,
    LOCAL_TOOL_SPECS,
    LocalModel,
    sign_thinking,
)
from runwire.providers.retry import CallCanceled, RetryPolicy, call_with_retries
from runwire.transcript.messages import (
    Message,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
)

MODEL = LocalModel()


def user(text: str) -> Message:
    return Message(role="user", parts=(TextPart(text=text),))


def results(*pairs: tuple[str, object], is_error: bool = False) -> Message:
    return Message(
        role="user",
        parts=tuple(ToolResultPart(tool_use_id=i, content=c, is_error=is_error) for i, c in pairs),
    )


def ask(*messages: Message, thinking: bool = True, tools: bool = True) -> ModelResponse:
    return MODEL.respond(
        ModelRequest(messages=messages, tools=LOCAL_TOOL_SPECS if tools else (), thinking=thinking)
    )


def kinds(response: ModelResponse) -> list[str]:
    return [p.kind for p in response.parts]


def test_the_tool_names_are_published_with_their_specs() -> None:
    assert LOCAL_MODEL_TOOLS == ("calculator", "clock", "remember", "recall")
    assert tuple(t.name for t in LOCAL_TOOL_SPECS) == LOCAL_MODEL_TOOLS


def test_a_full_tool_round_uses_every_part_kind() -> None:
    question = user("What is 12 * (3 + 4), and what time is it?")
    first = ask(question)
    assert kinds(first) == ["thinking", "text", "tool_use", "tool_use"]
    assert first.stop_reason == "tool_use"
    calls = first.tool_uses()
    assert [(c.name, c.input) for c in calls] == [
        ("calculator", {"expression": "12 * (3 + 4)"}),
        ("clock", {"timezone": "UTC"}),
    ]
    assert len({c.id for c in calls}) == 2

    answer = ask(
        question,
        first.message(),
        results(
            (calls[0].id, {"expression": "12 * (3 + 4)", "result": 84}),
            (calls[1].id, {"time": "2030-01-01T12:00:00Z", "timezone": "UTC"}),
        ),
    )
    assert kinds(answer) == ["thinking", "text"]
    assert answer.stop_reason == "end_turn"
    assert answer.message().text() == ("12 * (3 + 4) = 84. The clock says 2030-01-01T12:00:00Z.")
    thinking = answer.parts[0]
    assert isinstance(thinking, ThinkingPart)
    assert "calculator returned '84'" in (thinking.text or "")


def test_same_messages_give_a_byte_identical_response() -> None:
    conversation = (user("My name is Alice"), user("What is 2+2 and what is my name?"))
    one = ask(*conversation).model_dump_json()
    assert ask(*conversation).model_dump_json() == one
    assert (
        LocalModel()
        .respond(ModelRequest(messages=conversation, tools=LOCAL_TOOL_SPECS, thinking=True))
        .model_dump_json()
        == one
    )
    # A transcript that went through a store (JSON, keys reordered) is the same transcript.
    stored = tuple(
        Message.model_validate_json(json.dumps(json.loads(m.model_dump_json()), sort_keys=True))
        for m in conversation
    )
    assert ask(*stored).model_dump_json() == one
    assert (
        ask(user("What is 2+3?")).tool_uses()[0].id != ask(user("What is 2+2?")).tool_uses()[0].id
    )


def test_it_recalls_a_fact_from_earlier_in_the_conversation() -> None:
    first_run = (user("Hi! My name is Alice."),)
    greeting = ask(*first_run)
    assert greeting.message().text() == "Nice to meet you, Alice!"
    assert greeting.tool_uses() == ()

    second = ask(*first_run, greeting.message(), user("What's my name?"))
    assert second.message().text() == "Your name is Alice."
    assert second.tool_uses() == ()
    thinking = second.parts[0]
    assert isinstance(thinking, ThinkingPart)
    assert "earlier in the conversation they said it is Alice" in (thinking.text or "")


def test_the_latest_statement_of_a_fact_wins() -> None:
    response = ask(
        user("My favourite color is blue"),
        user("Actually my favourite color is green."),
        user("What is my favourite color?"),
    )
    assert response.message().text() == "Your favourite color is green."


def test_an_unknown_fact_is_looked_up_with_recall() -> None:
    question = user("What is my city?")
    lookup = ask(question)
    (call,) = lookup.tool_uses()
    assert (call.name, call.input) == ("recall", {"key": "city"})

    # The tool runner's recall answers {"key", "value"}; "" when it knows nothing.
    lisbon = {"key": "city", "value": "Lisbon"}
    found = ask(question, lookup.message(), results((call.id, lisbon)))
    assert found.message().text() == "Your city is Lisbon."
    unknown = ask(question, lookup.message(), results((call.id, {"key": "city", "value": ""})))
    assert unknown.message().text() == "I don't know your city yet."
    # What recall found counts as known later on.
    later = ask(
        question,
        lookup.message(),
        results((call.id, lisbon)),
        found.message(),
        user("what is my city"),
    )
    assert later.message().text() == "Your city is Lisbon."


def test_remember_calls_the_remember_tool_and_cites_it() -> None:
    request = user("Please remember that my favourite food is ramen.")
    stored = ask(request)
    (call,) = stored.tool_uses()
    assert (call.name, call.input) == ("remember", {"key": "favourite food", "value": "ramen"})
    done = ask(request, stored.message(), results((call.id, "ok")))
    assert done.message().text() == "I'll remember that your favourite food is ramen."
    asked = ask(
        request,
        stored.message(),
        results((call.id, "ok")),
        done.message(),
        user("What is my favourite food?"),
    )
    assert asked.message().text() == "Your favourite food is ramen."


def test_a_failed_tool_is_reported() -> None:
    question = user("What is 1/0?")
    first = ask(question)
    (call,) = first.tool_uses()
    answer = ask(question, first.message(), results((call.id, "division by zero"), is_error=True))
    assert answer.message().text() == "The calculator tool failed: division by zero."


def test_only_offered_tools_are_called() -> None:
    response = ask(user("What is 6 * 7?"), tools=False)
    assert response.tool_uses() == ()
    assert response.message().text() == "I would need the calculator tool to work out 6 * 7."


def test_thinking_is_signed_and_can_be_turned_off() -> None:
    response = ask(user("hello"))
    thinking = response.parts[0]
    assert isinstance(thinking, ThinkingPart)
    assert thinking.signature == sign_thinking(thinking.text or "")
    assert kinds(ask(user("hello"), thinking=False)) == ["text"]


def test_altered_thinking_is_rejected_like_a_real_provider_does() -> None:
    first = ask(user("What is 6 * 7?"))
    thinking, *rest = first.parts
    assert isinstance(thinking, ThinkingPart)
    forged = Message(
        role="assistant",
        parts=(ThinkingPart(text=(thinking.text or "") + "!", signature=thinking.signature), *rest),
    )
    call = first.tool_uses()[0]
    with pytest.raises(ProviderError) as caught:
        ask(user("What is 6 * 7?"), forged, results((call.id, "42")))
    assert caught.value.status == 400
    assert caught.value.retriable is False
    assert "messages.1.content.0: invalid signature in thinking block" in str(caught.value)
    # The untouched message is accepted.
    ask(user("What is 6 * 7?"), first.message(), results((call.id, "42")))


def test_secret_requests_get_redacted_thinking_that_must_come_back_intact() -> None:
    question = user("Keep this secret: what is 2 + 2?")
    first = ask(question)
    thinking = first.parts[0]
    assert isinstance(thinking, ThinkingPart)
    assert thinking.text is None
    assert thinking.redacted is not None
    with pytest.raises(UnicodeDecodeError):
        thinking.redacted.decode("utf-8")  # opaque bytes, like a provider's
    call = first.tool_uses()[0]
    ask(question, first.message(), results((call.id, "4")))
    broken = bytearray(thinking.redacted)
    broken[10] ^= 0xFF
    tampered = Message(
        role="assistant", parts=(ThinkingPart(redacted=bytes(broken)), *first.parts[1:])
    )
    with pytest.raises(ProviderError, match="invalid redacted thinking"):
        ask(question, tampered, results((call.id, "4")))


def test_the_conversation_must_end_with_a_user_message() -> None:
    first = ask(user("hi"))
    with pytest.raises(ProviderError, match="must end with a user message") as caught:
        ask(user("hi"), first.message())
    assert caught.value.status == 400


async def test_streaming_gives_deltas_that_add_up_to_the_same_response() -> None:
    request = ModelRequest(
        messages=(user("What is 3 * 3 and what time is it? Also, my name is Bo."),),
        tools=LOCAL_TOOL_SPECS,
        thinking=True,
    )
    deltas: list[StreamDelta] = []

    async def collect(delta: StreamDelta) -> None:
        deltas.append(delta)

    async with LocalModel(chunk_chars=5) as model:
        streamed = await model.complete(request, on_chunk=collect)
        assert streamed == await model.complete(request)
    rebuilt: dict[int, str] = {}
    for d in deltas:
        rebuilt[d.index] = rebuilt.get(d.index, "") + d.text
    for index, part in enumerate(streamed.parts):
        if isinstance(part, ThinkingPart | TextPart):
            assert rebuilt[index] == part.text
        elif isinstance(part, ToolUsePart):
            assert json.loads(rebuilt[index]) == part.input
    assert {d.kind for d in deltas} == {"thinking", "text", "tool_input"}


async def test_a_slow_local_model_runs_calls_concurrently_and_cancels_promptly() -> None:
    request = ModelRequest(messages=(user("hi"),), thinking=True)
    async with LocalModel(latency=1.0) as model:
        assert isinstance(model, ModelProvider)
        started = time.monotonic()
        answers = await asyncio.gather(*(model.complete(request) for _ in range(50)))
        assert 1.0 <= time.monotonic() - started < 2.0
        assert len({a.model_dump_json() for a in answers}) == 1

        cancel = asyncio.Event()
        call = asyncio.create_task(
            call_with_retries(lambda: model.complete(request), RetryPolicy(), cancel=cancel)
        )
        await asyncio.sleep(0.1)
        started = time.monotonic()
        cancel.set()
        with pytest.raises(CallCanceled):
            await call
        assert time.monotonic() - started < 0.2
    with pytest.raises(ProviderError, match="closed"):
        await model.complete(request)


def _compaction_ask() -> Message:
    from runwire.context.compaction import CompactionPolicy

    return user(CompactionPolicy().instructions)


def test_a_summary_keeps_the_facts_and_the_tools_of_the_conversation() -> None:
    first = ask(user("Hi, my name is Ada. My city is Lyon. What is 6 * 7?"))
    call = next(p for p in first.parts if isinstance(p, ToolUsePart))
    history = [
        user("Hi, my name is Ada. My city is Lyon. What is 6 * 7?"),
        first.message(),
        results((call.id, "42")),
        ask(user("x"), results((call.id, "42"))).message(),
        user("Actually my city is Paris."),
    ]
    summary = ask(*history, _compaction_ask(), tools=False).message().text()
    assert "my name is Ada" in summary
    assert "my city is Paris" in summary
    assert "Lyon" not in summary.split("\n")[0]  # the latest statement of a fact wins
    assert 'calculator {"expression":"6 * 7"} gave 42' in summary
    assert "2 user messages" in summary
    # Deterministic, as every answer of the local model.
    assert ask(*history, _compaction_ask(), tools=False).message().text() == summary


def test_after_a_compaction_the_summary_still_answers_for_the_facts() -> None:
    summary = ask(user("my name is Ada."), _compaction_ask(), tools=False).message().text()
    from runwire.context.compaction import summary_messages

    later = ask(*summary_messages(summary), user("What is my name?"))
    assert later.message().text() == "Your name is Ada."
