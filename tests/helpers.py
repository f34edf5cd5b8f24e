"""Helpers any test may use."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable

import hypothesis


async def assert_eventually(
    predicate: Callable[[], object],
    timeout: float = 10.0,  # noqa: ASYNC109 - a deadline for polling, not for one await
    interval: float = 0.05,
    message: str = "",
) -> None:
    """Poll ``predicate`` until it returns something true; fail after ``timeout`` seconds.

    The predicate may be sync or async, and may raise AssertionError to say
    "not yet": the last such error is re-raised when time runs out, so the
    failure shows what was last seen instead of a bare timeout.
    """
    deadline = time.monotonic() + timeout
    last: AssertionError | None = None
    while True:
        try:
            result = predicate()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            last = None
        except AssertionError as e:
            last = e
        if time.monotonic() > deadline:
            if last is not None:
                raise last
            raise AssertionError(message or f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def on_the_stack(examples: int) -> hypothesis.settings:
    """Hypothesis settings for a property checked on the real stack: a fixed number of
    derandomized examples, no example database, no deadline, no shrinking (each
    example costs seconds), no health checks (the fixtures are per test on purpose)."""
    return hypothesis.settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
