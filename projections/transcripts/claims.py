"""Claims on runs: one appender at a time, each planning on the run's true state.

Why: an append to an existing run is checked by the transcript ledger
against what the run holds when the cache applies it. A writer that waits
for that verdict is always right but pays the projection's delay; a writer
that returns at the broker's acknowledgement must know no one else appends
to the run between its read and its write. A claim gives it that.

Contract (:class:`RunClaims`; every appender of runs written through the
Session API takes one):
- ``take(run_id)`` returns a :class:`Claim`. Not ``taken`` (busy) while
  another writer's append is in flight or not yet applied by the cache; the
  caller waits and reads again. Taken: the run's state at that moment comes
  with it (the cache's stored messages and last applied offset, or, when
  this writer's own earlier append is not applied yet, that offset: its own
  view is then the state), and the claim is marked in flight.
- ``wrote(run_id, topic, partition, offset)``: the append landed at ``offset``;
  the claim is free for others once the cache has processed it (its
  partition's position is past it: applied, or refused - a refused append
  changes nothing, so the run is the cache's again).
- ``give_back(run_id, claim)``: nothing was written; the claim is what it
  was before ``take``.
- A claim whose append's outcome is unknown (the publish failed) stays in
  flight until it lapses (``ttl_ms``, a minute): the append may still land,
  and nobody must plan on the run without it. A claimer that dies does the
  same.
- Claims live beside the cache in Redis, outside its generations (they are
  about the log, not a copy of it); the script reads the live generation.
- A writer's claims are on its tenant's runs (``tenant=``; None: runs
  without a tenant): the claim key and the run state it reads are in that
  tenant's namespace (:mod:`.keys`), so the same run id in two tenants is
  two runs with a claim each; ``for_tenant(t)`` is the same writer's claims
  on another tenant's runs.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from aiokafka.structs import TopicPartition

from runwire.projections.transcripts.body import decode_runs
from runwire.projections.transcripts.keys import Keyspace, position_field, tenant_segment
from runwire.projections.transcripts.session_read import StoredMessages
from runwire.transcript.messages import Message

__all__ = ["Claim", "RunClaims"]

CLAIM_TTL_MS = 60_000
"""How long a claim outlives its last take: beyond any publish's retries."""

_RELEASE = """
if redis.call('HGET', KEYS[1], 'w') == ARGV[1] and redis.call('HGET', KEYS[1], 'o') == '-' then
  if ARGV[2] == '' then
    redis.call('DEL', KEYS[1])
  else
    redis.call('HSET', KEYS[1], 'w', ARGV[2], 'o', ARGV[3], 'f', ARGV[4])
  end
end
return 0
"""

_WROTE = """
if redis.call('HGET', KEYS[1], 'w') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'o', ARGV[2], 'f', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 0
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of :meth:`RunClaims.take`."""

    taken: bool
    last: int
    """The run's last offset the cache applied (-1: the cache does not know it)."""
    body: StoredMessages | None
    """The run's stored messages as the cache holds them (None: absent)."""
    mine: int | None
    """This writer's own earlier append, not applied yet: its offset."""
    previous: tuple[str, str, str]
    """The claim before (writer, offset, partition field; empty when there was none)."""

    def messages(self) -> list[Message] | None:
        """The run's messages as the cache holds them (None: its body is absent)."""
        return None if self.body is None else decode_runs([self.body.json])[0]


class RunClaims:
    """Claims on runs under ``key_prefix`` for one writer (see the module contract)."""

    def __init__(
        self,
        client: aioredis.Redis,
        key_prefix: str,
        *,
        ttl_ms: int = CLAIM_TTL_MS,
        tenant: str | None = None,
    ) -> None:
        self._keys = Keyspace(key_prefix)
        self.tenant = tenant
        self._segment = tenant_segment(tenant)
        self._client = client
        self.writer = uuid.uuid4().hex
        self._ttl_ms = ttl_ms
        self._take = client.register_script(
            resources.files(__package__).joinpath("claim.lua").read_text()
        )
        self._release = client.register_script(_RELEASE)
        self._wrote = client.register_script(_WROTE)

    def for_tenant(self, tenant: str | None) -> RunClaims:
        """The same writer's claims on ``tenant``'s runs (a process writing for
        callers of several tenants takes each run's claim in its tenant's keys)."""
        if tenant == self.tenant:
            return self
        other = copy.copy(self)
        other.tenant, other._segment = tenant, tenant_segment(tenant)
        return other

    def _key(self, run_id: str) -> str:
        return self._keys.claim(run_id, self.tenant)

    async def take(self, run_id: str) -> Claim:
        reply: list[Any] = await self._take(
            keys=[self._keys.live, self._key(run_id)],
            args=[f"{self._keys.root}:", run_id, self.writer, self._ttl_ms, self._segment],
        )
        taken, last, committed, open_, mine, writer, offset, field = reply
        body = None
        if committed is not None and open_ is not None:
            body = StoredMessages(bytes(committed), bytes(open_))
        return Claim(
            taken=bool(taken),
            last=int(last),
            body=body,
            mine=int(mine) if mine not in (b"", "", None) else None,
            previous=(_text(writer), _text(offset), _text(field)),
        )

    async def wrote(self, run_id: str, topic: str, partition: int, offset: int) -> None:
        """The append landed at ``offset`` of ``topic``'s ``partition``."""
        field = position_field(TopicPartition(topic, partition))
        await self._wrote(keys=[self._key(run_id)], args=[self.writer, offset, self._ttl_ms, field])

    async def give_back(self, run_id: str, claim: Claim) -> None:
        writer, offset, field = claim.previous
        await self._release(keys=[self._key(run_id)], args=[self.writer, writer, offset, field])
