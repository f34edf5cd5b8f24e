"""How memory records change the memory entries (pure: no I/O).

Rules (the memory projection's contract):
- The memory topic is keyed by ``[scope, owner, key]`` (the address); each
  address lives on one partition, so its records come in write order. The
  last record of an address wins: ``memory_set`` puts its value, a tombstone
  (``memory_deleted``) removes the entry.
- Values keep their exact numbers: rows hold :func:`row_value` (JSON text that
  Postgres ``jsonb`` reads back as the same value), readers parse it with
  :func:`~runwire.contract.jsonvalues.loads`. A value ``jsonb`` cannot keep
  (``-0.0``, a number over ``numeric``'s digits; runwire's writers refuse
  them) is dead-lettered when decoded (``invalid_event``,
  :func:`~runwire.contract.limits.check_event`) rather than stored changed.
- A ``session_deleted`` on the session-events topic removes every
  ``session``-scope entry owned by that session and leaves a tombstone:
  writes to those entries are ignored, in whatever order the two topics are
  read (so a rebuild gives the same entries as the live fold). A session is
  its tenant's (:func:`runwire.contract.session_tenant.foreign_to_session`),
  and here its entries stand for it, each its writer's tenant's: a deletion
  reaches the entries (and later writes) it is not foreign to, all of them
  when it names no tenant; another tenant's deletion reaches none (passed
  over, as the session index dead-letters it). A tombstone is kept per
  session and deleting tenant.
- A ``user_erased`` (the memory topic, key ``["user", owner, ""]``) removes
  every ``user``-scope entry of its owner. No tombstone is needed: the
  user's key is destroyed, so its entries' records read as erased (skipped)
  in any replay, and an erased user cannot write again.
- Rejected (dead-lettered, nothing changed): a non-memory event on the
  memory topic (``wrong_topic``); a tombstone whose key is not an address
  written canonically (``key_mismatch``) or without runwire's headers (its
  decode reason), both by :func:`resolve`. A record with a value whose key
  is not its event's address never gets here: the consumer's envelope check
  (:func:`runwire.log.envelope.check_envelope`) dead-letters it. Other session events are not this projection's business:
  skipped.
- A re-published event (same event_id) changes nothing.

The runtime's decoder only sees record values, and a tombstone has none:
:class:`TombstoneDecoder` hands the runtime a placeholder for it, and
:func:`resolve` rebuilds the real ``memory_deleted`` from the record's key and
headers here, where the whole record is at hand.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from runwire.contract import jsonvalues
from runwire.contract.codec import Codec, default_codec
from runwire.contract.events import (
    Event,
    MemoryDeleted,
    MemoryScope,
    MemorySet,
    SessionDeleted,
    UserErased,
)
from runwire.contract.identity import CONFLICTING_DUPLICATE, body_digest, stream_of
from runwire.contract.routing import tombstone_event
from runwire.contract.session_tenant import foreign_tenant
from runwire.errors import DecodeError
from runwire.log.records import SourceRecord

__all__ = [
    "PLACEHOLDER",
    "Entry",
    "MemoryFold",
    "TombstoneDecoder",
    "fold_memory",
    "resolve",
    "row_value",
]

Address = tuple[str, str, str]

PLACEHOLDER = Event.create(
    MemoryDeleted(scope="global", owner="", key=""),
    event_id="00000000-0000-4000-8000-00000000dead",
    producer="runwire-tombstone-placeholder",
)
"""What :class:`TombstoneDecoder` returns for a record without a value."""


class TombstoneDecoder:
    """The runtime's decoder for topics with tombstones: a placeholder for a
    missing value (resolved by :func:`resolve` with the key and headers), the
    codec for everything else."""

    def __init__(self, codec: Codec | None = None) -> None:
        self._codec = codec or default_codec()

    def decode(self, data: bytes) -> Event:
        if not data:
            return PLACEHOLDER
        return self._codec.decode(data)


def is_placeholder(event: Event) -> bool:
    return event.event_id == PLACEHOLDER.event_id


def resolve(record: SourceRecord, *, tombstones: bool = True) -> Event:
    """The record's event; a tombstone's is rebuilt from its key and headers
    (:class:`~runwire.errors.DecodeError` when they are not runwire's). Without
    ``tombstones`` (a topic other than memory) a record without a value is
    ``truncated``, as every consumer reads it."""
    if not is_placeholder(record.event):
        return record.event
    if not tombstones:
        raise DecodeError("truncated", "empty value")
    if record.key is None:
        raise DecodeError("truncated", "a record with neither value nor key")
    return tombstone_event(record.key, record.headers)


def row_value(value: Any) -> str:
    """A memory value as the ``jsonb`` text of its row (numbers exact once read back)."""
    return jsonvalues.jsonb_text(value, "payload.value")


@dataclass(frozen=True, slots=True)
class MemoryEntry:
    """The current value of one memory entry, and who last wrote it (what readers get)."""

    scope: MemoryScope
    owner: str
    key: str
    value: Any
    updated_at: datetime
    user_id: str | None = None
    tenant: str | None = None


class Entry(NamedTuple):
    """A memory entry's row (a named tuple: the fold makes one per write, and a
    frozen dataclass costs four times as much to build)."""

    scope: str
    owner: str
    key: str
    value: Any
    user_id: str | None
    tenant: str | None
    updated_at: datetime
    event_id: str


@dataclass(slots=True)
class MemoryFold:
    """What a batch does: the final state of each address it touched (None:
    deleted), sessions it deleted, records it rejects, event ids to remember."""

    entries: dict[Address, Entry | None] = field(default_factory=dict)
    deletions: dict[tuple[str, str | None], tuple[datetime, str]] = field(default_factory=dict)
    """Sessions this batch deleted, by the deleting tenant (None: none named): when,
    by which event."""
    erased_users: set[str] = field(default_factory=set)
    """Owners whose ``user`` entries go (before this batch's later entries)."""
    rejected: list[tuple[SourceRecord, str, str]] = field(default_factory=list)
    remembered: dict[tuple[str, str], str] = field(default_factory=dict)
    """(event id, stream) -> body digest of every event applied by the batch."""

    @property
    def deleted_sessions(self) -> dict[str, tuple[datetime, str]]:
        """Sessions this batch deleted (by any tenant): when, by which event (the first)."""
        out: dict[str, tuple[datetime, str]] = {}
        for (sid, _), deleted in self.deletions.items():
            out.setdefault(sid, deleted)
        return out


Tombstoned = Mapping[str, Collection[str | None]] | Collection[str]
"""Deleted sessions as stored: session -> the tenants of its deletions (None: one
without a tenant); a plain collection of sessions is deleted without a tenant."""


def reaches(deleted_by: Collection[str | None], tenant: str | None) -> bool:
    """Whether deletions by ``deleted_by`` reach an entry written by ``tenant`` (they
    are not foreign to it)."""
    return any(not foreign_tenant(by, tenant) for by in deleted_by)


def session_owners(events: Iterable[Event]) -> set[str]:
    """Sessions whose tombstones decide what a batch of these events does."""
    out: set[str] = set()
    for event in events:
        p = event.payload
        if isinstance(p, MemorySet | MemoryDeleted) and p.scope == "session":
            out.add(p.owner)
        elif isinstance(p, SessionDeleted) and event.session_id:
            out.add(event.session_id)
    return out


_MEMORY_PAYLOADS = (MemorySet, MemoryDeleted, UserErased)
"""The payloads of the memory stream (``EventType.stream is Stream.MEMORY``; a
test holds them equal), checked by class: cheaper than the type's stream."""


def fold_memory(
    records: Sequence[tuple[SourceRecord, Event]],
    *,
    session_topic: str,
    tombstoned: Tombstoned,
    seen: Mapping[tuple[str, str], str | None],
) -> MemoryFold:
    """Fold records (each with its resolved event; log order per partition).

    ``tombstoned``: deleted sessions already stored; ``seen``: events already
    applied, (event id, stream) -> body digest (both as stored before this
    batch). An applied id of the same stream is dropped with the same body and
    refused (``conflicting_duplicate_event``) with another.
    """
    out = MemoryFold()
    gone: dict[str, set[str | None]] = (
        {sid: set(by) for sid, by in tombstoned.items()}
        if isinstance(tombstoned, Mapping)
        else {sid: {None} for sid in tombstoned}
    )
    remembered = out.remembered
    for record, event in records:
        ident = (event.event_id, stream_of(record.key))
        digest = body_digest(event)
        # "": not applied. Remembered digests are never None; seen's may be.
        stored = remembered.get(ident)
        if stored is None:
            stored = seen.get(ident, seen.get((event.event_id, ""), "")) if seen else ""
        if stored is None or stored == digest:
            continue  # applied before (None: by an older copy that kept no digest)
        if stored:
            out.rejected.append(
                (
                    record,
                    CONFLICTING_DUPLICATE,
                    f"event {event.event_id} ({event.type.value}) was already applied with "
                    f"another body (digest {stored}, this one {digest}); the first is kept",
                )
            )
            continue
        p = event.payload
        if record.topic == session_topic:
            if isinstance(p, SessionDeleted) and event.session_id:
                sid, by = event.session_id, event.tenant
                out.remembered[ident] = digest
                if by not in gone.setdefault(sid, set()):
                    gone[sid].add(by)
                    out.deletions[sid, by] = (event.occurred_at, event.event_id)
            continue
        if not isinstance(p, _MEMORY_PAYLOADS):
            out.rejected.append(
                (record, "wrong_topic", f"{event.type.value} event on the memory topic")
            )
            continue
        # (Its key is its event's address: the consumer's envelope check holds a
        # record with a value to it, and resolve() a tombstone, whose event is
        # read from its key.)
        if isinstance(p, UserErased):
            out.remembered[ident] = digest
            out.erased_users.add(p.owner)
            for user_address in [a for a in out.entries if a[:2] == ("user", p.owner)]:
                del out.entries[user_address]
            continue
        # (A value jsonb cannot keep never gets here: every event, decoded or
        # made, passed runwire.contract.limits.check_event.)
        out.remembered[ident] = digest
        if p.scope == "session" and reaches(gone.get(p.owner, ()), event.tenant):
            continue
        address: Address = (p.scope, p.owner, p.key)
        out.entries[address] = (
            Entry(
                p.scope,
                p.owner,
                p.key,
                p.value,
                event.user_id,
                event.tenant,
                event.occurred_at,
                event.event_id,
            )
            if isinstance(p, MemorySet)
            else None
        )
    deleted: dict[str, list[str | None]] = {}
    for sid, by in out.deletions:
        deleted.setdefault(sid, []).append(by)
    for address in [
        a
        for a, e in out.entries.items()
        if a[0] == "session" and a[1] in deleted and (e is None or reaches(deleted[a[1]], e.tenant))
    ]:
        del out.entries[address]
    return out
