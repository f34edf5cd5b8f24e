"""One contract, every adapter: each runs against a local server speaking its
provider's real wire format (JSON and streaming), on an ephemeral port."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer

from runwire.errors import ProviderError
from runwire.providers.anthropic_messages import AnthropicMessagesProvider
from runwire.providers.base import (
    AssistantPart,
    ModelProvider,
    ModelRequest,
    StreamDelta,
    TokenUsage,
    ToolSpec,
)
from runwire.providers.bedrock_converse import BedrockConverseProvider
from runwire.providers.openai_chat import OpenAIChatProvider
from runwire.providers.retry import CallCanceled, RetryPolicy, call_with_retries
from runwire.transcript.messages import (
    Message,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
)
from tests.fakes import eventstream
from tests.fakes.anthropic_messages import FakeAnthropicServer
from tests.fakes.bedrock_converse import FakeBedrockServer
from tests.fakes.openai_chat import FakeOpenAIServer
from tests.fakes.server import Fail, FakeProviderServer, StreamDrop, StreamFail, Turn
from tests.helpers import assert_eventually
from tests.support.exact_json import identical

TOOLS = (
    ToolSpec(
        name="calculator",
        description="Arithmetic.",
        input_schema={"type": "object", "properties": {"expression": {"type": "string"}}},
    ),
    ToolSpec(name="clock", description="The time."),
)
QUESTION = Message(role="user", parts=(TextPart(text="What is 6 * 7, and what time is it?"),))
SIGNATURE = "EqQBCkYIARgCIkD/x+9sig=="


@dataclass(frozen=True)
class Case:
    name: str
    server: type[FakeProviderServer]
    build: Callable[[str], ModelProvider]
    keeps_thinking: bool
    redacted: bytes
    stream_error_type: str

    def turn(self, **kwargs: Any) -> Turn:
        return Turn(
            parts=(
                ThinkingPart(text="Two things: 6 * 7, then the clock.", signature=SIGNATURE),
                ThinkingPart(redacted=self.redacted),
                TextPart(text="I'll use two tools."),
                ToolUsePart(id="toolu_01", name="calculator", input={"expression": "6 * 7"}),
                ToolUsePart(id="toolu_02", name="clock", input={"timezone": "UTC"}),
            ),
            **kwargs,
        )

    def expected(self, turn: Turn) -> tuple[AssistantPart, ...]:
        if self.keeps_thinking:
            return turn.parts
        return tuple(p for p in turn.parts if not isinstance(p, ThinkingPart))


CASES = {
    "openai": Case(
        "openai",
        FakeOpenAIServer,
        lambda url: OpenAIChatProvider(model="gpt-fake", base_url=url, timeout=5.0),
        keeps_thinking=False,
        redacted=b"",
        stream_error_type="server_error",
    ),
    "anthropic": Case(
        "anthropic",
        FakeAnthropicServer,
        lambda url: AnthropicMessagesProvider(model="claude-fake", base_url=url, timeout=5.0),
        keeps_thinking=True,
        # Anthropic's redacted data is an opaque ASCII string.
        redacted=b"EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP",
        stream_error_type="overloaded_error",
    ),
    "bedrock": Case(
        "bedrock",
        FakeBedrockServer,
        lambda url: BedrockConverseProvider(
            model="anthropic.claude-fake-v1:0",
            region="us-east-1",
            endpoint_url=url,
            timeout=5.0,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        ),
        keeps_thinking=True,
        # Bedrock's redactedContent is a blob: any bytes, not only UTF-8.
        redacted=b"\x00\xff\xfe redacted \x80\x81",
        stream_error_type="throttlingException",
    ),
}


@dataclass
class Rig:
    case: Case
    fake: FakeProviderServer
    provider: ModelProvider

    def request(self, *messages: Message, **kwargs: Any) -> ModelRequest:
        return ModelRequest(messages=messages or (QUESTION,), tools=TOOLS, thinking=True, **kwargs)


async def _rig(name: str) -> AsyncIterator[Rig]:
    case = CASES[name]
    async with case.server() as fake, case.build(fake.base_url) as provider:
        yield Rig(case, fake, provider)


@pytest.fixture(params=sorted(CASES))
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    async for value in _rig(request.param):
        yield value


@pytest.fixture(params=sorted(name for name, case in CASES.items() if case.keeps_thinking))
async def thinking_rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    """The providers whose API takes signed / redacted thinking back."""
    async for value in _rig(request.param):
        yield value


class Collector:
    def __init__(self) -> None:
        self.deltas: list[StreamDelta] = []

    async def __call__(self, delta: StreamDelta) -> None:
        self.deltas.append(delta)

    def by_block(self, kind: str) -> list[str]:
        blocks: dict[int, str] = {}
        for d in self.deltas:
            if d.kind == kind:
                blocks[d.index] = blocks.get(d.index, "") + d.text
        return [blocks[i] for i in sorted(blocks)]


FAST = RetryPolicy(max_attempts=3, timeout=5.0, base_delay=0.05, max_delay=0.1)


EXACT_INPUT = {
    "big": 123456789012345678901234567890,
    "precise": Decimal("0.10000000000000000555"),
    "max": 1e308,
    "zero": -0.0,
    "nested": [{"beyond_float": Decimal("1E+400")}],
}


async def test_tool_input_numbers_come_back_with_every_digit(rig: Rig) -> None:
    # A model's tool input as it wrote it (docs/json-numbers.md), JSON and streamed.
    turn = Turn(parts=(ToolUsePart(id="toolu_x", name="calculator", input=EXACT_INPUT),))
    rig.fake.enqueue(turn, turn)
    plain = await rig.provider.complete(rig.request())
    streamed = await rig.provider.complete(rig.request(), on_chunk=Collector())
    for response in (plain, streamed):
        assert identical(response.tool_uses()[0].input, EXACT_INPUT)


async def test_json_and_stream_give_the_same_canonical_parts(rig: Rig) -> None:
    turn = rig.case.turn()
    rig.fake.enqueue(turn, turn)
    plain = await rig.provider.complete(rig.request())
    chunks = Collector()
    streamed = await rig.provider.complete(rig.request(), on_chunk=chunks)

    assert plain.parts == rig.case.expected(turn)
    assert streamed == plain
    assert plain.stop_reason == "tool_use"
    assert plain.provider == rig.case.name
    assert plain.usage.input_tokens == turn.usage.input_tokens
    assert plain.usage.output_tokens == turn.usage.output_tokens
    assert [p.id for p in plain.tool_uses()] == ["toolu_01", "toolu_02"]
    # The live deltas add up to the committed parts, block by block.
    assert chunks.by_block("text") == ["I'll use two tools."]
    assert [d.tool_name for d in chunks.deltas if d.kind == "tool_input" and not d.text] == [
        "calculator",
        "clock",
    ]
    assert [json.loads(t) for t in chunks.by_block("tool_input")] == [
        {"expression": "6 * 7"},
        {"timezone": "UTC"},
    ]
    if rig.case.keeps_thinking:
        assert chunks.by_block("thinking") == ["Two things: 6 * 7, then the clock."]
    assert [r.body.get("stream") for r in rig.fake.requests if isinstance(r.body, dict)] in (
        [None, True],
        [None, None],  # Bedrock streams by path, not by a body flag
    )


async def test_thinking_goes_back_to_the_provider_byte_for_byte(thinking_rig: Rig) -> None:
    rig = thinking_rig
    first, answer = rig.case.turn(), Turn(parts=(TextPart(text="42, at noon."),))
    rig.fake.enqueue(first, answer)
    response = await rig.provider.complete(rig.request())
    results = Message(
        role="user",
        parts=(
            ToolResultPart(tool_use_id="toolu_01", content="42"),
            ToolResultPart(tool_use_id="toolu_02", content={"time": "12:00"}),
        ),
    )
    final = await rig.provider.complete(rig.request(QUESTION, response.message(), results))

    assert final.parts == (TextPart(text="42, at noon."),)
    assert final.stop_reason == "end_turn"
    sent = rig.fake.requests[-1].body
    assert _thinking_sent(rig.case.name, sent) == [
        (first.parts[0].text, SIGNATURE, None),  # type: ignore[union-attr]
        (None, None, rig.case.redacted),
    ]


def _thinking_sent(provider: str, body: Any) -> list[tuple[str | None, str | None, bytes | None]]:
    assistant = body["messages"][1]["content"]
    out: list[tuple[str | None, str | None, bytes | None]] = []
    for block in assistant:
        if provider == "anthropic":
            if block["type"] == "thinking":
                out.append((block["thinking"], block["signature"], None))
            elif block["type"] == "redacted_thinking":
                out.append((None, None, block["data"].encode()))
        elif "reasoningContent" in block:
            reasoning = block["reasoningContent"]
            if "redactedContent" in reasoning:
                out.append((None, None, base64.b64decode(reasoning["redactedContent"])))
            else:
                text = reasoning["reasoningText"]
                out.append((text["text"], text.get("signature"), None))
    return out


@pytest.mark.parametrize("header", ["retry-after", "retry-after-ms"])
async def test_429_with_retry_after_is_retried_after_that_wait(rig: Rig, header: str) -> None:
    value = "0.6" if header == "retry-after" else "600"
    rig.fake.enqueue(Fail(429, "slow down", headers={header: value}), rig.case.turn())
    retries: list[tuple[int, float, str]] = []

    async def on_retry(attempt: int, error: ProviderError, delay: float) -> None:
        retries.append((attempt, delay, error.kind))

    response = await call_with_retries(
        lambda: rig.provider.complete(rig.request()), FAST, on_retry=on_retry
    )

    assert response.parts == rig.case.expected(rig.case.turn())
    assert len(rig.fake.requests) == 2
    gap = rig.fake.requests[1].received_at - rig.fake.requests[0].received_at
    # At least the wait asked for; the upper bound only rules out a wait read in
    # the wrong unit (600 s), with room for a loaded machine.
    assert 0.55 <= gap < 5.0
    assert [(attempt, kind) for attempt, _, kind in retries] == [(1, "rate_limited")]
    assert retries[0][1] == pytest.approx(0.6)


async def test_400_is_final_with_the_providers_message_and_status(rig: Rig) -> None:
    rig.fake.enqueue(Fail(400, "messages.0.content: field required"), rig.case.turn())
    with pytest.raises(ProviderError) as caught:
        await call_with_retries(lambda: rig.provider.complete(rig.request()), FAST)

    assert caught.value.status == 400
    assert caught.value.retriable is False
    assert caught.value.kind == "invalid_request"
    assert "messages.0.content: field required" in str(caught.value)
    assert str(caught.value).startswith(f"{rig.case.name}: 400")
    assert len(rig.fake.requests) == 1
    assert rig.fake.pending == 1


async def test_500_then_success_is_retried(rig: Rig) -> None:
    rig.fake.enqueue(Fail(500, "internal error"), rig.case.turn())
    response = await call_with_retries(lambda: rig.provider.complete(rig.request()), FAST)
    assert response.stop_reason == "tool_use"
    assert len(rig.fake.requests) == 2


async def test_the_sdks_own_retries_are_off(rig: Rig) -> None:
    rig.fake.enqueue(Fail(503, "unavailable"), Fail(503, "unavailable"), rig.case.turn())
    with pytest.raises(ProviderError) as caught:
        await rig.provider.complete(rig.request())
    assert caught.value.retriable is True
    assert caught.value.status == 503
    assert len(rig.fake.requests) == 1


async def test_error_in_the_middle_of_a_stream_is_retriable(rig: Rig) -> None:
    rig.fake.enqueue(
        StreamFail(
            after_events=3,
            message="overloaded, try again",
            error_type=rig.case.stream_error_type,
            turn=rig.case.turn(),
        ),
        rig.case.turn(),
    )
    chunks = Collector()
    response = await call_with_retries(
        lambda: rig.provider.complete(rig.request(), on_chunk=chunks), FAST
    )
    assert response.parts == rig.case.expected(rig.case.turn())
    assert len(rig.fake.requests) == 2


@pytest.mark.parametrize("after_events", [2, 5])
async def test_a_stream_that_drops_mid_answer_is_retriable_never_a_half_answer(
    rig: Rig, after_events: int
) -> None:
    # The connection ends cleanly in the middle of the answer: no error event,
    # no end of message. That is a failed call, never the part received.
    rig.fake.enqueue(StreamDrop(after_events=after_events, turn=rig.case.turn()))
    with pytest.raises(ProviderError) as caught:
        await rig.provider.complete(rig.request(), on_chunk=Collector())
    assert caught.value.retriable
    assert caught.value.kind == "incomplete_stream"
    rig.fake.enqueue(StreamDrop(after_events=after_events, turn=rig.case.turn()), rig.case.turn())
    response = await call_with_retries(
        lambda: rig.provider.complete(rig.request(), on_chunk=Collector()), FAST
    )
    assert response.parts == rig.case.expected(rig.case.turn())


async def test_a_slow_provider_times_out_as_retriable(rig: Rig) -> None:
    rig.fake.enqueue(rig.case.turn(delay=3.0))
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        await rig.provider.complete(rig.request(timeout=0.3))
    assert time.monotonic() - started < 2.0
    assert caught.value.retriable is True
    assert caught.value.kind == "timeout"


async def test_the_retry_policy_timeout_bounds_a_trickling_stream(rig: Rig) -> None:
    rig.fake.enqueue(rig.case.turn(chunk_delay=0.2))
    policy = RetryPolicy(max_attempts=1, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        await call_with_retries(
            lambda: rig.provider.complete(rig.request(), on_chunk=Collector()), policy
        )
    assert time.monotonic() - started < 1.5
    assert caught.value.kind == "timeout"


@pytest.mark.parametrize("streaming", [False, True])
async def test_cancel_aborts_a_slow_call_promptly(rig: Rig, streaming: bool) -> None:
    turn = rig.case.turn(chunk_delay=1.0) if streaming else rig.case.turn(delay=10.0)
    rig.fake.enqueue(turn)
    cancel = asyncio.Event()
    on_chunk = Collector() if streaming else None
    call = asyncio.create_task(
        call_with_retries(
            lambda: rig.provider.complete(rig.request(), on_chunk=on_chunk), FAST, cancel=cancel
        )
    )
    await assert_eventually(lambda: len(rig.fake.requests) == 1, timeout=5)
    await asyncio.sleep(0.2)
    started = time.monotonic()
    cancel.set()
    with pytest.raises(CallCanceled):
        await call
    assert time.monotonic() - started < 0.5
    if streaming or rig.case.name != "bedrock":
        # The connection is dropped, not left to finish in the background.
        await assert_eventually(lambda: len(rig.fake.aborted) == 1, timeout=3)


async def test_cancelling_the_task_aborts_the_call(rig: Rig) -> None:
    rig.fake.enqueue(rig.case.turn(delay=10.0))
    call = asyncio.create_task(
        call_with_retries(lambda: rig.provider.complete(rig.request()), FAST)
    )
    await assert_eventually(lambda: len(rig.fake.requests) == 1, timeout=5)
    started = time.monotonic()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert time.monotonic() - started < 0.5


async def test_a_closed_provider_refuses_calls(rig: Rig) -> None:
    await rig.provider.close()
    await rig.provider.close()  # idempotent
    with pytest.raises(ProviderError, match="closed"):
        await rig.provider.complete(rig.request())
    assert rig.fake.requests == []


# What each wire format carries: OpenAI chat has no cache writes and Anthropic
# and Bedrock do not report reasoning tokens apart (thinking is in their output).
CARRIES = {
    "openai": {"cache_write_tokens": False, "reasoning_tokens": True},
    "anthropic": {"cache_write_tokens": True, "reasoning_tokens": False},
    "bedrock": {"cache_write_tokens": True, "reasoning_tokens": False},
}


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
async def test_usage_reports_cache_and_reasoning_tokens(rig: Rig, streamed: bool) -> None:
    sent = TokenUsage(
        input_tokens=100,
        output_tokens=70,
        cache_read_tokens=40,
        cache_write_tokens=9,
        reasoning_tokens=30,
    )
    rig.fake.enqueue(Turn(parts=(TextPart(text="hi"),), usage=sent))
    on_chunk = Collector() if streamed else None
    response = await rig.provider.complete(rig.request(), on_chunk=on_chunk)
    carries = CARRIES[rig.case.name]
    # One meaning for every provider: input_tokens leaves the cache's tokens out.
    assert response.usage == TokenUsage(
        input_tokens=100,
        output_tokens=70,
        cache_read_tokens=40,
        cache_write_tokens=9 if carries["cache_write_tokens"] else 0,
        reasoning_tokens=30 if carries["reasoning_tokens"] else 0,
    )
    assert response.stop_reason == "end_turn"


async def test_openai_cached_tokens_are_taken_out_of_the_prompt_count() -> None:
    from runwire.providers.encoders.openai_chat import decode_usage

    usage = decode_usage(
        {
            "usage": {
                "prompt_tokens": 1200,
                "completion_tokens": 300,
                "prompt_tokens_details": {"cached_tokens": 1024},
                "completion_tokens_details": {"reasoning_tokens": 256},
            }
        }
    )
    assert usage == TokenUsage(
        input_tokens=176, output_tokens=300, cache_read_tokens=1024, reasoning_tokens=256
    )
    # A server that sends no details (vLLM, Ollama): the counts as they are.
    bare = decode_usage({"usage": {"prompt_tokens": 12, "completion_tokens": 3}})
    assert bare == TokenUsage(input_tokens=12, output_tokens=3)


@pytest.mark.parametrize("name", sorted(CASES))
async def test_nobody_listening_is_a_retriable_connection_error(name: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with CASES[name].build(f"http://127.0.0.1:{port}") as provider:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(ModelRequest(messages=(QUESTION,), tools=TOOLS))
    assert caught.value.retriable is True
    assert caught.value.kind == "connection_error"
    assert str(caught.value).startswith(f"{name}: connection failed")


def test_a_provider_that_is_never_closed_says_so() -> None:
    provider = CASES["openai"].build("http://127.0.0.1:9")
    with pytest.warns(ResourceWarning, match="'openai' was never closed"):
        del provider  # the last reference: collected here


def test_fake_event_stream_frames_are_what_botocore_decodes() -> None:
    frames = eventstream.event(
        "contentBlockDelta", {"contentBlockIndex": 2, "delta": {"text": "é"}}
    )
    frames += eventstream.exception("throttlingException", "slow down")
    buffer = EventStreamBuffer()
    buffer.add_data(frames)
    first, second = list(buffer)
    assert first.headers[":event-type"] == "contentBlockDelta"
    assert json.loads(first.payload) == {"contentBlockIndex": 2, "delta": {"text": "é"}}
    assert second.headers[":message-type"] == "exception"
    assert second.headers[":exception-type"] == "throttlingException"
