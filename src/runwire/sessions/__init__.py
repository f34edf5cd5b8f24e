"""Sessions for application code: the API agent frameworks expect, backed by the log.

- :class:`AsyncSession` / :class:`Session` (blocking): messages, metadata,
  clear, end, delete, callbacks, export / import, memory
  (:mod:`.api`, :mod:`.blocking`);
- :mod:`.planning`: which run a message goes to (one run per turn);
- :mod:`.versions`: single-writer sessions (expected-version writes, ``SessionBusy``);
- :mod:`.forks`: forks at a turn or at a run's log position, sharing the prefix;
- :mod:`.content`: what ``add_message`` accepts;
- :mod:`.protocol`: the backend seam; :mod:`.log_backend` (Kafka + the
  projections) and :mod:`.inmem` (the in-memory twin) implement it;
- :mod:`.export`: the versioned export document and the import;
  :mod:`.agents_sqlite`: importing the OpenAI Agents SDK's ``SQLiteSession`` files;
  :mod:`.openai_agents`: ``RunwireSession``, the Agents SDK's ``Session`` protocol
  on runwire (:mod:`.responses_items` converts its items);
- :mod:`.embedded`: the projectors the API reads, run in this process;
- :mod:`.admin`: operator tasks (``runwire sessions export|import|expire|delete``).

docs/sessions.md maps the session APIs of agent frameworks onto this one.
"""

from runwire.sessions.api import FROM_DOCUMENT, SYSTEM_KEY, AsyncSession
from runwire.sessions.blocking import Session
from runwire.sessions.errors import (
    ImportConflictError,
    InputError,
    NotFoundError,
    SessionBusy,
    SessionEndedError,
    WriteRefusedError,
)
from runwire.sessions.forks import ForkPoint
from runwire.sessions.inmem import InMemoryBackend
from runwire.sessions.protocol import SessionBackend, SessionChange, SessionEvent, SessionInfo
from runwire.sessions.versions import Versioned

__all__ = [
    "FROM_DOCUMENT",
    "SYSTEM_KEY",
    "AsyncSession",
    "ForkPoint",
    "ImportConflictError",
    "InMemoryBackend",
    "InputError",
    "NotFoundError",
    "Session",
    "SessionBackend",
    "SessionBusy",
    "SessionChange",
    "SessionEndedError",
    "SessionEvent",
    "SessionInfo",
    "Versioned",
    "WriteRefusedError",
]
