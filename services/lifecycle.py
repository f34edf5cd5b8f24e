"""The lifecycle every long-lived piece of a service shares, and the rule that
a service process never outlives its loops.

:class:`AsyncService` (from :mod:`runwire.lifecycle`, re-exported here for the
services) gives ``async with`` on top of ``start()`` / ``stop()``.

Contract of the process side (one place, used by ``runwire serve NAME`` for
every service and by ``python -m runwire.services NAME``):

- :func:`run_until_stopped` runs a service coroutine until SIGTERM / SIGINT
  sets its ``stop`` event and it returns.
- A loop the service lives by (a consume loop running as a background task)
  is marked with :func:`vital`. When such a task ends with an exception, the
  service is asked to stop (``stop`` is set, ``grace`` seconds to finish,
  then it is cancelled) and :func:`run_until_stopped` raises
  :class:`ServiceDied`, whose message is one line naming the service, the
  loop, the error and where it was raised. The caller turns it into that one
  line on stderr and a non-zero exit: a process whose loop died never stays
  up doing nothing.
- The same holds when the service coroutine itself ends with an error that
  is not a :class:`RunwireError` (those already say what is wrong in one
  line and are raised as they are).
- Outside :func:`run_until_stopped` (a library user running a follower in
  their own process) a vital task that dies is logged at ERROR with its
  traceback: never silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import traceback
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from runwire.errors import RunwireError
from runwire.lifecycle import AsyncService

__all__ = ["AsyncService", "ServiceDied", "describe_error", "run_until_stopped", "vital"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class ServiceDied(RunwireError):
    """A loop the service lives by (or the service itself) ended with an error."""


def describe_error(error: BaseException) -> str:
    """``Type: message (at file.py:123 in function)``: one line, innermost frame."""
    text = f"{type(error).__name__}: {error}".replace("\n", " ")
    frames = traceback.extract_tb(error.__traceback__)
    if frames:
        last = frames[-1]
        text += f" (at {Path(last.filename).name}:{last.lineno} in {last.name})"
    return text


class _Supervisor:
    """What :func:`run_until_stopped` installs on its event loop for :func:`vital`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.death: ServiceDied | None = None
        self.died = asyncio.Event()

    def report(self, task: asyncio.Task[Any], error: BaseException) -> None:
        if self.death is None:
            self.death = ServiceDied(
                f"{self.name}: {task.get_name()} died: {describe_error(error)}"
            )
            self.death.__cause__ = error
        self.died.set()


_supervisors: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Supervisor] = (
    weakref.WeakKeyDictionary()
)


def vital(task: asyncio.Task[_T]) -> asyncio.Task[_T]:
    """Mark ``task`` as a loop its process lives by (see the module contract).

    Cancelling the task, or its returning, is a normal end; an exception is
    a death. Returns the task.
    """
    task.add_done_callback(_ended)
    return task


def _ended(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    error = task.exception()  # also marks the exception as retrieved
    if error is None:
        return
    supervisor = _supervisors.get(task.get_loop())
    if supervisor is None:
        log.error("%s died: %s", task.get_name(), describe_error(error), exc_info=error)
        return
    log.debug("%s died", task.get_name(), exc_info=error)
    supervisor.report(task, error)


async def run_until_stopped(
    name: str,
    service: Callable[[asyncio.Event], Awaitable[None]],
    *,
    grace: float = 30.0,
    signals: bool = True,
) -> None:
    """Run ``service(stop)`` until it returns; see the module contract.

    ``signals`` installs SIGTERM / SIGINT handlers that set ``stop`` (the
    process entry points want them; tests calling this in their own loop
    may not).
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    supervisor = _Supervisor(name)
    if loop in _supervisors:
        raise RuntimeError("run_until_stopped is already running on this event loop")
    _supervisors[loop] = supervisor
    installed: list[signal.Signals] = []
    if signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    main = asyncio.ensure_future(service(stop))
    death = asyncio.ensure_future(supervisor.died.wait())
    try:
        await asyncio.wait({main, death}, return_when=asyncio.FIRST_COMPLETED)
        if not main.done():
            # A vital loop died: let the service stop what still runs
            # (commit, leave its group) before the process ends.
            stop.set()
            await asyncio.wait({main}, timeout=grace)
    finally:
        death.cancel()
        if not main.done():
            main.cancel()
            with contextlib.suppress(BaseException):
                await main
        for sig in installed:
            loop.remove_signal_handler(sig)
        _supervisors.pop(loop, None)
    if supervisor.death is not None:
        if not main.cancelled() and main.exception() is not None:
            log.debug("%s: the service ended with", name, exc_info=main.exception())
        raise supervisor.death
    if main.cancelled():
        raise asyncio.CancelledError
    error = main.exception()
    if error is None or isinstance(error, RunwireError):
        main.result()
        return
    if not isinstance(error, Exception):
        raise error
    log.debug("%s failed", name, exc_info=error)
    raise ServiceDied(f"{name} failed: {describe_error(error)}") from error
