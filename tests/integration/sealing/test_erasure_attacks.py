"""Erasure under attack: an erasure reaches its own tenant's user and nothing else.

- A user's subject, ``<tenant>::<user>``, names one pair: pairs that would share
  one (``("x", "y::z")`` and ``("x::y", "z")``, ``("x", ":y")`` and
  ``("x:", "y")``) are refused, so erasing one never destroys the other's keys.
- A tenant process erases only its own tenant's users: another tenant named is
  refused before any key is destroyed, and no tenant named means its own.
- A session's keys are its tenant's: another tenant writing under the same
  session id first (squatting it) makes keys of its own, so erasing its user
  leaves the session's owner's keys whole, and erasing the session leaves the
  squatter's.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from runwire.contract.events import Event, UserMessage
from runwire.contract.sealing import SessionErasedError, UserErasedError
from runwire.errors import InputError
from runwire.log import Publisher
from runwire.memory import AsyncMemory
from runwire.projections.runtime.protocol import Projection
from runwire.sessions import AsyncSession
from runwire.sessions.admin import erase_any, erase_user
from runwire.sessions.log_backend import LogBackend
from runwire.settings import Settings


@pytest_asyncio.fixture(loop_scope="session")
async def admin(sealed: Settings, projectors: dict[str, Projection]) -> AsyncIterator[LogBackend]:
    async with LogBackend(sealed.model_copy(update={"admin": True})) as backend:
        yield backend


def tenant(sealed: Settings, name: str) -> LogBackend:
    return LogBackend(sealed.model_copy(update={"tenant": name}))


async def test_no_erasure_reaches_a_user_of_another_tenant_through_its_name(
    sealed: Settings, admin: LogBackend
) -> None:
    async with tenant(sealed, "x") as x:
        async with AsyncSession(user_id=":y", backend=x) as s:
            await s.add_message("user", "the victim's words")
            victim = s.session_id
        async with AsyncMemory(user_id=":y", backend=x) as memory:
            await memory.store_memory("pin", "the victim's pin")
        # The names that would share the victim's subject, "x:::y", are refused ...
        with pytest.raises(InputError, match="tenant"):
            await erase_user(admin, "y", "x:")
        # ... and so is a user id that would make "x::y"'s "z" of tenant "x" ("x::y::z").
        with pytest.raises(InputError, match="user"):
            async with AsyncSession(user_id="y::z", backend=x) as s:
                await s.add_message("user", "never sealed")
        with pytest.raises(InputError, match="tenant"):
            await erase_user(admin, "z", "x::y")
        # The victim's session and memory are whole and writable: no key was destroyed.
        async with AsyncSession(victim, user_id=":y", backend=x) as s:
            await s.add_message("assistant", "still mine")
            assert [m.text() for m in await s.get_messages()] == [
                "the victim's words",
                "still mine",
            ]
        async with AsyncMemory(user_id=":y", backend=x) as memory:
            assert await memory.get_memory("pin") == "the victim's pin"
            await memory.store_memory("pin2", "writable")


async def test_a_tenant_process_erases_only_its_own_tenants_users(
    sealed: Settings, admin: LogBackend
) -> None:
    async with tenant(sealed, "tenant-b") as b, AsyncMemory(user_id="ann", backend=b) as memory:
        await memory.store_memory("pin", "b's ann")
    async with AsyncMemory(user_id="ann", backend=admin) as plain:
        await plain.store_memory("pin", "ann without a tenant")
    async with tenant(sealed, "tenant-a") as a:
        async with AsyncMemory(user_id="ann", backend=a) as memory:
            await memory.store_memory("pin", "a's ann")
        with pytest.raises(InputError, match="tenant"):
            await erase_user(a, "ann", "tenant-b")
        # No tenant named: the process's own tenant's ann, not the ann without one.
        receipt = await erase_user(a, "ann")
        assert receipt.tenant == "tenant-a"
        assert receipt.key_ids
        assert all(k.startswith("user:tenant-a::ann/") for k in receipt.key_ids)
        with pytest.raises(UserErasedError):
            async with AsyncMemory(user_id="ann", backend=a) as memory:
                await memory.store_memory("pin", "again")
    async with tenant(sealed, "tenant-b") as b, AsyncMemory(user_id="ann", backend=b) as memory:
        assert await memory.get_memory("pin") == "b's ann"
        await memory.store_memory("pin", "b's ann, still writable")
    async with AsyncMemory(user_id="ann", backend=admin) as plain:
        assert await plain.get_memory("pin") == "ann without a tenant"
        await plain.store_memory("pin", "still writable")


async def test_a_session_id_written_first_by_another_tenant_keeps_its_keys_apart(
    sealed: Settings, admin: LogBackend
) -> None:
    session_id = f"chat-{uuid.uuid4().hex[:8]}"
    squatter = Event.create(
        UserMessage(parts=["squat"]), run_id="r-squat", session_id=session_id, user_id="bob"
    )
    async with Publisher(sealed.model_copy(update={"tenant": "tenant-b"})) as b:
        await b.publish(squatter)
    async with (
        tenant(sealed, "tenant-a") as a,
        AsyncSession(session_id, user_id="ann", backend=a) as s,
    ):
        await s.add_message("user", "a's words")
    async with tenant(sealed, "tenant-b") as b:
        erased = await erase_user(b, "bob")
    assert erased.session_ids == (session_id,)  # the squatter's own key of that id
    async with tenant(sealed, "tenant-a") as a:
        async with AsyncSession(session_id, user_id="ann", backend=a) as s:
            await s.add_message("assistant", "a writes on")
            assert [m.text() for m in await s.get_messages()] == ["a's words", "a writes on"]
        receipt = await erase_any(admin, session_id)
        assert receipt.key_ids
        assert erased.key_ids[0] not in receipt.key_ids
    async with Publisher(sealed.model_copy(update={"tenant": "tenant-a"})) as writer:
        with pytest.raises(SessionErasedError, match=session_id):
            await writer.publish(
                Event.create(UserMessage(parts=["after"]), run_id="r-a", session_id=session_id)
            )
