"""Reading a session from the transcript cache in one round trip.

``SessionReader`` runs ``session_read.lua`` (EVALSHA, loaded when the server
does not know it: first use, a restart): the live generation (or the one given),
the session's runs in order with the time of their first record, and their
stored messages - all of them, or only the newest ``tail`` runs (``read``);
every run without messages (``runs``); the messages of runs named by id
(``bodies``). One call each, where reading them as plain commands took a
GET, a ZRANGE and one HMGET per run.

Contract:
- The reply is one consistent view: a script runs alone in Redis, so no
  commit lands between reading the session index and the bodies.
- ``SessionRead.runs``: the session's (run id, first ms), oldest first (ties
  by run id, as the sorted set orders them) - the newest ``tail`` of them
  for a tail read, ``total`` telling how many there are; empty when the
  cache does not list the session (unknown, or the index was lost in a
  flush: the caller asks the run-status store).
- ``owner``: a read naming the reader's owner tag lists and counts only
  that owner's runs (meta ``u``), so a run someone else wrote into the
  session is never served to its owner; the usual session, all of whose
  runs are the owner's, is read exactly as without it.
- ``SessionRead.erased``: the session is in the generation's erased sessions
  (``session_deleted`` applied): nothing of it is returned, and the caller
  must not look for it elsewhere.
- ``SessionRead.bodies``: the stored messages of each run listed (or asked
  for) whose transcript is in the cache; an expired or unknown one is left
  out (the caller rebuilds it from the log).
- ``SessionRead.version``: the session's ``<generation>:<version>`` (see
  :mod:`~runwire.projections.transcripts.store`, session versions), read in
  the same script as everything else, so it names exactly the data returned.
  ``read(..., known=v)`` with the version the caller holds: when it is still
  ``v``, ``same`` is True and only the header (version, clear point, erased)
  comes back - no runs, no bodies; for a ``visible`` read naming an older
  version of the same generation, ``delta`` is True and only the runs
  changed since come back (the caller merges them into what it holds).
- ``SessionRead.cleared_ms``: the session's clear point (``session_cleared``
  applied by the transcripts projection), or None. ``read(...,
  visible=True)`` lists only the runs that began after it; other reads list
  them all (the caller hides runs at or before it when it reads history).

:class:`DecodedRuns` turns stored messages into canonical
:class:`~runwire.transcript.messages.Message` lists, each distinct body
decoded once per process (see its docstring).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, NamedTuple

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from runwire.projections.transcripts.body import decode_document
from runwire.projections.transcripts.keys import Keyspace, tenant_segment
from runwire.projections.transcripts.store import messages_json
from runwire.transcript.messages import Message, TextPart, ThinkingPart

__all__ = ["DecodedRuns", "SessionRead", "SessionReader", "StoredMessages"]


class StoredMessages(NamedTuple):
    """A run's messages as its body stores them: the committed messages' JSON
    joined by commas, then the open one's JSON or empty. (A tuple: a read
    builds one per run, and it is the key :class:`DecodedRuns` keeps by.)"""

    committed: bytes
    open: bytes

    @property
    def json(self) -> bytes:
        """The messages as one JSON array."""
        return messages_json(self.committed, self.open)


def _decode_stored(bodies: Sequence[StoredMessages]) -> list[list[Message]]:
    """Each body's messages, in one validation call of one document built by
    one join (no JSON array per body: a tenth of a cold read's decoding)."""
    if not bodies:
        return []
    return decode_document(
        b"[[" + b"],[".join([c + b"," + o if c and o else c or o for c, o in bodies]) + b"]]"
    )


@dataclass(frozen=True, slots=True)
class SessionRead:
    """One read of a session (see the module contract)."""

    generation: int
    runs: list[tuple[str, int]]
    """The runs listed, (run id, first ms), oldest first."""
    bodies: dict[str, StoredMessages]
    total: int = 0
    """How many runs the session index holds (``runs`` may be the newest of them)."""
    erased: bool = False
    """The session is erased (``session_deleted`` applied): nothing is listed."""
    version: str = ""
    """The session's ``<generation>:<version>`` ('' when no session was read)."""
    cleared_ms: int | None = None
    """The session's clear point (ms), if it was cleared."""
    ended: bool = False
    """The session ended (``session_ended`` applied)."""
    same: bool = False
    """The version is the one the caller said it holds: nothing is listed."""
    delta: bool = False
    """A visible read naming an older version of this generation: ``runs`` and
    ``bodies`` are only the runs changed since, ``total`` how many are visible."""


def _script() -> str:
    return resources.files(__package__).joinpath("session_read.lua").read_text()


class SessionReader:
    """Reads sessions from the transcript cache under ``key_prefix``, in
    ``tenant``'s namespace (:mod:`.keys`; None: the events without a tenant).

    ``client`` must be created with ``decode_responses=False`` (the default);
    its lifecycle belongs to the caller.
    """

    def __init__(
        self, client: aioredis.Redis, key_prefix: str, *, tenant: str | None = None
    ) -> None:
        self._keys = Keyspace(key_prefix)
        self._segment = tenant_segment(tenant)
        self._redis = client
        self._text = _script()
        self.sha = hashlib.sha1(self._text.encode()).hexdigest()
        """The script's SHA1, as EVALSHA names it (loaded again when the server lost it)."""
        self._last_reply: Any = None

    @property
    def last_reply_bytes(self) -> int:
        """Bytes of strings in the last script reply (counted when asked)."""
        return _size(self._last_reply)

    async def read(
        self,
        session_id: str,
        *,
        tail: int | None = None,
        generation: int | None = None,
        known: str = "",
        visible: bool = False,
        owner: str = "",
    ) -> SessionRead:
        """The session's newest ``tail`` runs (all when None; with ``visible``,
        all after its clear point) with their stored messages, in generation
        ``generation`` (the live one when None); only the header when the
        session's version is still ``known``. With ``owner`` (an
        :func:`~runwire.projections.transcripts.keys.owner_tag`) only that
        owner's runs are listed and counted."""
        if tail is not None and tail < 0:
            raise ValueError(f"tail must be None or at least 0, not {tail}")
        if tail is not None and visible:
            raise ValueError("a tail read lists the newest runs, cleared or not: not visible")
        mode = ("visible" if visible else "") if tail is None else str(tail)
        return await self._call(session_id, mode, [], generation, known, owner)

    async def runs(
        self, session_id: str, *, generation: int | None = None, owner: str = ""
    ) -> SessionRead:
        """Every run of the session (of ``owner``, when given), without messages."""
        return await self._call(session_id, "ids", [], generation, owner=owner)

    async def bodies(
        self, run_ids: Collection[str], *, generation: int | None = None
    ) -> dict[str, StoredMessages]:
        """The stored messages of each of ``run_ids`` present in the cache."""
        return (await self._call("", "", list(run_ids), generation)).bodies

    async def _call(
        self,
        session_id: str,
        mode: str,
        extra: list[str],
        generation: int | None,
        known: str = "",
        owner: str = "",
    ) -> SessionRead:
        args = (
            self._keys.live,
            f"{self._keys.root}:",
            "" if generation is None else str(generation),
            session_id,
            mode,
            known,
            owner,
            self._segment,
            *extra,
        )
        # EVALSHA as a plain command: redis-py's Script object checks for
        # pipelines and imports modules on every call (~8 us of a ~250 us read).
        try:
            reply: list[Any] = await self._redis.evalsha(self.sha, 1, *args)
        except NoScriptError:  # a restarted or flushed server: load it, once
            self.sha = await self._redis.script_load(self._text)
            reply = await self._redis.evalsha(self.sha, 1, *args)
        self._last_reply = reply
        gen, erased, width, total, listed, more, version, cleared, same, ended = reply
        cleared_ms = int(cleared) if cleared else None
        if same == 1:
            return SessionRead(
                gen, [], {}, 0, erased == 1, version.decode(), cleared_ms, ended == 1, same=True
            )
        ids = [m.decode() for m in listed[0::width]]
        runs = list(zip(ids, _first_ms(listed[1::width]), strict=True))
        bodies: dict[str, StoredMessages] = {}
        if width == 4:
            for run_id, c, o in zip(ids, listed[2::4], listed[3::4], strict=True):
                if c is not None and o is not None:
                    bodies[run_id] = StoredMessages(c, o)
        for run_id, c, o in zip(extra, more[0::2], more[1::2], strict=True):
            if c is not None and o is not None:
                bodies[run_id] = StoredMessages(c, o)
        return SessionRead(
            gen,
            runs,
            bodies,
            total,
            erased == 1,
            version.decode(),
            cleared_ms,
            ended == 1,
            delta=same == 2,
        )


def _first_ms(column: list[bytes]) -> list[int]:
    """First ms of the runs listed: meta fields ("1763790000123"), or index
    scores, which may be written as doubles ("1.76379e+12")."""
    try:
        return list(map(int, column))
    except ValueError:
        return [int(float(x)) for x in column]


def _size(reply: Any) -> int:
    """Bytes of strings in a script reply (what a test asserts was not sent)."""
    if isinstance(reply, bytes):
        return len(reply)
    if isinstance(reply, list):
        return sum(_size(r) for r in reply)
    return 0


_IMMUTABLE_PARTS = (TextPart, ThinkingPart)


class DecodedRuns:
    """Stored messages decoded into canonical messages, once per distinct body.

    A body's bytes fully determine its messages, so a decoded run is kept,
    keyed by those bytes, and served again while the body is unchanged (a
    changed body is new bytes: a new key; nothing can go stale). Only runs
    whose parts hold nothing mutable (text and thinking: strings, bytes,
    None) are kept: a tool_use input or tool_result content is a dict or list
    a caller could change, so those runs are decoded afresh on every read.
    Each read gets its own lists. Bounded by ``max_bytes`` of body JSON
    (the decoded objects with their keys take about 8 times that in memory,
    measured on text turns: 4 MiB by default, ~32 MiB), least recently used
    first out.
    """

    def __init__(self, max_bytes: int = 4 << 20) -> None:
        self._max = max_bytes
        self._size = 0
        self._kept: OrderedDict[StoredMessages, tuple[Message, ...]] = OrderedDict()
        self.decoded = 0
        """How many runs were decoded (not served from what was kept)."""

    def __len__(self) -> int:
        return len(self._kept)

    def decode(self, bodies: Mapping[str, StoredMessages]) -> dict[str, list[Message]]:
        """Each run's messages; runs not kept are decoded together in one call."""
        runs = self._runs(list(bodies.values()))
        return {run_id: list(messages) for run_id, messages in zip(bodies, runs, strict=True)}

    def flat(
        self, bodies: Sequence[StoredMessages], counts: list[int] | None = None
    ) -> list[Message]:
        """The messages of ``bodies`` in order, in one new list (as ``decode``:
        runs not kept decoded together, those holding mutable parts afresh);
        each body's message count appended to ``counts`` when given."""
        out: list[Message] = []
        for messages in self._runs(bodies):
            out.extend(messages)
            if counts is not None:
                counts.append(len(messages))
        return out

    def _runs(self, bodies: Sequence[StoredMessages]) -> list[Sequence[Message]]:
        """Each body's messages: kept ones (taken before keeping the new ones,
        which may push them out) or decoded together in one call."""
        kept = self._kept
        if not kept and not self._max:
            # Nothing is ever kept (a cold reader): no lookups, no hashing of bodies.
            self.decoded += len(bodies)
            return list(_decode_stored(bodies))
        out: list[Sequence[Message]] = []
        missing: list[int] = []
        for i, body in enumerate(bodies):
            found = kept.get(body)
            if found is None:
                missing.append(i)
                out.append(())
            else:
                kept.move_to_end(body)
                out.append(found)
        if missing:
            decoded = _decode_stored([bodies[i] for i in missing])
            self.decoded += len(missing)
            for i, messages in zip(missing, decoded, strict=True):
                out[i] = messages
                self._keep(bodies[i], messages)
        return out

    def _keep(self, body: StoredMessages, messages: list[Message]) -> None:
        # The cheap checks first: with nothing to be kept (``max_bytes`` 0, a
        # cold reader), scanning every part was a tenth of a read.
        size = len(body.committed) + len(body.open)
        if size > self._max or body in self._kept:
            return
        if not all(isinstance(p, _IMMUTABLE_PARTS) for m in messages for p in m.parts):
            return
        self._kept[body] = tuple(messages)
        self._size += size
        while self._size > self._max:
            (committed, open_message), _ = self._kept.popitem(last=False)
            self._size -= len(committed) + len(open_message)
