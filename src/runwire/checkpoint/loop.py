"""The saver's own event loop, on a thread of its own: its I/O works from any caller.

Contract:
- :meth:`LoopThread.run` (async) and :meth:`LoopThread.run_sync` run a
  coroutine on the loop thread and return its result or raise its error,
  whatever event loop or thread the caller is on: Kafka and Postgres
  clients belong to one loop, and callers (LangGraph's sync ``invoke`` in
  worker threads, several event loops) need not know which.
- ``run_sync`` from the loop thread itself would wait on itself: it raises
  :class:`RuntimeError` instead of hanging.
- Cancelling an awaiting caller cancels the coroutine on the loop thread.
- :meth:`close` stops the loop and joins the thread; idempotent.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """An event loop running on a daemon thread (see the module contract)."""

    def __init__(self, name: str = "runwire-checkpoint") -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()
        self._closed = False

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._ready.set)
        self._loop.run_forever()
        # Let what was cancelled at close finish, then release the loop.
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        if pending:
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def _on_loop(self) -> bool:
        return threading.current_thread() is self._thread

    def _submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        if self._closed:
            coro.close()
            raise RuntimeError("the checkpoint saver is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the loop thread from any event loop."""
        if self._on_loop():
            return await coro
        return await asyncio.wrap_future(self._submit(coro))

    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop thread and block until it is done."""
        if self._on_loop():
            coro.close()
            raise RuntimeError(
                "a sync method of the checkpoint saver was called on the saver's own loop "
                "thread; call the async method (aget_tuple, aput, ...) there instead"
            )
        return self._submit(coro).result()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        if not self._on_loop():
            self._thread.join()
