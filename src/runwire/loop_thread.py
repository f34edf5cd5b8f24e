"""An event loop on a thread of its own: async I/O that works from any caller.

Clients (Kafka, Postgres, Redis) belong to the loop that started them; callers
(sync code in worker threads, several event loops) hand their work to this one.

Contract:
- :meth:`LoopThread.run` (async) and :meth:`LoopThread.run_sync` run a
  coroutine on the loop thread and return its result or raise its error,
  whatever event loop or thread the caller is on.
- Cancelling an awaiting caller cancels the coroutine, unless ``finish``:
  then the work's outcome is waited for first (:func:`outcome_first`).
- ``run_sync`` from the loop thread itself would wait on itself: it raises
  the owner's ``reentry`` error instead of hanging.
- :meth:`LoopThread.shared` is the process-wide one of a name, started on
  first use; :meth:`close` stops a loop and joins its thread (idempotent).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, ClassVar, TypeVar

__all__ = ["LoopThread", "outcome_first"]

T = TypeVar("T")


class LoopThread:
    """An event loop running on a daemon thread (see the module contract)."""

    _shared: ClassVar[dict[str, LoopThread]] = {}
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        name: str,
        *,
        reentry: Callable[[], BaseException],
        closed: str = "the loop thread is closed",
    ) -> None:
        self._reentry = reentry
        self._closed_message = closed
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()
        self._closed = False

    @classmethod
    def shared(cls, name: str, *, reentry: Callable[[], BaseException]) -> LoopThread:
        """The process-wide loop thread called ``name``, started on first use."""
        with cls._guard:
            loop = cls._shared.get(name)
            if loop is None:
                loop = cls._shared[name] = cls(name, reentry=reentry)
            return loop

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

    def on_loop(self) -> bool:
        """True when the caller runs on this loop's thread."""
        return threading.current_thread() is self._thread

    def _submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        if self._closed:
            coro.close()
            raise RuntimeError(self._closed_message)
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def run(self, coro: Coroutine[Any, Any, T], *, finish: bool = False) -> T:
        """Await ``coro`` on the loop thread, from any event loop (this one too)."""
        if self.on_loop():
            running: asyncio.Future[T] = asyncio.ensure_future(coro)
        else:
            running = asyncio.wrap_future(self._submit(coro))
        return await (outcome_first(running) if finish else running)

    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop thread and block until it is done."""
        if self.on_loop():
            coro.close()
            raise self._reentry()
        return self._submit(coro).result()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        if not self.on_loop():
            self._thread.join()


async def outcome_first(running: asyncio.Future[T]) -> T:
    """Await ``running``; a cancellation of the caller meanwhile does not cancel it:
    its outcome is waited for, then the cancellation is raised (and its error, if
    it failed, dropped), as the Agents SDK's sessions finish a mutation."""
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            result = await asyncio.shield(running)
        except asyncio.CancelledError as e:
            if not running.done():
                cancelled = cancelled or e
                continue
            if cancelled is not None:
                raise cancelled from None
            raise
        except BaseException:
            if cancelled is not None:
                raise cancelled from None
            raise
        if cancelled is not None:
            raise cancelled
        return result
