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
  ``limit`` is given; 0 or less gives none). A fork's items begin with its
  parent's up to the fork point, read from the log
  (:mod:`~runwire.sessions.prefix_items`).
- Branches: ``AdvancedSQLiteSession``'s ``create_branch_from_turn``,
  ``create_branch_from_content``, ``switch_to_branch``, ``list_branches``,
  ``delete_branch``, ``get_conversation_turns`` and ``find_turns_by_content``
  on runwire's forks (branch ``B`` is the session ``<session_id>~B``); refused
  calls raise :class:`BranchError` (a ValueError) before anything is written;
  a branch's ``pop_item()`` whose newest item is shared raises
  :class:`SharedItemError` (docs/frameworks/openai-agents.md).
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
  :class:`~runwire.sessions.log_backend.LogBackend` per set of settings (and
  ``visible_to``) in the process (its Kafka producer, Postgres pool, Redis
  client), started on first use: a session is cheap to make, and one never
  closed (the SDK's ``SQLAlchemySession`` has no ``close()``) holds nothing.
  :func:`close_shared_backends` closes them (at interpreter exit too).
- Visibility: a write returns once it is durable, and this process's reads
  show it at once; other processes once the read models applied it (the
  backend's default, ``visible_to="writer"``). ``visible_to="everyone"``
  makes every write return only once the transcript cache (for a new run,
  the run-status store too) applied it, so the next read or ``pop_item()``
  in any process sees it: for a conversation that moves between processes
  (a service behind a load balancer). With ``backend=``, that backend says it.
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
import uuid
from collections.abc import Awaitable, Coroutine, Generator
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from runwire.contract.limits import id_problem
from runwire.errors import NotFoundError, RunwireError
from runwire.loop_thread import outcome_first
from runwire.memory.checks import InputError
from runwire.projections.transcripts.history import turn_starts
from runwire.sessions.api import AsyncSession
from runwire.sessions.blocking import session_loop
from runwire.sessions.log_backend import LogBackend
from runwire.sessions.prefix_items import PrefixItems
from runwire.sessions.protocol import SessionBackend, SessionInfo, SessionItem
from runwire.sessions.responses_items import canonical_payloads, json_problem
from runwire.settings import Settings
from runwire.transcript.messages import Message

if TYPE_CHECKING:
    from agents.memory.session_settings import SessionSettings

__all__ = [
    "FRAMEWORK",
    "MAIN_BRANCH",
    "BranchError",
    "ItemNotJSONError",
    "RunwireSession",
    "SessionClosedError",
    "SharedItemError",
    "close_shared_backends",
]

FRAMEWORK = "openai_agents"
"""The ``framework`` of the items this session keeps."""

MAIN_BRANCH = "main"
"""The branch id of the session the object was opened on (as in ``AdvancedSQLiteSession``)."""

_BRANCH_MARK = "~"
"""Between the main session id and a branch id in a branch's runwire session id."""

T = TypeVar("T")

VisibleTo = Literal["writer", "everyone"]


class ItemNotJSONError(InputError, TypeError):
    """An item (or a value in it) is not JSON; ``field`` names it. A TypeError, as
    the SDK's sessions raise when ``json.dumps`` refuses an item."""


class SessionClosedError(RunwireError, RuntimeError):
    """The session was closed; what the SDK's own sessions raise then (a RuntimeError)."""


class BranchError(InputError, ValueError):
    """A branch call refused before anything is written; ``field`` names the argument.
    A ValueError, as ``AdvancedSQLiteSession`` raises."""


class SharedItemError(RunwireError, RuntimeError):
    """``pop_item()`` on a branch whose newest item is in the prefix it shares with its
    parent: the shared history is the parent's, a branch cannot take it back."""


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


def _shared_for(settings: Settings, visible_to: VisibleTo) -> _Shared:
    key = f"{visible_to}:{settings.model_dump_json()}"
    with _shared_guard:
        found = _shared.get(key)
        if found is None:
            found = _shared[key] = _Shared(LogBackend(settings, visible_to=visible_to))
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
        visible_to: VisibleTo | None = None,
    ) -> None:
        from agents.memory.session_settings import SessionSettings, coerce_session_settings

        if visible_to is not None and backend is not None:
            raise ValueError(
                "visible_to configures the shared backend; with backend= given, make that "
                "backend LogBackend(settings, visible_to=...)"
            )
        if visible_to not in (None, "writer", "everyone"):
            raise ValueError(f"visible_to: 'writer' or 'everyone', not {visible_to!r}")

        # Typed as the SDK's protocol types it (None is read as the defaults).
        self.session_settings: SessionSettings | None = (
            coerce_session_settings(session_settings)
            if session_settings is not None
            else SessionSettings()
        )
        self._loop = session_loop()
        self._shared: _Shared | None = None
        if backend is None:
            self._shared = _shared_for(
                settings if settings is not None else Settings(), visible_to or "writer"
            )
            backend = self._shared.backend
        self.session = AsyncSession(
            session_id, user_id=user_id, tenant=tenant, ttl=ttl, settings=settings, backend=backend
        )
        """The runwire session of the current branch; it runs on the sessions loop."""
        self.session_id = self.session.session_id
        """The session's id (the main branch's runwire session id, whatever the branch)."""
        self._settings = settings
        self._branch = MAIN_BRANCH
        self._opened: dict[str, AsyncSession] = {self.session_id: self.session}
        self._prefixes: dict[str, PrefixItems] = {}
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
        found = await self._run(self._items(self.session, limit))
        items = [i.item for i in found]
        return items[-limit:] if limit is not None else items

    async def _items(self, session: AsyncSession, limit: int | None) -> list[SessionItem]:
        """A branch's items: its own, after the prefix it shares with its parent when
        those do not reach ``limit``."""
        own = await session.items(limit)
        if session.parent_session_id is None or (limit is not None and len(own) >= limit):
            return own
        return [*await self._prefix(session), *own]

    async def _prefix(self, session: AsyncSession) -> list[SessionItem]:
        backend = session.backend
        if not isinstance(backend, LogBackend):  # only the log backend forks
            return []
        held = self._prefixes.setdefault(session.session_id, PrefixItems())
        return await held.read(backend.cache.history(), await session.info())

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
                field, why = problem
                raise ItemNotJSONError(field, f"cannot be kept: {why}")
            batch.append((item, canonical_payloads(item, where)))
        await self._run(self.session.add_items(FRAMEWORK, batch), mutation=True)

    async def pop_item(self, *, wrapper: Any = None) -> Any:
        """Take the newest item back and return it; None when there is none."""
        popped = await self._run(self._pop(self.session), mutation=True)
        return None if popped is None else popped.item

    async def _pop(self, session: AsyncSession) -> SessionItem | None:
        popped = await session.pop_item()
        if popped is None and session.parent_session_id is not None:
            shared = await self._prefix(session)
            if shared:
                raise SharedItemError(
                    f"branch {self._branch!r} (session {session.session_id}) has no item of "
                    f"its own: its newest is in the history it shares with session "
                    f"{session.parent_session_id}, which a branch cannot take back; "
                    "branch from an earlier turn instead"
                )
        return popped

    async def clear_session(self, *, wrapper: Any = None) -> None:
        await self._run(self.session.clear(), mutation=True)

    # -- branches (AdvancedSQLiteSession's API on runwire's session forks) ---------------

    @property
    def current_branch_id(self) -> str:
        """The branch reads and writes go to (``"main"``: the session opened)."""
        return self._branch

    def _session_id_of(self, branch_id: str) -> str:
        if branch_id == MAIN_BRANCH:
            return self.session_id
        return f"{self.session_id}{_BRANCH_MARK}{branch_id}"

    def _branch_of(self, session_id: str) -> str:
        if session_id == self.session_id:
            return MAIN_BRANCH
        mine = f"{self.session_id}{_BRANCH_MARK}"
        # A fork made through runwire's own API keeps its session id as its branch id.
        return session_id[len(mine) :] if session_id.startswith(mine) else session_id

    async def _open_branch(self, branch_id: str) -> AsyncSession:
        """The branch's runwire session, opened on this object's backend (kept until close)."""
        session_id = self._session_id_of(branch_id)
        found = self._opened.get(session_id)
        if found is not None:
            return found
        backend = self.session.backend
        info = await backend.describe(session_id)
        # Only a fork is a branch: switching to a name must never create a session.
        if info is None or info.deleted or info.parent_session_id is None:
            raise BranchError("branch_id", f"Branch {branch_id!r} does not exist")
        session = AsyncSession(
            session_id,
            user_id=self.session.user_id,
            tenant=self.session.tenant,
            ttl=self.session.ttl,
            settings=self._settings,
            backend=backend,
        )
        try:
            await session.open()
        except NotFoundError:  # another user's
            raise BranchError("branch_id", f"Branch {branch_id!r} does not exist") from None
        self._opened[session_id] = session
        return session

    async def create_branch_from_turn(
        self, turn_number: int, branch_name: str | None = None
    ) -> str:
        """A new branch holding this branch's turns before ``turn_number`` (shared with it,
        not copied: a runwire fork at turn ``turn_number - 1``), and switch to it.

        Returns the branch id (``branch_name``, or a generated one). Refused with
        :class:`BranchError` (a ValueError) before anything is written: a blank or
        taken name, a turn the branch does not have, and turn 1 (a branch sharing
        nothing is a new session: open a ``RunwireSession`` instead).
        """
        self._check_open()
        if branch_name is not None and not branch_name.strip():
            raise BranchError("branch_name", "Branch name cannot be empty")
        if branch_name == MAIN_BRANCH:
            raise BranchError("branch_name", f"{MAIN_BRANCH!r} is the session itself")
        return await self._run(self._create_branch(turn_number, branch_name), mutation=True)

    async def _create_branch(self, turn_number: int, branch_name: str | None) -> str:
        # Counted over the history the cache holds (the fork reads the log itself).
        turns = len(turn_starts(await self.session.get_messages()))
        if not 1 <= turn_number <= turns:
            raise BranchError(
                "turn_number",
                f"Turn {turn_number} does not exist in branch {self._branch!r} "
                f"(it has {turns} turns)",
            )
        if turn_number == 1:
            raise BranchError(
                "turn_number",
                "a branch from turn 1 would share no history; runwire branches share "
                "at least one turn (open a new RunwireSession for an empty one)",
            )
        name = branch_name or f"branch_from_turn_{turn_number}_{uuid.uuid4().hex[:8]}"
        session_id = self._session_id_of(name)
        why = id_problem(session_id)
        if why is not None:  # else the fork's refusal would read as a taken name
            raise BranchError(
                "branch_name",
                f"branch {name!r} cannot be named: its session id "
                f"<session_id>{_BRANCH_MARK}<branch name> is not an id ({why})",
            )
        try:
            child = await self.session.fork(turn=turn_number - 1, session_id=session_id)
        except InputError as e:
            if e.field != "session_id":
                raise
            raise BranchError("branch_name", f"Branch {name!r} already exists") from None
        self._opened[session_id] = child
        self.session, self._branch = child, name
        return name

    async def create_branch_from_content(
        self, search_term: str, branch_name: str | None = None
    ) -> str:
        """:meth:`create_branch_from_turn` at the first turn whose user text holds
        ``search_term`` (case-insensitive)."""
        found = await self.find_turns_by_content(search_term)
        if not found:
            raise BranchError("search_term", f"No user turns found containing {search_term!r}")
        return await self.create_branch_from_turn(int(found[0]["turn"]), branch_name)

    async def switch_to_branch(self, branch_id: str) -> None:
        """Read and write ``branch_id`` from now on (``"main"``: the session opened)."""
        self._check_open()
        session = await self._run(self._open_branch(branch_id))
        self.session, self._branch = session, branch_id

    async def list_branches(self) -> list[dict[str, Any]]:
        """The main branch and every branch forked from it (and from those), oldest
        first: ``branch_id``, ``session_id``, ``parent_branch_id``, ``message_count``
        (items, the shared ones included), ``user_turns``, ``is_current``, ``created_at``."""
        self._check_open()
        return await self._run(self._list_branches())

    async def _list_branches(self) -> list[dict[str, Any]]:
        backend = self.session.backend
        main = await self._open_branch(MAIN_BRANCH)
        infos: list[SessionInfo] = [await main.info()]
        if isinstance(backend, LogBackend):
            todo = [self.session_id]
            while todo:
                forks = await backend.forks_of(todo.pop(), self.session.user_id)
                infos += forks
                todo += [f.session_id for f in forks]
        out: list[dict[str, Any]] = []
        for info in sorted(infos, key=lambda i: i.created_at):
            branch = self._branch_of(info.session_id)
            session = await self._open_branch(branch)
            items, turns = await self._items(session, None), await session.turns()
            parent = info.parent_session_id
            out.append(
                {
                    "branch_id": branch,
                    "session_id": info.session_id,
                    "parent_branch_id": None if parent is None else self._branch_of(parent),
                    "message_count": len(items),
                    "user_turns": len(turns),
                    "is_current": session is self.session,
                    "created_at": info.created_at.isoformat(),
                }
            )
        return out

    async def delete_branch(self, branch_id: str, force: bool = False) -> None:
        """Delete a branch (its runwire session); ``force`` deletes the current one and
        switches to ``"main"``. Branches forked from it lose the turns they shared
        with it (erasure reaches what was shared: :mod:`runwire.sessions.forks`)."""
        self._check_open()
        if not branch_id or not branch_id.strip():
            raise BranchError("branch_id", "Branch ID cannot be empty")
        if branch_id == MAIN_BRANCH:
            raise BranchError("branch_id", "Cannot delete the 'main' branch")
        if branch_id == self._branch and not force:
            raise BranchError(
                "branch_id",
                f"Cannot delete current branch {branch_id!r}. Use force=True or switch "
                "branches first",
            )
        await self._run(self._delete_branch(branch_id), mutation=True)

    async def _delete_branch(self, branch_id: str) -> None:
        session = await self._open_branch(branch_id)
        if session is self.session:
            self.session, self._branch = await self._open_branch(MAIN_BRANCH), MAIN_BRANCH
        await session.delete()
        self._opened.pop(session.session_id, None)
        self._prefixes.pop(session.session_id, None)

    async def get_conversation_turns(self, branch_id: str | None = None) -> list[dict[str, Any]]:
        """The branch's turns (the current branch's by default), shared ones included:
        ``turn``, ``turn_id``, ``content`` (the user text, cut to 100 characters),
        ``full_content``, ``timestamp`` (ISO 8601), ``can_branch`` (false for turn 1)."""
        self._check_open()
        return await self._run(self._turns(branch_id))

    async def _turns(self, branch_id: str | None) -> list[dict[str, Any]]:
        session = self.session if branch_id is None else await self._open_branch(branch_id)
        out: list[dict[str, Any]] = []
        for turn in await session.turns():
            text = turn.messages[0].text() if turn.messages else ""
            out.append(
                {
                    "turn": turn.number,
                    "turn_id": turn.turn_id,
                    "content": text if len(text) <= 100 else text[:100] + "...",
                    "full_content": text,
                    "timestamp": turn.started_at.isoformat(),
                    "can_branch": turn.number > 1,
                }
            )
        return out

    async def find_turns_by_content(
        self, search_term: str, branch_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The branch's turns whose user text holds ``search_term`` (case-insensitive)."""
        wanted = search_term.casefold()
        return [
            t
            for t in await self.get_conversation_turns(branch_id)
            if wanted in t["full_content"].casefold()
        ]

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
                asyncio.run(self._close_all())
                return _Done()
            return asyncio.ensure_future(self._close_all())
        self._loop.run_sync(self._close_all())
        return _Done()

    async def _close_all(self) -> None:
        """Close every branch's runwire session this object opened."""
        for session in list(self._opened.values()):
            await session.close()


class _Done:
    """An awaitable that is already done (what a plain ``close()`` returns)."""

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield
