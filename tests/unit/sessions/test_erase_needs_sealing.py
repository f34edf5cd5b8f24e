"""``delete(erase=True)`` refuses, before erasing anything, where keys cannot be destroyed."""

from __future__ import annotations

import pytest

from runwire.errors import ConfigurationError
from runwire.sessions import AsyncSession
from runwire.sessions.inmem import InMemoryBackend


async def test_erase_without_sealing_is_refused_and_deletes_nothing() -> None:
    backend = InMemoryBackend()
    async with AsyncSession(user_id="alice", backend=backend) as s:
        await s.add_message("user", "keep me")
        with pytest.raises(ConfigurationError, match="RUNWIRE_SEALING"):
            await s.delete(erase=True)
        assert [m.text() for m in await s.get_messages()] == ["keep me"]
