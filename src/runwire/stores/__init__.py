"""Goa-AI's store contracts on the log: the memory store, the run store, the session store.

Protocols in :mod:`.protocol`, values in :mod:`.types`, the mapping of
Goa-AI memory events onto runwire's events in :mod:`.mapping`; the stores
on the stack are :class:`~runwire.stores.log_backend.LogStores`, their
twins :func:`~runwire.stores.inmem.in_memory_stores`. ``docs/goa-ai.md``
maps every contract, type and call.
"""

from runwire.stores.event_stores import Stores
from runwire.stores.mapping import build_messages_from_events
from runwire.stores.protocol import MemoryStore, RunStore, SessionStore
from runwire.stores.types import (
    EventConflictError,
    MemoryEvent,
    MemoryEventType,
    RunNotFoundError,
    RunRecord,
    RunStatus,
    SessionEndedError,
    SessionNotFoundError,
    SessionRecord,
    SessionStatus,
    Snapshot,
    StoreInputError,
)

__all__ = [
    "EventConflictError",
    "MemoryEvent",
    "MemoryEventType",
    "MemoryStore",
    "RunNotFoundError",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "SessionEndedError",
    "SessionNotFoundError",
    "SessionRecord",
    "SessionStatus",
    "SessionStore",
    "Snapshot",
    "StoreInputError",
    "Stores",
    "build_messages_from_events",
]
