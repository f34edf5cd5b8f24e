"""A runwire session for the OpenAI Agents SDK: swap ``SQLiteSession`` in one line.

::

    from runwire.sessions.openai_agents import RunwireSession

    session = RunwireSession("conversation-42", user_id="alice")   # was SQLiteSession(...)
    result = await Runner.run(agent, "Hello", session=session)

It implements the SDK's ``Session`` protocol over an
:class:`~runwire.sessions.api.AsyncSession`:

- ``add_items(items)``: the items become runwire messages
  (:mod:`runwire.sessions.responses_items`) written as one batch; ``system``
  / ``developer`` items become the session's ``system`` metadata; reasoning
  items and items runwire cannot keep are skipped (``skipped`` counts them).
- ``get_items(limit)``: the session's history as Responses API input items,
  the last ``limit`` of them when given (the SDK's meaning of ``limit``).
- ``clear_session()``: ``clear()`` (the log keeps the history).
- ``pop_item()``: refused: runwire's history is an append-only log.

Everything else of runwire (read-your-writes across processes, isolation by
user, TTL as a cache lifetime, export / import, callbacks through
``.session``) comes with it.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from runwire.errors import RunwireError
from runwire.sessions.api import SYSTEM_KEY, AsyncSession
from runwire.sessions.protocol import SessionBackend
from runwire.sessions.responses_items import items_to_messages, messages_to_items

if TYPE_CHECKING:
    from runwire.settings import Settings

__all__ = ["RunwireSession"]


class RunwireSession:
    """The Agents SDK ``Session`` protocol on a runwire session; see the module doc."""

    session_settings: Any = None

    def __init__(
        self,
        session_id: str | None = None,
        *,
        user_id: str | None = None,
        tenant: str | None = None,
        ttl: int | float | timedelta | None = None,
        settings: Settings | None = None,
        backend: SessionBackend | None = None,
    ) -> None:
        self.session = AsyncSession(
            session_id, user_id=user_id, tenant=tenant, ttl=ttl, settings=settings, backend=backend
        )
        self.session_id = self.session.session_id
        self.skipped: Counter[str] = Counter()
        """Items left out by ``add_items``, by kind."""

    async def get_items(self, limit: int | None = None) -> list[Any]:
        if limit is None:
            return messages_to_items(await self.session.get_messages())
        if limit <= 0:
            return []
        # Every turn gives at least one item: the last ``limit`` turns hold them.
        return messages_to_items(await self.session.get_messages(limit=limit))[-limit:]

    async def add_items(self, items: list[Any]) -> None:
        if not items:
            return
        converted = items_to_messages(
            [(f"items[{i}]", item) for i, item in enumerate(items)], skip_unsupported=True
        )
        self.skipped.update(converted.skipped)
        if converted.system:
            await self.session.set(SYSTEM_KEY, "\n\n".join(converted.system))
        if converted.messages:
            await self.session.add_messages([m for m, _ in converted.messages])

    async def pop_item(self) -> Any:
        raise RunwireError(
            "a runwire session is an append-only log: pop_item() cannot take an item back "
            "(clear_session() and add the items again, or start a new session)"
        )

    async def clear_session(self) -> None:
        await self.session.clear()

    async def close(self) -> None:
        await self.session.close()
