"""The seam under the LangGraph saver: where checkpoint events go and how they are read.

:class:`~runwire.checkpoint.saver.RunwireSaver` holds LangGraph's rules
(configs, serialization, deltas); a :class:`CheckpointStore` only appends
checkpoint events and answers the read model's queries. Implementations:
:class:`~runwire.checkpoint.log_store.LogCheckpointStore` (the checkpoints
topic + the Postgres checkpoints projection) and the twin
:class:`~runwire.checkpoint.inmem.InMemoryCheckpointStore`; the contract
suite in tests/contract/checkpoints.py runs LangGraph's conformance suite
against both.

Contract:
- ``append(events)`` writes checkpoint events in order (per thread, in the
  order given); on return they are durable and every query shows them
  (read-your-writes). Bad events raise before anything is written
  (:func:`check_events`); an event the read model refuses all the same (a
  dead letter) raises :class:`CheckpointRefusedError` rather than return as
  if it were shown.
- ``reader`` answers the read model's queries: the Postgres reader
  :class:`~runwire.projections.checkpoints.reader.Checkpoints` or its twin
  :class:`~runwire.projections.checkpoints.inmem.InMemoryCheckpoints`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from runwire.contract.events import Event
from runwire.errors import ContractError, RunwireError
from runwire.projections.checkpoints.fold import CheckpointRow, ValueRow, WriteRow, op_of

__all__ = ["CheckpointReads", "CheckpointRefusedError", "CheckpointStore", "check_events"]


class CheckpointRefusedError(RunwireError):
    """The log took a checkpoint event but the read model refused it: it is in the
    dead-letter topic with the reason (``runwire dlq list``) and shows nowhere."""


def check_events(events: Sequence[Event]) -> None:
    """Refuse, before anything is written, what the checkpoints projection would
    dead-letter: an event of another stream (:class:`ContractError`) or one whose
    payload breaks its own description (``InvalidCheckpointEvent``)."""
    for event in events:
        try:
            op_of(event)
        except ValueError as e:
            raise ContractError(f"event {event.event_id}: {e}") from None


class CheckpointReads(Protocol):
    """The checkpoint read model's queries (contract: :mod:`runwire.projections.checkpoints.reader`)."""

    async def get(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> CheckpointRow | None: ...

    async def find(
        self,
        thread_id: str | None = None,
        checkpoint_ns: str | None = None,
        *,
        checkpoint_id: str | None = None,
        filter: dict[str, Any] | None = None,
        before: str | None = None,
        limit: int | None = None,
    ) -> list[CheckpointRow]: ...

    async def values(
        self, thread_id: str, checkpoint_ns: str, wanted: Sequence[tuple[str, str]]
    ) -> list[ValueRow]: ...

    async def writes(
        self, thread_id: str, checkpoint_ns: str, checkpoint_ids: Sequence[str]
    ) -> dict[str, list[WriteRow]]: ...

    async def thread_values(self, thread_id: str) -> list[ValueRow]: ...

    async def threads_of_runs(self, run_ids: Sequence[str]) -> list[str]: ...


@runtime_checkable
class CheckpointStore(Protocol):
    """Where checkpoint events are written and read; see the module contract."""

    @property
    def reader(self) -> CheckpointReads:
        """The read model (raises ``NotStartedError`` before ``start``)."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def append(self, events: Sequence[Event]) -> None:
        """Write ``events``; durable and visible to every query on return."""
        ...
