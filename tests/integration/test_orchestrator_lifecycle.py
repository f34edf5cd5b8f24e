"""Run lifecycle against the real stack: provider failures, retries, cancel, rules, concurrency."""

from __future__ import annotations

import asyncio
import time

from runwire.client import Client
from runwire.contract.events import EventType, RunStatus, RunStatusChanged
from runwire.providers.local import LocalModel
from runwire.providers.retry import RetryPolicy
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.settings import Settings
from runwire.transcript.messages import Message, TextPart, ToolResultPart, ToolUsePart
from tests.fakes.anthropic_messages import FakeAnthropicServer
from tests.fakes.openai_chat import FakeOpenAIServer
from tests.fakes.server import Fail, Turn
from tests.helpers import assert_eventually
from tests.integration.orchestration_support import read_run_log

FAST_RETRIES = RetryPolicy(max_attempts=3, timeout=10.0, base_delay=0.05, max_delay=0.2)


def openai_settings(settings: Settings, fake: FakeOpenAIServer) -> Settings:
    return settings.model_copy(
        update={
            "model_provider": "openai",
            "model_name": "gpt-fake",
            "provider_base_url": fake.base_url,
            "provider_api_key": "test-key",
        }
    )


async def test_a_429_is_retried_after_retry_after_then_the_run_completes(
    settings: Settings,
) -> None:
    async with FakeOpenAIServer() as fake:
        fake.enqueue(
            Fail(429, "slow down", error_type="rate_limit_error", headers={"retry-after": "0.2"}),
            Turn(parts=(TextPart(text="Hello after the rate limit."),)),
        )
        mine = openai_settings(settings, fake)
        async with (
            orchestrator_service(mine, retry_policy=FAST_RETRIES) as orchestrator,
            Client(mine) as rw,
        ):
            started = time.monotonic()
            outcome = await (await rw.run("helper", "hi")).wait(timeout=30)
            elapsed = time.monotonic() - started
    assert outcome.status is RunStatus.COMPLETED, outcome.events
    assert outcome.text == "Hello after the rate limit."
    assert len(fake.requests) == 2
    assert orchestrator.stats.retries == 1
    assert elapsed >= 0.2  # retry-after was honoured
    usage = [e for e in outcome.events if e.type is EventType.USAGE]
    assert len(usage) == 1
    assert usage[0].payload.provider == "openai"  # type: ignore[union-attr]


async def test_a_400_fails_the_run_with_the_providers_message(settings: Settings) -> None:
    async with FakeOpenAIServer() as fake:
        fake.enqueue(Fail(400, "messages: too many cooks", error_type="invalid_request_error"))
        mine = openai_settings(settings, fake)
        async with orchestrator_service(mine, retry_policy=FAST_RETRIES), Client(mine) as rw:
            outcome = await (await rw.run("helper", "hi")).wait(timeout=30)
    assert outcome.status is RunStatus.FAILED
    assert outcome.error is not None
    assert outcome.error.error_kind == "invalid_request"
    assert "too many cooks" in outcome.error.message
    assert not outcome.error.retryable
    assert len(fake.requests) == 1  # a final error is not retried


async def test_a_provider_rule_violation_fails_the_run_before_any_call(settings: Settings) -> None:
    """Anthropic with thinking on: an assistant tool_use message must start with thinking."""
    history = [
        Message(role="user", parts=(TextPart(text="what is 2 + 2?"),)),
        Message(
            role="assistant",
            parts=(
                TextPart(text="Let me compute."),
                ToolUsePart(id="toolu_1", name="calculator", input={"expression": "2 + 2"}),
            ),
        ),
        Message(role="user", parts=(ToolResultPart(tool_use_id="toolu_1", content=4),)),
    ]
    async with FakeAnthropicServer() as fake:
        mine = settings.model_copy(
            update={
                "model_provider": "anthropic",
                "model_name": "claude-fake",
                "provider_base_url": fake.base_url,
                "provider_api_key": "test-key",
                "thinking_enabled": True,
            }
        )
        async with orchestrator_service(mine), Client(mine) as rw:
            outcome = await (await rw.run("helper", history)).wait(timeout=30)
    assert outcome.status is RunStatus.FAILED
    assert outcome.error is not None
    assert outcome.error.error_kind == "transcript_rule"
    assert "thinking_not_first" in outcome.error.message
    assert outcome.run_id in outcome.error.message
    assert fake.requests == []  # caught before the call


async def test_cancel_aborts_the_call_in_flight_and_nothing_follows(settings: Settings) -> None:
    async with FakeOpenAIServer() as fake:
        fake.enqueue(Turn(parts=(TextPart(text="too late"),), delay=30))
        mine = openai_settings(settings, fake)
        async with (
            orchestrator_service(mine, retry_policy=FAST_RETRIES) as orchestrator,
            Client(mine) as rw,
        ):
            handle = await rw.run("helper", "take your time")
            await assert_eventually(lambda: len(fake.requests) == 1, timeout=20)
            await handle.cancel("the user changed their mind")
            outcome = await handle.wait(timeout=10)
            await assert_eventually(lambda: len(fake.aborted) == 1, timeout=10)
            await asyncio.sleep(1.0)  # anything the orchestrator still wrote would be in by now
    assert outcome.status is RunStatus.CANCELED
    assert orchestrator.stats.canceled == 1
    records = [r for r in await read_run_log(settings) if r.event.run_id == handle.run_id]
    kinds = [r.event.type for r in records]
    canceled_at = kinds.index(EventType.RUN_CANCELED)
    assert canceled_at == len(kinds) - 1, kinds  # nothing after run_canceled
    running = [r.event.payload for r in records if r.event.type is EventType.RUN_STATUS_CHANGED]
    assert [p.status for p in running if isinstance(p, RunStatusChanged)] == [RunStatus.RUNNING]


async def test_one_slow_model_call_does_not_hold_up_the_others(settings: Settings) -> None:
    """100 concurrent runs, each a 1 s model call, end in a few seconds, not 100."""
    slow = LocalModel(latency=1.0)
    async with (
        orchestrator_service(settings, provider=slow) as orchestrator,
        Client(settings) as rw,
    ):
        await orchestrator.wait_caught_up(timeout=30)
        started = time.monotonic()
        handles = await asyncio.gather(
            *(rw.run("helper", f"Hello, my name is User{i}.") for i in range(100))
        )
        outcomes = await asyncio.gather(*(h.wait(timeout=60) for h in handles))
        elapsed = time.monotonic() - started
    assert all(o.status is RunStatus.COMPLETED for o in outcomes)
    assert outcomes[42].text == "Nice to meet you, User42!"
    assert elapsed < 8.0, f"100 runs of a 1 s model took {elapsed:.1f}s"


async def test_the_turn_limit_fails_the_run_with_a_clear_message(settings: Settings) -> None:
    limited = settings.model_copy(update={"max_turns": 1})
    async with (
        orchestrator_service(limited),
        Client(limited) as rw,
    ):
        handle = await rw.run("helper", "what is 6 * 7?")
        # No tool runner: answer the calculator from outside, as an external tool would.
        async for event in handle.events():
            if event.type is EventType.TOOL_USE:
                tool_use_id = event.payload.id  # type: ignore[union-attr]
                break
        await rw.resume(handle.run_id, {tool_use_id: {"result": 42}})
        outcome = await handle.wait(timeout=30)
    assert outcome.status is RunStatus.FAILED
    assert outcome.error is not None
    assert outcome.error.error_kind == "turn_limit"
    assert "max_turns" in outcome.error.message
