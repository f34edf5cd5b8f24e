"""``Session``: the blocking twin of ``AsyncSession``, for scripts and threads.

Contract:
- Same constructor and methods as :class:`~runwire.sessions.api.AsyncSession`,
  without ``await``; no event loop is needed by the caller, and any number of
  threads may use sessions at once.
- Every session runs on one process-wide event loop in a daemon thread
  (:func:`session_loop`); a call blocks its caller until the loop has
  done the work, so read-your-writes holds exactly as in the async API.
- Callbacks registered with ``on`` run on that loop's thread: they must not
  call blocking ``Session`` methods (that would wait for the thread they run
  on; it raises instead) and should be quick.
- ``with Session(...) as s:`` closes it on exit, even on an exception;
  sessions still open when the interpreter exits are closed then.
"""

from __future__ import annotations

import atexit
import contextlib
import weakref
from collections.abc import Coroutine, Mapping, Sequence
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from runwire.contract.events import MemoryScope
from runwire.errors import RunwireError
from runwire.loop_thread import LoopThread, outcome_first
from runwire.memory.protocol import MemoryEntry
from runwire.projections.transcripts.history import Turn
from runwire.sessions.api import FROM_DOCUMENT, AsyncSession, FromDocument
from runwire.sessions.callbacks import Callback
from runwire.sessions.forks import ForkPoint
from runwire.sessions.protocol import SessionBackend, SessionEvent, SessionInfo
from runwire.sessions.versions import Versioned
from runwire.transcript.messages import Message

if TYPE_CHECKING:
    from runwire.settings import Settings

__all__ = ["Session", "outcome_first", "session_loop"]

T = TypeVar("T")


def session_loop() -> LoopThread:
    """The process-wide loop blocking session callers hand their work to."""
    return LoopThread.shared("runwire-sessions", reentry=_reentered)


def _reentered() -> BaseException:
    return RunwireError(
        "a blocking Session method was called from a session callback (which runs on "
        "the session loop's thread); use the AsyncSession API there"
    )


_open_sessions: weakref.WeakSet[Session] = weakref.WeakSet()


@atexit.register
def _close_open_sessions() -> None:
    for session in list(_open_sessions):
        with contextlib.suppress(Exception):
            session.close()


class Session:
    """A blocking session; see the module contract and :class:`AsyncSession`."""

    def __init__(
        self,
        session_id: str | None = None,
        user_id: str | None = None,
        ttl: int | float | timedelta | None = None,
        settings: Settings | None = None,
        *,
        tenant: str | None = None,
        backend: SessionBackend | None = None,
        metadata: Mapping[str, Any] | None = None,
        _session: AsyncSession | None = None,
    ) -> None:
        self._loop = session_loop()
        self._async = _session or AsyncSession(
            session_id,
            user_id=user_id,
            tenant=tenant,
            ttl=ttl,
            settings=settings,
            backend=backend,
            metadata=metadata,
        )
        _open_sessions.add(self)

    def __repr__(self) -> str:
        return f"Session({self.session_id!r}, user_id={self.user_id!r})"

    @property
    def session_id(self) -> str:
        return self._async.session_id

    @property
    def user_id(self) -> str | None:
        return self._async.user_id

    @property
    def created(self) -> bool:
        return self._async.created

    @property
    def async_session(self) -> AsyncSession:
        """The :class:`AsyncSession` underneath (runs on the background loop)."""
        return self._async

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_sync(work)

    # -- lifecycle ---------------------------------------------------------------------

    def open(self) -> Self:
        self._run(self._async.open())
        return self

    def close(self) -> None:
        """Idempotent."""
        _open_sessions.discard(self)
        self._run(self._async.close())

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the API -------------------------------------------------------------------------

    def info(self) -> SessionInfo:
        return self._run(self._async.info())

    def add_message(
        self, role: str, content: Any, *, expected_version: int | None = None
    ) -> int | None:
        return self._run(self._async.add_message(role, content, expected_version=expected_version))

    def add_messages(
        self, messages: Sequence[Any], *, expected_version: int | None = None
    ) -> int | None:
        return self._run(self._async.add_messages(messages, expected_version=expected_version))

    def get_messages(
        self,
        limit: int | None = None,
        *,
        as_of: int | None = None,
        turns: Sequence[str | int] | None = None,
    ) -> list[Message]:
        return self._run(self._async.get_messages(limit, as_of=as_of, turns=turns))

    def fork(
        self,
        *,
        turn: int | None = None,
        at_run: str | None = None,
        at_offset: int | None = None,
        session_id: str | None = None,
    ) -> Session:
        """See :meth:`AsyncSession.fork`; the fork is open."""
        forked = self._async.fork(
            turn=turn, at_run=at_run, at_offset=at_offset, session_id=session_id
        )
        return Session(_session=self._run(forked))

    def fork_points(self, run_id: str) -> list[ForkPoint]:
        return self._run(self._async.fork_points(run_id))

    def branches(self) -> list[SessionInfo]:
        return self._run(self._async.branches())

    def turns(self) -> list[Turn]:
        return self._run(self._async.turns())

    def runs_of_turn(self, turn_id: str) -> list[str]:
        return self._run(self._async.runs_of_turn(turn_id))

    def version(self) -> int:
        return self._run(self._async.version())

    def get_versioned(self, limit: int | None = None) -> Versioned:
        return self._run(self._async.get_versioned(limit))

    def clear(self) -> None:
        self._run(self._async.clear())

    def set(self, key: str, value: Any) -> None:
        self._run(self._async.set(key, value))

    def get(self, key: str, default: Any = None) -> Any:
        return self._run(self._async.get(key, default))

    def metadata(self) -> dict[str, Any]:
        return self._run(self._async.metadata())

    def end(self, reason: str | None = None) -> None:
        self._run(self._async.end(reason))

    def delete(self, *, erase: bool = False) -> None:
        _open_sessions.discard(self)
        self._run(self._async.delete(erase=erase))

    def on(self, kinds: SessionEvent, callback: Callback) -> Callback:
        """Register a callback; it runs on the session loop's thread."""

        async def register() -> Callback:
            return self._async.on(kinds, callback)

        return self._run(register())

    def off(self, kinds: SessionEvent | None = None, callback: Callback | None = None) -> int:
        async def unregister() -> int:
            return self._async.off(kinds, callback)

        return self._run(unregister())

    def export(self) -> dict[str, Any]:
        return self._run(self._async.export())

    @classmethod
    def import_data(
        cls,
        doc: Mapping[str, Any],
        *,
        keep_ids: bool = False,
        user_id: str | FromDocument | None = FROM_DOCUMENT,
        tenant: str | FromDocument | None = FROM_DOCUMENT,
        ttl: int | float | timedelta | None = None,
        settings: Settings | None = None,
        backend: SessionBackend | None = None,
    ) -> Session:
        """Recreate an exported session; see :meth:`AsyncSession.import_data`."""
        imported = session_loop().run_sync(
            AsyncSession.import_data(
                doc,
                keep_ids=keep_ids,
                user_id=user_id,
                tenant=tenant,
                ttl=ttl,
                settings=settings,
                backend=backend,
            )
        )
        return cls(_session=imported)

    # -- memory ----------------------------------------------------------------------------

    def store_memory(
        self, key: str, value: Any, scope: MemoryScope = "session", owner: str | None = None
    ) -> None:
        self._run(self._async.store_memory(key, value, scope, owner))

    def get_memory(
        self,
        key: str,
        scope: MemoryScope = "session",
        owner: str | None = None,
        default: Any = None,
    ) -> Any:
        return self._run(self._async.get_memory(key, scope, owner, default))

    def delete_memory(
        self, key: str, scope: MemoryScope = "session", owner: str | None = None
    ) -> bool:
        return self._run(self._async.delete_memory(key, scope, owner))

    def list_memory(
        self,
        scope: MemoryScope = "session",
        owner: str | None = None,
        prefix: str | None = None,
        limit: int = 1000,
    ) -> list[MemoryEntry]:
        return self._run(self._async.list_memory(scope, owner, prefix, limit))
