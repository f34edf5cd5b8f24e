"""The memory contract: scopes, prefixes, deletes and isolation, through the public API.

Subclasses provide ``backend`` (a started memory backend that is also a
session backend, for session-scope ownership).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from runwire.contract.events import Event, UserErased
from runwire.contract.sealing import user_subject
from runwire.errors import NotFoundError
from runwire.memory import AsyncMemory, MemoryBackend
from runwire.sessions import AsyncSession, InputError
from runwire.sessions.protocol import SessionBackend

BAD_CALLS: list[tuple[Callable[[AsyncMemory], Any], str]] = [
    (lambda m: m.store_memory("k", {1, 2}), "value"),
    (lambda m: m.store_memory("k" * 257, 1), "key"),
    (lambda m: m.store_memory("", 1), "key"),
    (lambda m: m.store_memory("k", 1, scope="planet"), "scope"),  # type: ignore[arg-type]
    (lambda m: m.store_memory("k", 1, scope="agent"), "owner"),
    (lambda m: m.list_memory(limit=0), "limit"),
]
"""Bad calls and the field each error must name."""


class MemoryContract:
    @pytest.fixture
    def backend(self) -> SessionBackend:
        raise NotImplementedError("each implementation provides its started backend")

    @pytest.fixture
    def memory_for(self, backend: SessionBackend) -> Callable[..., AsyncMemory]:
        def make(user_id: str | None = "alice", tenant: str | None = None) -> AsyncMemory:
            return AsyncMemory(user_id=user_id, tenant=tenant, backend=backend)  # type: ignore[arg-type]

        return make

    async def test_store_get_delete_per_scope(self, memory_for: Callable[..., AsyncMemory]) -> None:
        m = memory_for()
        await m.store_memory("lang", "fr")
        await m.store_memory(
            "style", {"tone": "dry", "emoji": False}, scope="agent", owner="helper"
        )
        await m.store_memory("motd", "hello", scope="global")
        assert await m.get_memory("lang") == "fr"
        assert await m.get_memory("style", scope="agent", owner="helper") == {
            "tone": "dry",
            "emoji": False,
        }
        assert await m.get_memory("motd", scope="global") == "hello"
        await m.store_memory("lang", "de")
        assert await m.get_memory("lang") == "de", "the last write wins"
        assert await m.delete_memory("lang")
        assert await m.get_memory("lang", default="none") == "none"
        assert not await m.delete_memory("lang")
        entry = await m.get_entry("motd", scope="global")
        assert entry is not None
        assert entry.user_id == "alice"
        assert entry.owner == "global"

    async def test_list_by_prefix_in_key_order(
        self, memory_for: Callable[..., AsyncMemory]
    ) -> None:
        m = memory_for()
        for key in ["pref.b", "pref.a", "fact.x", "pref.c"]:
            await m.store_memory(key, key.upper())
        await m.delete_memory("pref.c")
        assert [e.key for e in await m.list_memory()] == ["fact.x", "pref.a", "pref.b"]
        listed = await m.list_memory(prefix="pref.")
        assert [(e.key, e.value) for e in listed] == [("pref.a", "PREF.A"), ("pref.b", "PREF.B")]
        assert len(await m.list_memory(limit=1)) == 1

    async def test_user_memory_spans_sessions_not_users(
        self, memory_for: Callable[..., AsyncMemory], backend: SessionBackend
    ) -> None:
        first = await AsyncSession(user_id="alice", backend=backend).open()
        await first.store_memory("drink", "tea", scope="user")
        second = await AsyncSession(user_id="alice", backend=backend).open()
        assert await second.get_memory("drink", scope="user") == "tea"
        bob = await AsyncSession(user_id="bob", backend=backend).open()
        assert await bob.get_memory("drink", scope="user") is None
        assert await bob.get_memory("drink", scope="user", owner="alice") is None
        assert await bob.list_memory(scope="user", owner="alice") == []
        with pytest.raises(NotFoundError):
            await bob.store_memory("drink", "coffee", scope="user", owner="alice")
        with pytest.raises(NotFoundError):
            await bob.delete_memory("drink", scope="user", owner="alice")
        assert await second.get_memory("drink", scope="user") == "tea"

    async def test_session_memory_belongs_to_the_sessions_user(
        self, memory_for: Callable[..., AsyncMemory], backend: SessionBackend
    ) -> None:
        s = await AsyncSession(user_id="alice", backend=backend).open()
        await s.store_memory("topic", "billing")
        other = await AsyncSession(user_id="alice", backend=backend).open()
        assert await other.get_memory("topic") is None, "another session's entry"
        assert await other.get_memory("topic", owner=s.session_id) == "billing"
        mallory = memory_for("mallory")
        assert await mallory.get_memory("topic", scope="session", owner=s.session_id) is None
        with pytest.raises(NotFoundError):
            await mallory.store_memory("topic", "x", scope="session", owner=s.session_id)
        assert await memory_for().get_memory("topic", scope="session", owner="no-such") is None

    async def test_tenants_do_not_share_names(self, memory_for: Callable[..., AsyncMemory]) -> None:
        acme, globex, plain = memory_for("u1", "acme"), memory_for("u1", "globex"), memory_for("u1")
        await acme.store_memory("k", "acme", scope="agent", owner="bot")
        await globex.store_memory("k", "globex", scope="agent", owner="bot")
        await acme.store_memory("p", "acme-user")
        assert await acme.get_memory("k", scope="agent", owner="bot") == "acme"
        assert await globex.get_memory("k", scope="agent", owner="bot") == "globex"
        assert await plain.get_memory("k", scope="agent", owner="bot") is None
        assert await globex.get_memory("p") is None
        assert [e.owner for e in await acme.list_memory(scope="agent", owner="bot")] == ["bot"]
        with pytest.raises(InputError) as e:
            await plain.get_memory("k", scope="agent", owner="acme::bot")
        assert e.value.field == "owner"

    async def test_an_erased_user_takes_its_user_memory_only(
        self, memory_for: Callable[..., AsyncMemory], backend: SessionBackend
    ) -> None:
        mine, other, elsewhere = (
            memory_for("u1", "acme"),
            memory_for("u2", "acme"),
            memory_for("u1"),
        )
        await mine.store_memory("a", 1)
        await mine.store_memory("b", 2)
        await mine.store_memory("k", "the bot's", scope="agent", owner="bot")
        await other.store_memory("a", "kept")
        await elsewhere.store_memory("a", "another tenant's")
        owner = user_subject("u1", "acme")  # how sealing names the user: its memory owner
        assert isinstance(backend, MemoryBackend)
        await backend.write_memory(
            Event.create(
                UserErased(user_id="u1", owner=owner, key_ids=[], session_ids=[]),
                user_id="u1",
                tenant="acme",
            )
        )
        assert await mine.list_memory() == []
        assert await mine.get_memory("k", scope="agent", owner="bot") == "the bot's"
        assert await other.get_memory("a") == "kept"
        assert await elsewhere.get_memory("a") == "another tenant's"

    async def test_bad_input_names_the_field(self, memory_for: Callable[..., AsyncMemory]) -> None:
        m = memory_for()
        for call, field in BAD_CALLS:
            with pytest.raises(InputError) as e:
                await call(m)
            assert e.value.field == field, str(e.value)
        assert await m.list_memory() == []
