"""A runwire session for the OpenAI Agents SDK: swap ``SQLiteSession`` in one line.

::

    from runwire.sessions.openai_agents import RunwireSession

    session = RunwireSession("conversation-42", user_id="alice")   # was SQLiteSession(...)
    result = await Runner.run(agent, "Hello", session=session)

It implements the SDK's ``Session`` protocol over an
:class:`~runwire.sessions.api.AsyncSession` (docs/frameworks/openai-agents.md):

- ``add_items(items)``: every item is kept exactly as given, as a
  ``framework_item`` event, after the canonical transcript events that stand
  for it when it has a canonical form (messages, function calls and outputs:
  :func:`~runwire.sessions.responses_items.canonical_payloads`); one call is
  one atomic batch. An item that is not JSON is refused naming the item and
  the field (``InputError``), and nothing of the batch is written.
- ``get_items(limit=None)``: the items, JSON-equal to what was added, oldest
  first; the last ``limit`` of them (``session_settings.limit`` when no
  ``limit`` is given; 0 or less gives none).
- ``pop_item()``: an ``item_popped`` event takes the newest item back (and
  its canonical events: ``session.get_messages()`` hides them too); returns
  it, or None when there is none.
- ``clear_session()``: ``session_cleared`` (the log keeps the history).
- Any event loop, any thread: the session's work runs on runwire's sessions
  loop (:func:`~runwire.sessions.blocking.session_loop`), so
  ``Runner.run_sync`` in worker threads and many threads on one session
  work. (With ``backend=`` given, the work runs on the caller's loop: a
  ``LogBackend`` belongs to the loop it was started on.) A caller cancelled
  during a write gets its cancellation once the write's outcome is known (a
  write is never half done).
- Sessions opened without a ``backend`` share one
  :class:`~runwire.sessions.log_backend.LogBackend` per set of settings in
  the process (its Kafka producer, Postgres pool, Redis client), started on
  first use: a session is cheap to make, and one never closed (the SDK's
  ``SQLAlchemySession`` has no ``close()``) holds nothing.
  :func:`close_shared_backends` closes them (at interpreter exit too).
- ``close()`` (awaitable, or called plainly like ``SQLiteSession.close()``)
  is idempotent and final: every later call raises ``RuntimeError``
  (:class:`SessionClosedError`), ``add_items([])`` included.
- ``session_settings`` as the SDK's sessions take it (a ``SessionSettings``
  or a dict; default ``SessionSettings()``), and the run-context ``wrapper``
  keyword the SDK passes to sessions that accept it (not needed: the
  session's user is the one it was opened for).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading
from collections.abc import Awaitable, Coroutine, Generator
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from runwire.errors import RunwireError
from runwire.loop_thread import outcome_first
from runwire.memory.checks import InputError
from runwire.sessions.api import AsyncSession
from runwire.sessions.blocking import session_loop
from runwire.sessions.log_backend import LogBackend
from runwire.sessions.protocol import SessionBackend
from runwire.sessions.responses_items import canonical_payloads, json_problem
from runwire.settings import Settings
from runwire.transcript.messages import Message

if TYPE_CHECKING:
    from agents.memory.session_settings import SessionSettings

__all__ = [
    "FRAMEWORK",
    "ItemNotJSONError",
    "RunwireSession",
    "SessionClosedError",
    "close_shared_backends",
]

FRAMEWORK = "openai_agents"
"""The ``framework`` of the items this session keeps."""

T = TypeVar("T")


class ItemNotJSONError(InputError, TypeError):
    """An item (or a value in it) is not JSON; ``field`` names it. A TypeError, as
    the SDK's sessions raise when ``json.dumps`` refuses an item."""


class SessionClosedError(RunwireError, RuntimeError):
    """The session was closed; what the SDK's own sessions raise then (a RuntimeError)."""


class _Shared:
    """One started ``LogBackend`` per set of settings, used on the sessions loop."""

    def __init__(self, backend: LogBackend) -> None:
        self.backend = backend
        self.starting: asyncio.Lock | None = None

    async def started(self) -> None:
        # Runs on the sessions loop only, so the lock is made and used there.
        if self.starting is None:
            self.starting = asyncio.Lock()
        async with self.starting:
            await self.backend.start()


_shared: dict[str, _Shared] = {}
_shared_guard = threading.Lock()


def _shared_for(settings: Settings) -> _Shared:
    key = settings.model_dump_json()
    with _shared_guard:
        found = _shared.get(key)
        if found is None:
            found = _shared[key] = _Shared(LogBackend(settings))
        return found


def close_shared_backends() -> None:
    """Stop the backends shared by sessions opened without one (they start again on
    next use). Call it before the servers they use go away."""
    with _shared_guard:
        backends = list(_shared.values())
        _shared.clear()
    loop = session_loop()
    for shared in backends:
        loop.run_sync(shared.backend.stop())


@atexit.register
def _close_at_exit() -> None:
    with contextlib.suppress(Exception):
        close_shared_backends()


class RunwireSession:
    """The Agents SDK ``Session`` protocol on a runwire session; see the module doc."""

    def __init__(
        self,
        session_id: str | None = None,
        *,
        user_id: str | None = None,
        tenant: str | None = None,
        ttl: int | float | timedelta | None = None,
        settings: Settings | None = None,
        backend: SessionBackend | None = None,
        session_settings: SessionSettings | dict[str, Any] | None = None,
    ) -> None:
        from agents.memory.session_settings import SessionSettings, coerce_session_settings

        # Typed as the SDK's protocol types it (None is read as the defaults).
        self.session_settings: SessionSettings | None = (
            coerce_session_settings(session_settings)
            if session_settings is not None
            else SessionSettings()
        )
        self._loop = session_loop()
        self._shared: _Shared | None = None
        if backend is None:
            self._shared = _shared_for(settings if settings is not None else Settings())
            backend = self._shared.backend
        self.session = AsyncSession(
            session_id, user_id=user_id, tenant=tenant, ttl=ttl, settings=settings, backend=backend
        )
        """The runwire session underneath; it runs on the sessions loop."""
        self.session_id = self.session.session_id
        self._closed = False

    def __repr__(self) -> str:
        return f"RunwireSession({self.session_id!r}, user_id={self.session.user_id!r})"

    def _check_open(self) -> None:
        if self._closed:
            raise SessionClosedError(
                f"{type(self).__name__} is closed (runwire session {self.session_id})"
            )

    async def _run(self, work: Coroutine[Any, Any, T], *, mutation: bool = False) -> T:
        if self._closed:
            work.close()
            self._check_open()
        if self._shared is None:  # a backend of the caller's: on the caller's loop
            running = asyncio.ensure_future(work)
            return await (outcome_first(running) if mutation else running)
        return await self._loop.run(self._started(work), finish=mutation)

    async def _started(self, work: Coroutine[Any, Any, T]) -> T:
        if self._shared is not None:
            try:
                await self._shared.started()
            except BaseException:
                work.close()
                raise
        return await work

    # -- the Session protocol ---------------------------------------------------------

    async def get_items(self, limit: int | None = None, *, wrapper: Any = None) -> list[Any]:
        """The items, oldest first; the last ``limit`` (or ``session_settings.limit``)."""
        if limit is None and self.session_settings is not None:
            limit = self.session_settings.limit
        if limit is not None and limit <= 0:
            self._check_open()
            return []
        found = await self._run(self.session.items(limit))
        items = [i.item for i in found]
        return items[-limit:] if limit is not None else items

    async def add_items(self, items: list[Any], *, wrapper: Any = None) -> None:
        """Keep ``items`` exactly (one atomic batch); see the module doc."""
        self._check_open()
        if not items:
            return
        batch: list[tuple[Any, list[Any]]] = []
        for i, item in enumerate(items):
            where = f"items[{i}]"
            problem = json_problem(item, where)
            if problem is not None:
                field, _, why = problem.partition(": ")
                raise ItemNotJSONError(field, f"not JSON, so it cannot be kept: {why}")
            batch.append((item, canonical_payloads(item, where)))
        await self._run(self.session.add_items(FRAMEWORK, batch), mutation=True)

    async def pop_item(self, *, wrapper: Any = None) -> Any:
        """Take the newest item back and return it; None when there is none."""
        popped = await self._run(self.session.pop_item(), mutation=True)
        return None if popped is None else popped.item

    async def clear_session(self, *, wrapper: Any = None) -> None:
        await self._run(self.session.clear(), mutation=True)

    # -- runwire's side -----------------------------------------------------------------

    async def messages(self, limit: int | None = None) -> list[Message]:
        """The canonical transcript the items stand for (``limit`` in turns): what
        runwire's orchestrator and provider adapters read; popped items left out."""
        return await self._run(self.session.get_messages(limit))

    # -- closing ----------------------------------------------------------------------

    def close(self) -> Awaitable[None]:
        """Close the session (idempotent); every later call raises ``RuntimeError``.

        Works awaited (``await session.close()``, like the SDK's async sessions) and
        called plainly (``session.close()``, like ``SQLiteSession``): the close is
        done before it returns, except on the sessions loop itself, where the
        returned task finishes it.
        """
        self._closed = True
        if self._shared is None or self._loop.on_loop():
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # called plainly, outside any loop
                asyncio.run(self.session.close())
                return _Done()
            return asyncio.ensure_future(self.session.close())
        self._loop.run_sync(self.session.close())
        return _Done()


class _Done:
    """An awaitable that is already done (what a plain ``close()`` returns)."""

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield
