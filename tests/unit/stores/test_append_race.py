"""A writer that gets in between an append's check and its write: the append fails loudly."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from runwire.contract.events import Event, EventType, UserMessage
from runwire.stores import EventConflictError, MemoryEvent, MemoryEventType, Stores
from runwire.stores.inmem import InMemoryStoreLog
from tests.contract.stores import at


class Racing(InMemoryStoreLog):
    """Writes another body under the id of the first user message it is given, first."""

    def __init__(self) -> None:
        super().__init__()
        self.raced = False

    async def write(self, events: Sequence[Event]) -> None:
        if not self.raced and events and events[0].type is EventType.USER_MESSAGE:
            self.raced = True
            theirs = events[0].model_copy(update={"payload": UserMessage(parts=["theirs"])})
            await super().write([theirs])
        await super().write(events)


async def test_the_first_body_wins_and_the_late_append_raises() -> None:
    stores = Stores.on(Racing())
    ours = MemoryEvent(MemoryEventType.USER_MESSAGE, at(0), {"message": "ours"})
    with pytest.raises(EventConflictError) as raised:
        await stores.memory.append_events("agent", "r1", ours)
    assert "another writer" in str(raised.value)
    loaded = (await stores.memory.load_run("agent", "r1")).events
    assert [e.data for e in loaded] == [{"message": "theirs"}]
    # A retry now meets the kept body: a conflict found before writing.
    with pytest.raises(EventConflictError) as again:
        await stores.memory.append_events("agent", "r1", ours)
    assert again.value.field == "events[0]"
