"""Framework items kept beside a run's canonical transcript (pure fold state).

An agent framework (the OpenAI Agents SDK) stores *items* in its session and
wants them back exactly. The log keeps each one as a ``framework_item`` event
right after the canonical transcript events (``user_message``, ``tool_use``...)
that stand for it (``events`` of them; 0 when it has no canonical form:
reasoning, hosted tool calls, images...). ``item_popped`` takes the newest one
back. The fold rules (applied by
:class:`~runwire.transcript.ledger.TranscriptBuilder`, so the transcript cache,
its miss path, a rebuild and a replay all agree):

- An *item run* (``run_started`` labelled :data:`ITEMS_LABEL`) keeps every
  canonical payload it folds (``kept``, in log order) so that a pop can take
  the ones that stand for an item back: the run's messages are then the fold
  of the payloads still kept, from the start (a pop that would break a
  transcript rule is refused: ``pop_breaks_transcript``). Other runs keep
  nothing extra, and their items can be popped only when they stand for no
  canonical event (``item_not_retractable``).
- ``framework_item`` claims the last ``events`` kept payloads, which must be
  unclaimed (``item_claims_too_much``); ``item_popped`` names a live item of
  the run (``unknown_item``). Items come back in log order, popped ones left
  out.
"""

from __future__ import annotations

import base64
import builtins
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from runwire.contract import jsonvalues

if TYPE_CHECKING:
    from runwire.contract.events import EventPayload

__all__ = ["ITEMS_LABEL", "ItemsState", "KeptItem", "KeptPayload"]

ITEMS_LABEL = "runwire.items"
"""Label of ``run_started`` (value: the framework) for runs that keep items and
can take them back."""


class KeptItem(BaseModel):
    """A live framework item: the event that wrote it, the item, what stands for it."""

    model_config = ConfigDict(extra="forbid")

    event_id: str
    framework: str
    item: Any = None
    first: int = -1
    """Index in ``ItemsState.kept`` of the first payload standing for it (-1: none kept)."""
    events: int = 0


class KeptPayload(BaseModel):
    """A canonical payload of an item run: its event type and its JSON body
    (numbers exact, bytes as base64)."""

    model_config = ConfigDict(extra="forbid")

    type: str
    body: str

    @classmethod
    def of(cls, payload: EventPayload) -> KeptPayload:
        body = jsonvalues.dumps(payload.model_dump(), default=jsonvalues.bytes_as_base64)
        return cls(type=payload.event_type.value, body=body.decode())

    def payload(self, model: builtins.type[EventPayload]) -> EventPayload:
        """The payload again, as ``model`` (its event type's class)."""
        data = jsonvalues.loads(self.body)
        # The one bytes field of a transcript payload (thinking's redacted bytes),
        # written URL-safe (``bytes_as_base64``); the standard alphabet's '+'
        # and '/' read the same through this decoder.
        if "redacted" in model.model_fields and isinstance(data.get("redacted"), str):
            data["redacted"] = base64.urlsafe_b64decode(data["redacted"])
        return model.model_validate(data)


class ItemsState(BaseModel):
    """What a builder keeps about framework items (JSON-safe)."""

    model_config = ConfigDict(extra="forbid")

    keep: bool = False
    """An item run: canonical payloads are kept, so pops can take them back."""
    kept: list[KeptPayload] = Field(default_factory=list)
    items: list[KeptItem] = Field(default_factory=list)
    rewinds: int = 0
    """How many pops took canonical payloads back (the committed messages changed)."""

    def claimed_until(self) -> int:
        """Index in ``kept`` after the last payload an item claimed."""
        for item in reversed(self.items):
            if item.first >= 0:
                return item.first + item.events
        return 0
