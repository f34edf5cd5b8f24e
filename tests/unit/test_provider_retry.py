"""The one retry policy: which errors are retried, how long it waits, how it stops."""

from __future__ import annotations

import asyncio
import email.utils
import random
import time

import pytest

from runwire.errors import ContractError, ProviderError, PublishError
from runwire.providers.retry import (
    CallCanceled,
    RetryPolicy,
    call_with_retries,
    decide,
    parse_retry_after,
)
from runwire.settings import Settings


class Script:
    """A call that fails with the given errors in turn, then returns "ok"."""

    def __init__(self, *outcomes: BaseException) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.outcomes:
            raise self.outcomes.pop(0)
        return "ok"


def retriable(retry_after: float | None = None) -> ProviderError:
    return ProviderError("busy", status=503, retriable=True, retry_after=retry_after)


FAST = RetryPolicy(max_attempts=4, timeout=2.0, base_delay=0.01, max_delay=0.02)


@pytest.mark.parametrize(
    ("status", "retried"),
    [
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (413, False),
        (422, False),
        (408, True),
        (409, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (529, True),
    ],
)
def test_statuses_are_retried_or_final(status: int, retried: bool) -> None:
    error = decide(status, message="nope", provider="openai")
    assert error.retriable is retried
    assert error.status == status
    assert str(error) == f"openai: {status} nope"


def test_the_providers_should_retry_header_wins_over_the_status() -> None:
    assert decide(400, message="x", headers={"x-should-retry": "true"}).retriable is True
    assert decide(503, message="x", headers={"X-Should-Retry": "false"}).retriable is False


def test_error_types_inside_a_stream_decide_when_there_is_no_status() -> None:
    assert decide(None, message="x", error_type="overloaded_error").kind == "overloaded"
    assert decide(None, message="x", error_type="overloaded_error").retriable is True
    assert decide(None, message="x", error_type="throttlingException").retriable is True
    assert decide(None, message="x", error_type="invalid_request_error").retriable is False


def test_retry_after_prefers_milliseconds_and_reads_seconds_and_dates() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"Retry-After": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    in_ten = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8.0 < (parse_retry_after({"retry-after": in_ten}) or 0) <= 10.0
    assert decide(429, message="x", headers={"retry-after": "3"}).retry_after == 3.0


async def test_retriable_errors_are_retried_until_success() -> None:
    call = Script(retriable(), retriable())
    assert await call_with_retries(call, FAST) == "ok"
    assert call.calls == 3


async def test_attempts_are_bounded_and_the_last_error_is_raised() -> None:
    errors = [ProviderError(f"busy {i}", retriable=True) for i in range(5)]
    call = Script(*errors)
    with pytest.raises(ProviderError, match="busy 3"):
        await call_with_retries(call, FAST)
    assert call.calls == 4


async def test_final_errors_are_not_retried() -> None:
    call = Script(ProviderError("bad request", status=400, retriable=False))
    with pytest.raises(ProviderError, match="bad request"):
        await call_with_retries(call, FAST)
    assert call.calls == 1


async def test_other_runwire_errors_keep_their_own_posture() -> None:
    publish = Script(PublishError("broker away"))
    assert await call_with_retries(publish, FAST) == "ok"
    contract = Script(ContractError("bad transcript"))
    with pytest.raises(ContractError):
        await call_with_retries(contract, FAST)
    assert (publish.calls, contract.calls) == (2, 1)


async def test_bugs_propagate_untouched_on_the_first_attempt() -> None:
    call = Script(ValueError("a bug"))
    with pytest.raises(ValueError, match="a bug"):
        await call_with_retries(call, FAST)
    assert call.calls == 1


async def test_retry_after_is_honoured_instead_of_backoff() -> None:
    waits: list[float] = []

    async def on_retry(attempt: int, error: ProviderError, delay: float) -> None:
        waits.append(delay)

    call = Script(retriable(retry_after=0.3))
    started = time.monotonic()
    assert await call_with_retries(call, FAST, on_retry=on_retry) == "ok"
    assert waits == [0.3]
    assert 0.28 <= time.monotonic() - started < 1.0


async def test_a_retry_after_beyond_the_policy_gives_up_at_once() -> None:
    call = Script(retriable(retry_after=3600))
    started = time.monotonic()
    with pytest.raises(ProviderError, match="asked to wait 3600s") as caught:
        await call_with_retries(call, RetryPolicy(max_retry_after=60))
    assert caught.value.retriable is False
    assert caught.value.status == 503
    assert time.monotonic() - started < 0.5


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    policy = RetryPolicy(base_delay=0.5, multiplier=2.0, max_delay=4.0, jitter=0.5)
    rng = random.Random(7)
    for retry, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (8, 4.0)]:
        draws = [policy.backoff(retry, rng) for _ in range(200)]
        assert min(draws) >= ceiling * 0.5
        assert max(draws) <= ceiling
        assert max(draws) - min(draws) > ceiling * 0.3  # jitter really spreads


async def test_each_attempt_has_a_timeout_and_a_timeout_is_retried() -> None:
    calls = 0

    async def slow_then_fast() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(10)
        return "ok"

    started = time.monotonic()
    policy = RetryPolicy(max_attempts=2, timeout=0.2, base_delay=0.01)
    assert await call_with_retries(slow_then_fast, policy) == "ok"
    assert calls == 2
    assert time.monotonic() - started < 1.0

    with pytest.raises(ProviderError) as caught:
        await call_with_retries(lambda: asyncio.sleep(10), RetryPolicy(max_attempts=1, timeout=0.1))
    assert caught.value.kind == "timeout"
    assert caught.value.retriable is True


async def test_cancel_event_aborts_the_call_in_flight() -> None:
    aborted = asyncio.Event()

    async def hangs() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            aborted.set()
            raise
        return "never"

    cancel = asyncio.Event()
    task = asyncio.create_task(call_with_retries(hangs, FAST, cancel=cancel))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    cancel.set()
    with pytest.raises(CallCanceled):
        await task
    assert time.monotonic() - started < 0.2
    assert aborted.is_set()


async def test_cancel_event_aborts_the_wait_between_attempts() -> None:
    cancel = asyncio.Event()
    call = Script(retriable(retry_after=30))
    task = asyncio.create_task(
        call_with_retries(call, RetryPolicy(max_retry_after=60), cancel=cancel)
    )
    await asyncio.sleep(0.05)
    cancel.set()
    with pytest.raises(CallCanceled):
        await asyncio.wait_for(task, 1.0)
    assert call.calls == 1


async def test_a_set_cancel_event_means_no_call_at_all() -> None:
    cancel = asyncio.Event()
    cancel.set()
    call = Script()
    with pytest.raises(CallCanceled):
        await call_with_retries(call, FAST, cancel=cancel)
    assert call.calls == 0


async def test_cancelling_the_awaiting_task_cancels_the_call() -> None:
    aborted = asyncio.Event()

    async def hangs() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            aborted.set()

    for cancel in (None, asyncio.Event()):
        aborted.clear()
        task = asyncio.create_task(call_with_retries(hangs, FAST, cancel=cancel))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert aborted.is_set()


def test_policy_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNWIRE_HOME", "/nonexistent")
    policy = RetryPolicy.from_settings(Settings(model_max_retries=2, model_timeout_seconds=7.5))
    assert (policy.max_attempts, policy.timeout) == (3, 7.5)
    assert RetryPolicy.from_settings(Settings(model_max_retries=0)).max_attempts == 1
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
