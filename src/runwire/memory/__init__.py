"""Long-term memory: entries scoped to a session, a user, an agent, or global.

- :class:`AsyncMemory` (:mod:`.api`): store / get / delete / list for one
  caller, with isolation per user and tenant;
- :mod:`.protocol`: the backend seam; :mod:`.log_backend` (the compacted
  memory topic + the Postgres memory projection) and :mod:`.inmem`
  (the in-memory twin) implement it.

Sessions expose the same four calls, scoped to the session by default.
"""

from runwire.memory.api import AsyncMemory, ServiceMemory
from runwire.memory.checks import MAX_KEY_BYTES, Caller, InputError
from runwire.memory.inmem import InMemoryMemoryBackend
from runwire.memory.protocol import SCOPES, MemoryBackend, MemoryEntry

__all__ = [
    "MAX_KEY_BYTES",
    "SCOPES",
    "AsyncMemory",
    "Caller",
    "InMemoryMemoryBackend",
    "InputError",
    "MemoryBackend",
    "MemoryEntry",
    "ServiceMemory",
]
