"""Time travel: a run's transcript, or a session's history, as it was at a point.

Served from the log through the run reader, not from what the cache holds
now: a run's records are read back from its partition (where it lies: the
cache's meta, else the run-status store) and folded with the ledger exactly
as the projector folds them, records the ledger refuses skipped.

Contract of :class:`TranscriptHistory`:
- ``run_at(run_id, offset=N)``: the run's transcript after the record at log
  offset ``N`` of its partition was applied, byte for byte the messages JSON
  the live projection held at that point (``RunAsOf.json``; what
  ``TranscriptCache.get`` gave then). ``turn=N`` (1-based): as of the end of
  the run's turn ``N``, i.e. just before the record that started turn
  ``N + 1`` (turns as :func:`runwire.transcript.turns.starts_turn` counts
  them); the whole run when ``N`` is its last turn.
- ``session_at(session_id, run_ids, turn=N)``: the history of the session's
  runs ``run_ids`` (its visible ones, in order) up to the end of its turn
  ``N``, counted over those runs: what ``get_messages()`` returned once turn
  ``N`` was answered, while nothing later was added (runs are append-only:
  later turns only add messages after it).
- Bad input is refused with :class:`~runwire.errors.InputError` naming the
  field, before anything is read: an offset before the run's first record or
  at/after its partition's end, a turn the run or session does not have,
  both ``offset`` and ``turn``. An unknown run, or one erased with its
  session, is :class:`~runwire.errors.NotFoundError`.
- ``session_turns(session_id, run_ids)``: the turn list of those runs, each
  turn with its number, ``turn_id``, run, start time, messages and token
  usage (:class:`Turn`), folded from the log the same way.
- Reads one tenant's runs (``tenant=``, None: those without a tenant): the
  cache's namespace of that tenant, and of the records read back only those
  whose event names it.
- Reads only: nothing is written to the cache or the log.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from runwire.contract.events import Usage, UserMessage
from runwire.errors import InputError, NotFoundError
from runwire.log.records import SourceRecord
from runwire.projections.transcripts.body import encode_body, encode_messages
from runwire.projections.transcripts.miss import RunLocator
from runwire.projections.transcripts.store import Slot, TranscriptStore
from runwire.transcript.errors import LedgerError
from runwire.transcript.ledger import TranscriptBuilder
from runwire.transcript.messages import Message
from runwire.transcript.turns import starts_turn

__all__ = [
    "HistoryLog",
    "RunAsOf",
    "SessionAsOf",
    "TranscriptHistory",
    "Turn",
    "TurnUsage",
    "cut_at_turn",
    "turn_starts",
]


class HistoryLog(Protocol):
    """What time travel reads the log with (:class:`~runwire.log.runs.RunReader`)."""

    async def read(self, run_id: str, partition: int, first: int, last: int) -> list[SourceRecord]:
        """The run's decodable records with ``first <= offset <= last``, in log order."""
        ...

    async def read_runs(
        self, run_ids: Collection[str], partition: int, first: int, last: int
    ) -> dict[str, list[SourceRecord]]:
        """Each run's decodable records in the range, read in one pass."""
        ...

    async def end_offset(self, partition: int) -> int:
        """The offset the partition's next record will get."""
        ...


@dataclass(frozen=True, slots=True)
class RunAsOf:
    """A run's transcript at a point of the log."""

    run_id: str
    partition: int
    offset: int
    """The last of the run's records folded (-1: none of its records is at or before the point)."""
    json: bytes
    """The messages JSON, as the transcript cache stores it."""
    messages: list[Message]
    turns: int
    """How many turns the transcript holds."""


@dataclass(frozen=True, slots=True)
class SessionAsOf:
    """A session's history at the end of one of its turns."""

    session_id: str
    turn: int
    run_ids: list[str]
    """The runs that hold the history's messages, in order."""
    messages: list[Message]

    @property
    def json(self) -> bytes:
        return messages_json(self.messages)


def messages_json(messages: Sequence[Message]) -> bytes:
    """Messages as one JSON array, in the bytes the transcript cache writes."""
    return encode_messages(messages)


def turn_starts(messages: Sequence[Message]) -> list[int]:
    """Indexes of the messages that start a turn."""
    return [i for i, m in enumerate(messages) if starts_turn(m)]


@dataclass(frozen=True, slots=True)
class _Where:
    partition: int
    first: int
    last: int


class TranscriptHistory:
    """Reads runs and sessions as they were; see the module contract."""

    def __init__(
        self,
        store: TranscriptStore,
        log: HistoryLog,
        locator: RunLocator,
        *,
        tenant: str | None = None,
    ) -> None:
        self._store = store
        self._log = log
        self._locator = locator
        self._tenant = tenant

    def _mine(self, records: Sequence[SourceRecord]) -> list[SourceRecord]:
        """The records of this reader's tenant's run (the same run id in another
        tenant is another run, on the same partition)."""
        return [r for r in records if r.event.tenant == self._tenant]

    async def _where(
        self, run_ids: Sequence[str], *, skip_erased: bool = False
    ) -> dict[str, _Where]:
        live = await self._store.generation(Slot.LIVE)
        assert live is not None
        snap = await self._store.snapshot(live, (), run_ids, tenant=self._tenant)
        out: dict[str, _Where] = {}
        for run_id in run_ids:
            meta = snap.heads[run_id].meta
            if run_id in snap.erased or (meta is not None and meta.session_id in snap.deleted):
                if skip_erased:
                    continue
                raise NotFoundError(f"run {run_id!r} was erased with its session")
            # The cache's last offset is that of the run's last change, the
            # run-status store's that of its last record: either bounds a read.
            if meta is not None:
                out[run_id] = _Where(meta.partition, meta.first, meta.last)
                continue
            location = await self._locator.locate(run_id)
            if location is None:
                raise NotFoundError(
                    f"run {run_id!r} is neither in the transcript cache nor in the run-status store"
                )
            out[run_id] = _Where(location.partition, location.first_offset, location.last_offset)
        return out

    async def present(self, run_ids: Sequence[str]) -> list[str]:
        """Those of ``run_ids`` not erased with their session, in order (one cache call
        for runs the cache knows)."""
        where = await self._where(run_ids, skip_erased=True)
        return [r for r in run_ids if r in where]

    async def run_at(
        self, run_id: str, *, offset: int | None = None, turn: int | None = None
    ) -> RunAsOf:
        """The run's transcript as of ``offset`` or the end of ``turn`` (see the contract)."""
        if offset is not None and turn is not None:
            raise InputError("as_of", "give a log offset or a turn, not both")
        _check_number("offset", offset, 0)
        _check_number("turn", turn, 1)
        where = (await self._where([run_id]))[run_id]
        if offset is not None:
            end = await self._log.end_offset(where.partition)
            if offset < where.first:
                raise InputError(
                    "offset",
                    f"run {run_id} begins at offset {where.first} of partition "
                    f"{where.partition}; {offset} is before it",
                )
            if offset >= end:
                raise InputError(
                    "offset",
                    f"{offset} is beyond the end of partition {where.partition} "
                    f"(its next offset is {end})",
                )
            records = await self._log.read(run_id, where.partition, where.first, offset)
        else:
            records = await self._log.read(run_id, where.partition, where.first, where.last)
        records = self._mine(records)
        if turn is not None:
            records = _through_turn(run_id, records, turn)
        builder = TranscriptBuilder(run_id)
        _fold(builder, records)
        messages = builder.messages()
        return RunAsOf(
            run_id=run_id,
            partition=where.partition,
            offset=records[-1].offset if records else -1,
            json=encode_body(builder).messages,
            messages=messages,
            turns=len(turn_starts(messages)),
        )

    async def records_now(
        self,
        run_ids: Sequence[str],
        bounds: Mapping[str, int] | None = None,
        *,
        skip_erased: bool = False,
    ) -> dict[str, list[SourceRecord]]:
        """Each run's records up to its last (or its offset in ``bounds``), read from the
        log: one pass per partition. With ``skip_erased``, runs erased with their
        session are left out instead of raising :class:`NotFoundError`."""
        where = await self._where(run_ids, skip_erased=skip_erased)
        for run_id, bound in (bounds or {}).items():
            if run_id in where:
                where[run_id] = _Where(where[run_id].partition, where[run_id].first, bound)
        by_partition: dict[int, list[str]] = {}
        for run_id in run_ids:
            if run_id in where:
                by_partition.setdefault(where[run_id].partition, []).append(run_id)
        out: dict[str, list[SourceRecord]] = {}
        for partition, ids in by_partition.items():
            first = min(where[r].first for r in ids)
            last = max(where[r].last for r in ids)
            found = await self._log.read_runs(ids, partition, first, last)
            for run_id in ids:
                out[run_id] = self._mine(
                    [r for r in found[run_id] if r.offset <= where[run_id].last]
                )
        return out

    async def runs_now(
        self,
        run_ids: Sequence[str],
        bounds: Mapping[str, int] | None = None,
        *,
        skip_erased: bool = False,
    ) -> dict[str, list[Message]]:
        """Each run's transcript (up to its bound), read from the log."""
        out: dict[str, list[Message]] = {}
        found = await self.records_now(run_ids, bounds, skip_erased=skip_erased)
        for run_id, records in found.items():
            builder = TranscriptBuilder(run_id)
            _fold(builder, records)
            out[run_id] = builder.messages()
        return out

    async def session_turns(
        self,
        session_id: str,
        run_ids: Sequence[str],
        bounds: Mapping[str, int] | None = None,
        *,
        skip_erased: bool = False,
    ) -> list[Turn]:
        """The turns of the session's runs ``run_ids`` (in order, each up to its bound),
        numbered from 1."""
        records = await self.records_now(run_ids, bounds, skip_erased=skip_erased)
        turns: list[Turn] = []
        for run_id in run_ids:
            if run_id in records:
                turns += _turns_of(run_id, records[run_id], len(turns))
        return turns

    async def session_at(
        self,
        session_id: str,
        run_ids: Sequence[str],
        turn: int,
        bounds: Mapping[str, int] | None = None,
        *,
        skip_erased: bool = False,
    ) -> SessionAsOf:
        """The session's history at the end of its turn ``turn`` (see the contract)."""
        _check_number("turn", turn, 1)
        runs = await self.runs_now(run_ids, bounds, skip_erased=skip_erased)
        flat = [(run_id, m) for run_id in run_ids for m in runs.get(run_id, [])]
        kept = cut_at_turn([m for _, m in flat], turn, f"session {session_id}")
        used = list(dict.fromkeys(run_id for run_id, _ in flat[: len(kept)]))
        messages = kept
        return SessionAsOf(session_id, turn, used, messages)


def cut_at_turn(messages: Sequence[Message], turn: int, what: str) -> list[Message]:
    """``messages`` up to the end of turn ``turn`` (1-based), before the next one starts;
    :class:`InputError` when ``what`` has fewer turns."""
    _check_number("turn", turn, 1)
    starts = turn_starts(messages)
    if len(starts) < turn:
        raise InputError("turn", f"{what} has {len(starts)} turns; no turn {turn}")
    return list(messages[: starts[turn]] if turn < len(starts) else messages)


@dataclass(frozen=True, slots=True)
class TurnUsage:
    """Tokens the model calls of a turn reported (``usage`` events)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def __add__(self, usage: Usage) -> TurnUsage:
        return TurnUsage(
            self.input_tokens + usage.input_tokens,
            self.output_tokens + usage.output_tokens,
            self.cache_read_tokens + usage.cache_read_tokens,
            self.cache_write_tokens + usage.cache_write_tokens,
        )


@dataclass(frozen=True, slots=True)
class Turn:
    """One user→assistant round trip: from a message that starts a turn to the next.

    ``turn_id`` is the one the starting record carried (None when it carried
    none). ``usage`` sums the ``usage`` events of the turn: those naming its
    ``turn_id``, else those that came while it was the run's latest turn.
    """

    number: int
    turn_id: str | None
    run_id: str
    started_at: datetime
    messages: list[Message]
    usage: TurnUsage


def _turns_of(run_id: str, records: Sequence[SourceRecord], before: int) -> list[Turn]:
    """The run's turns (messages before its first turn start belong to none),
    numbered after ``before``."""
    builder = TranscriptBuilder(run_id)
    # Per turn: where its messages start, its id, when, its usage.
    spans: list[tuple[int, str | None, datetime]] = []
    usage: list[TurnUsage] = []
    for record in records:
        try:
            changed = builder.apply(record.event)
        except LedgerError:
            continue
        payload = record.event.payload
        if changed and isinstance(payload, UserMessage):
            starts = turn_starts(builder.messages())
            if len(starts) > len(spans):
                spans.append((starts[-1], record.event.turn_id, record.event.occurred_at))
                usage.append(TurnUsage())
        elif isinstance(payload, Usage) and changed and spans:
            named = [
                i for i, s in enumerate(spans) if s[1] is not None and s[1] == record.event.turn_id
            ]
            k = named[-1] if named else len(spans) - 1
            usage[k] = usage[k] + payload
    messages = builder.messages()
    ends = [s[0] for s in spans[1:]] + [len(messages)]
    return [
        Turn(before + i + 1, turn_id, run_id, at, messages[start:end], usage[i])
        for i, ((start, turn_id, at), end) in enumerate(zip(spans, ends, strict=True))
    ]


def _check_number(name: str, value: int | None, least: int) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise InputError(name, f"a whole number of at least {least}, not {value!r}")


def _fold(builder: TranscriptBuilder, records: Sequence[SourceRecord]) -> None:
    for record in records:
        try:
            builder.apply(record.event)
        except LedgerError:
            continue  # the projector dead-lettered it: it changed nothing


def _through_turn(
    run_id: str, records: Sequence[SourceRecord], turn: int, *, check: bool = True
) -> list[SourceRecord]:
    """The records up to the end of the run's turn ``turn`` (before the next one starts)."""
    builder = TranscriptBuilder(run_id)
    for i, record in enumerate(records):
        try:
            changed = builder.apply(record.event)
        except LedgerError:
            continue
        if changed and isinstance(record.event.payload, UserMessage):
            starts = len(turn_starts(builder.messages()))
            if starts > turn:
                return list(records[:i])
    count = len(turn_starts(builder.messages()))
    if check and count < turn:
        raise InputError("turn", f"run {run_id} has {count} turns; no turn {turn}")
    return list(records)
