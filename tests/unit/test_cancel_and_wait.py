"""Cancelling an inner future never swallows the waiting task's own cancellation."""

from __future__ import annotations

import asyncio

import pytest

from runwire.projections.runtime.consumer import cancel_and_wait


async def test_the_inner_futures_cancellation_is_swallowed() -> None:
    inner = asyncio.ensure_future(asyncio.sleep(10))
    await cancel_and_wait(inner)
    assert inner.cancelled()


async def test_a_task_cancelled_while_it_waits_ends_cancelled() -> None:
    reached = asyncio.Event()

    async def loop_that_cancels_a_poll() -> None:
        while True:  # as a run loop: cancel the poll, go on
            poll = asyncio.ensure_future(asyncio.sleep(10))
            await asyncio.sleep(0)
            poll.cancel()
            reached.set()
            await cancel_and_wait(poll)

    task = asyncio.create_task(loop_that_cancels_a_poll())
    await reached.wait()
    task.cancel()  # arrives while the task waits for the cancelled poll to end
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=2.0)
    assert task.cancelled()
