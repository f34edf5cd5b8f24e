"""Where the transcript cache keeps things in Redis.

Every key lives under ``<redis_key_prefix>:tx:``. The data of one *generation*
(a full copy of the cache, see :mod:`runwire.projections.transcripts.rebuild`)
lives under ``<prefix>:tx:<generation>:``; its positions are the projector's,
everything else is one tenant's, under that tenant's *namespace*:

- the events without a tenant (a deployment without tenants) keep the
  generation's own keys, ``<prefix>:tx:<generation>:meta:<run_id>`` and so on
  (the layout from before tenants, unchanged);
- a tenant's keys are ``<prefix>:tx:<generation>:t:<tenant>:meta:<run_id>``
  and so on (:func:`tenant_segment`: the tenant with ``%``, ``:`` and ``*``
  percent-escaped, so it holds no ``:`` and no tenant's namespace is a prefix
  of another's, nor of a key without a tenant: none of those begins ``t:``).

The projector writes each record's run under its event's tenant; a reader
builds keys of its own tenant only, so two tenants using the same run and
session ids have disjoint keys and no reader can name another tenant's.
Under a generation:

- ``pos`` (hash, the generation's, not a tenant's) - the projector's position
  per partition: field ``<topic>/<partition>`` (Kafka topic names cannot hold
  ``/``), value the offset of the next record to read.

Under a tenant's namespace of a generation:

- ``meta:<run_id>`` (hash, never expires) - ``p`` partition, ``f`` offset of
  the run's first record, ``l`` offset of the last record applied, ``s``
  session id, ``t`` time of the first record (ms), ``u`` the run's owner
  (:func:`owner_tag` of its first record's user and tenant), ``v`` the
  session's version at the run's last change (not data: left out of dumps).
  Small; it is what lets the
  projector and the miss path tell "run unknown" from "transcript expired".
- ``run:<run_id>`` (hash, the optional TTL) - ``m`` the messages (JSON list of
  :class:`~runwire.transcript.messages.Message`), ``st`` the fold state
  (:class:`~runwire.transcript.ledger.TranscriptState` JSON).
- ``session:<session_id>`` (sorted set, never expires) - run ids scored by the
  time of their first record: the session's runs in order.
- ``owners:<session_id>`` (hash, never expires) - owner tag -> how many of
  the session's runs it owns. A session read names its owner: when every run
  is the owner's (the usual case) the index is read as it is, otherwise the
  other owners' runs are left out (no run of another user is ever served).
- ``deleted`` (set, never expires) - the erased sessions (``session_deleted``
  applied): their runs are gone and their later or replayed run events are
  dropped.
- ``erased`` (set, never expires) - the runs erased with their session: every
  later event of them is dropped (also one that names no session).
- ``cleared`` (hash, never expires) - session id -> its last clear point
  (``session_cleared``'s time, ms): runs that began at or before it are hidden.
- ``ended`` (set, never expires) - the sessions that ended (``session_ended``
  applied; a deletion takes a session out): writers refuse them from the
  cache alone.
- ``ver`` (hash, never expires) - session id -> its version, a new one with
  every commit that changes what a read of the session returns (see
  :mod:`~runwire.projections.transcripts.store`); not data, left out of dumps.

Beside the generations: ``live`` names the generation readers use (absent
means 0), ``building`` the one a rebuild is filling, ``next`` hands out
generation numbers; ``claim:<run_id>`` (``t:<tenant>:claim:<run_id>`` for a
tenant's run) is a run's append claim (:mod:`.claims`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from runwire.log.records import TopicPartition


def tenant_segment(tenant: str | None) -> str:
    """The key segment of ``tenant``'s namespace: ``''`` without a tenant, else
    ``t:<tenant>:`` with ``%``, ``:`` and ``*`` percent-escaped (see the module)."""
    if tenant is None:
        return ""
    escaped = tenant.replace("%", "%25").replace(":", "%3A").replace("*", "%2A")
    return f"t:{escaped}:"


def owner_tag(user_id: str | None, tenant: str | None) -> str:
    """How a run's owner (user, tenant) is written in the cache: ``["user","tenant"]``."""
    return json.dumps([user_id, tenant], separators=(",", ":"))


def position_field(tp: TopicPartition) -> str:
    """The ``pos`` hash field of a partition."""
    return f"{tp.topic}/{tp.partition}"


def parse_position_field(field: str) -> TopicPartition:
    topic, _, partition = field.rpartition("/")
    return TopicPartition(topic, int(partition))


@dataclass(frozen=True, slots=True)
class Keyspace:
    """Key names of the transcript cache under one ``redis_key_prefix``."""

    prefix: str

    @property
    def root(self) -> str:
        return f"{self.prefix}:tx"

    @property
    def live(self) -> str:
        return f"{self.root}:live"

    @property
    def building(self) -> str:
        return f"{self.root}:building"

    @property
    def counter(self) -> str:
        return f"{self.root}:next"

    def generation(self, generation: int, tenant: str | None = None) -> GenerationKeys:
        """Keys of ``generation``; its run data in ``tenant``'s namespace."""
        at = f"{self.root}:{generation}:"
        return GenerationKeys(at + tenant_segment(tenant), at)

    def claim(self, run_id: str, tenant: str | None = None) -> str:
        """The append claim of ``tenant``'s run (outside the generations)."""
        return f"{self.root}:{tenant_segment(tenant)}claim:{run_id}"

    def tenants_pattern(self, generation: int) -> str:
        """A SCAN pattern matching every tenant's keys of ``generation`` (not
        those without a tenant)."""
        return f"{_glob_escape(f'{self.root}:{generation}:')}t:*"


@dataclass(frozen=True, slots=True)
class GenerationKeys:
    """Key names of one generation for one tenant; ``base`` (the tenant's
    namespace) and ``generation_base`` (the generation's) end with ``:``."""

    base: str
    generation_base: str = ""

    def __post_init__(self) -> None:
        if not self.generation_base:
            object.__setattr__(self, "generation_base", self.base)

    @property
    def positions(self) -> str:
        return f"{self.generation_base}pos"

    def meta(self, run_id: str) -> str:
        return f"{self.base}meta:{run_id}"

    def body(self, run_id: str) -> str:
        return f"{self.base}run:{run_id}"

    def session(self, session_id: str) -> str:
        return f"{self.base}session:{session_id}"

    def owners(self, session_id: str) -> str:
        return f"{self.base}owners:{session_id}"

    @property
    def deleted(self) -> str:
        return f"{self.base}deleted"

    @property
    def erased(self) -> str:
        return f"{self.base}erased"

    @property
    def cleared(self) -> str:
        return f"{self.base}cleared"

    @property
    def ended(self) -> str:
        return f"{self.base}ended"

    @property
    def versions(self) -> str:
        return f"{self.base}ver"

    @property
    def pattern(self) -> str:
        """A SCAN pattern matching every key of the generation (every tenant's)."""
        return f"{_glob_escape(self.generation_base)}*"

    @property
    def tenant_pattern(self) -> str:
        """A SCAN pattern matching every key of this tenant's namespace (for the
        namespace without a tenant, also every tenant's: it is the generation's)."""
        return f"{_glob_escape(self.base)}*"


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
