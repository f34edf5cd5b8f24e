"""The transcript store in Redis (asyncio client); the contract is in
:mod:`runwire.projections.transcripts.store`.

Every write of run data is one call of ``apply.lua`` (EVALSHA, loaded on first
use and again after a server restart): guards first, then writes, inside
Redis' single-threaded script execution, so the guards and the writes are one
atomic step. Reads are pipelined plain commands: a reader may see an older
commit than the one being written, never part of one.

The scripts touch keys of one generation plus the pointers; ``apply.lua``
derives the run and session keys it writes from the tenant's namespace
instead of declaring them in KEYS (fewer arguments to pack per run). On a
Redis Cluster they would need the keyspace in one hash slot, which a
standalone Redis (the supported set-up) does not care about.
"""

from __future__ import annotations

from collections.abc import Collection
from importlib import resources
from typing import Any

import redis.asyncio as aioredis

from runwire.log.records import TopicPartition
from runwire.projections.transcripts.keys import (
    GenerationKeys,
    Keyspace,
    owner_tag,
    parse_position_field,
    position_field,
)
from runwire.projections.transcripts.store import (
    COMMITTED,
    UNKNOWN,
    Commit,
    CommitOutcome,
    Conflict,
    RunBody,
    RunHead,
    RunMeta,
    SessionState,
    Slot,
    Snapshot,
    messages_json,
)

_DROP_CHUNK = 500
_KINDS = {c.value for c in Conflict if c.value}

_ABANDON = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return 0
"""


def _script(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _in_namespace(relative: str) -> str:
    """A generation's key name (relative to it) without its tenant segment."""
    if relative.startswith("t:"):
        return relative[2:].partition(":")[2]
    return relative


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


class RedisTranscriptStore:
    """:class:`~runwire.projections.transcripts.store.TranscriptStore` on Redis.

    ``client`` must be created with ``decode_responses=False`` (the default);
    its lifecycle belongs to the caller.
    """

    def __init__(
        self, client: aioredis.Redis, key_prefix: str, *, ttl_seconds: int | None = None
    ) -> None:
        self._r = client
        self.keys = Keyspace(key_prefix)
        self._ttl = ttl_seconds or 0
        self._apply = client.register_script(_script("apply.lua"))
        self._begin = client.register_script(_script("begin.lua"))
        self._switch = client.register_script(_script("switch.lua"))
        self._abandon = client.register_script(_ABANDON)
        self._snapshot = client.register_script(_script("snapshot.lua"))

    @property
    def client(self) -> aioredis.Redis:
        return self._r

    def _gen(self, generation: int, tenant: str | None = None) -> GenerationKeys:
        return self.keys.generation(generation, tenant)

    # -- reads ---------------------------------------------------------------

    async def generation(self, slot: Slot) -> int | None:
        if slot is Slot.LIVE:
            value = await self._r.get(self.keys.live)
            return int(value) if value is not None else 0
        value = await self._r.get(self.keys.building)
        return int(value) if value is not None else None

    async def positions(
        self, generation: int, partitions: Collection[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        key = self._gen(generation).positions
        if partitions is None:
            stored = await self._r.hgetall(key)
            return {parse_position_field(_text(f)): int(v) for f, v in stored.items()}
        tps = list(partitions)
        if not tps:
            return {}
        values = await self._r.hmget(key, [position_field(tp) for tp in tps])
        return {tp: int(v) if v is not None else 0 for tp, v in zip(tps, values, strict=True)}

    async def heads(
        self, generation: int, run_ids: Collection[str], *, tenant: str | None = None
    ) -> dict[str, RunHead]:
        return (await self.snapshot(generation, (), run_ids, tenant=tenant)).heads

    async def deleted(
        self, generation: int, session_ids: Collection[str], *, tenant: str | None = None
    ) -> set[str]:
        return (await self.snapshot(generation, (), (), session_ids, tenant=tenant)).deleted

    async def snapshot(
        self,
        generation: int,
        partitions: Collection[TopicPartition],
        run_ids: Collection[str],
        session_ids: Collection[str] = (),
        *,
        tenant: str | None = None,
    ) -> Snapshot:
        tps, ids, sessions = list(partitions), list(run_ids), list(session_ids)
        if not tps and not ids and not sessions:
            return Snapshot({}, {}, set(), set())
        keys = self._gen(generation, tenant)
        key_list = [keys.positions, keys.deleted, keys.erased]
        for run_id in ids:
            key_list += [keys.meta(run_id), keys.body(run_id)]
        # One script instead of a pipeline: a batch touches hundreds of runs,
        # and redis-py's per-command cost was most of the read.
        reply = await self._snapshot(
            keys=key_list,
            args=[
                len(tps),
                *(position_field(tp) for tp in tps),
                len(sessions),
                *sessions,
                *ids,
            ],
        )
        positions = {tp: int(v) for tp, v in zip(tps, reply[: len(tps)], strict=True)}
        heads: dict[str, RunHead] = {}
        rest = reply[len(tps) : -2]
        for i, run_id in enumerate(ids):
            fields, exists = rest[2 * i], rest[2 * i + 1]
            if not fields:
                heads[run_id] = UNKNOWN
                continue
            p, f, last, session, t, owner = fields
            meta = RunMeta(
                partition=int(p),
                first=int(f),
                last=int(last),
                session_id=_text(session) if session is not None else None,
                first_ms=int(t),
                owner=_text(owner) if owner is not None else owner_tag(None, None),
            )
            heads[run_id] = RunHead(meta=meta, has_body=bool(exists))
        return Snapshot(
            positions, heads, {_text(d) for d in reply[-2]}, {_text(r) for r in reply[-1]}
        )

    async def session_state(
        self, generation: int, session_id: str, *, tenant: str | None = None
    ) -> SessionState:
        keys = self._gen(generation, tenant)
        pipe = self._r.pipeline(transaction=True)
        pipe.hget(keys.versions, session_id)
        pipe.hget(keys.cleared, session_id)
        pipe.sismember(keys.deleted, session_id)
        pipe.sismember(keys.ended, session_id)
        version, cleared, deleted, ended = await pipe.execute()
        return SessionState(
            version=int(version) if version is not None else 0,
            cleared_ms=int(cleared) if cleared is not None else None,
            deleted=bool(deleted),
            ended=bool(ended),
        )

    async def bodies(
        self, generation: int, run_ids: Collection[str], *, tenant: str | None = None
    ) -> dict[str, RunBody]:
        ids = list(run_ids)
        if not ids:
            return {}
        keys = self._gen(generation, tenant)
        pipe = self._r.pipeline(transaction=False)
        for run_id in ids:
            pipe.hmget(keys.body(run_id), ["c", "n", "o", "st", "a"])
        replies = await pipe.execute()
        return {
            run_id: RunBody(
                committed=_bytes(c),
                count=int(n),
                open=_bytes(o),
                state=_bytes(st),
                applied=_bytes(a),
            )
            for run_id, (c, n, o, st, a) in zip(ids, replies, strict=True)
            if st is not None
        }

    async def messages(
        self, generation: int, run_ids: Collection[str], *, tenant: str | None = None
    ) -> dict[str, bytes]:
        ids = list(run_ids)
        keys = self._gen(generation, tenant)
        if len(ids) == 1:
            replies = [await self._r.hmget(keys.body(ids[0]), ["c", "o"])]
        else:
            pipe = self._r.pipeline(transaction=False)
            for run_id in ids:
                pipe.hmget(keys.body(run_id), ["c", "o"])
            replies = await pipe.execute()
        return {
            run_id: messages_json(_bytes(c), _bytes(o))
            for run_id, (c, o) in zip(ids, replies, strict=True)
            if c is not None and o is not None
        }

    async def session_runs(
        self, generation: int, session_id: str, *, tenant: str | None = None
    ) -> list[str]:
        members = await self._r.zrange(self._gen(generation, tenant).session(session_id), 0, -1)
        return [_text(m) for m in members]

    # -- writes --------------------------------------------------------------

    async def commit(self, commit: Commit) -> CommitOutcome:
        generation = commit.generation
        keys = self._gen(generation)
        pointer = self.keys.live if commit.slot is Slot.LIVE else self.keys.building
        key_list: list[str] = [pointer, keys.positions]
        args: list[str | bytes | int] = [
            str(generation),
            commit.slot.value,
            self._ttl,
            len(commit.positions),
        ]
        for p in commit.positions:
            args += [position_field(p.tp), str(p.expected), str(p.position)]
        # The runs' namespaces once each; a run names its own by number.
        namespaces: dict[str | None, int] = {}
        run_args: list[str | bytes] = []
        for w in commit.runs:
            ns = namespaces.get(w.tenant)
            if ns is None:
                ns = namespaces[w.tenant] = len(namespaces) + 1
            body = w.body
            if body is None:
                mode, count, parts = "", 0, (b"", b"", b"", b"")
            else:
                mode = "r" if isinstance(body, RunBody) else "a"
                count, parts = body.count, (body.committed, body.open, body.state, body.applied)
            named = (
                w.run_id.encode(),
                (w.meta.session_id or "").encode(),
                w.meta.owner.encode(),
            )
            m = w.meta
            run_args.append(
                f"{w.guard.value}|{w.expected_last}|{1 if w.expected_body else 0}|"
                f"{m.partition}|{m.first}|{m.last}|{m.first_ms}|{mode}|{count}|{ns}|"
                + "|".join(str(len(part)) for part in (*named, *parts))
            )
            run_args.append(b"".join((*named, *parts)))
        args.append(len(namespaces))
        args += [self._gen(generation, tenant).base for tenant in namespaces]
        args.append(len(commit.runs))
        args += run_args
        args.append(len(commit.deletions))
        for tenant, session_id in commit.deletions:
            args += [self._gen(generation, tenant).base, session_id]
        args.append(len(commit.erasures))
        for tenant, run_id in commit.erasures:
            args += [self._gen(generation, tenant).base, run_id]
        args.append(len(commit.clears))
        for tenant, session_id, cleared_ms in commit.clears:
            args += [self._gen(generation, tenant).base, session_id, str(cleared_ms)]
        args.append(len(commit.endings))
        for tenant, session_id in commit.endings:
            args += [self._gen(generation, tenant).base, session_id]
        ok, why = await self._apply(keys=key_list, args=args)
        if int(ok) == 1:
            return COMMITTED
        why = _text(why)
        kind = Conflict(why.split(" ", 1)[0]) if why.split(" ", 1)[0] in _KINDS else Conflict.RUN
        return CommitOutcome(ok=False, conflict=why, kind=kind)

    # -- generations -----------------------------------------------------------

    async def begin_generation(self, *, restart: bool = False) -> tuple[int, int | None]:
        building, dropped = await self._begin(
            keys=[self.keys.live, self.keys.building, self.keys.counter],
            args=["1" if restart else "0"],
        )
        return int(building), (int(dropped) if int(dropped) >= 0 else None)

    async def switch(self, generation: int) -> int | None:
        while True:
            live = await self.generation(Slot.LIVE)
            assert live is not None
            old = int(
                await self._switch(
                    keys=[
                        self.keys.live,
                        self.keys.building,
                        self._gen(live).positions,
                        self._gen(generation).positions,
                    ],
                    args=[str(generation), str(live)],
                )
            )
            if old != -2:
                return old if old >= 0 else None

    async def abandon(self, generation: int) -> None:
        await self._abandon(keys=[self.keys.building], args=[str(generation)])

    async def drop_generation(self, generation: int) -> None:
        chunk: list[bytes] = []
        async for key in self._r.scan_iter(match=self._gen(generation).pattern, count=1000):
            chunk.append(key)
            if len(chunk) >= _DROP_CHUNK:
                await self._r.unlink(*chunk)
                chunk = []
        if chunk:
            await self._r.unlink(*chunk)

    async def dump(self, generation: int) -> dict[str, Any]:
        keys = self._gen(generation)
        base = keys.base
        # Versions are not data (a rebuild numbers them differently): left out.
        names = sorted(
            [
                k
                async for k in self._r.scan_iter(match=keys.pattern, count=1000)
                if _in_namespace(_text(k)[len(base) :]) != "ver"
            ]
        )
        pipe = self._r.pipeline(transaction=False)
        for name in names:
            pipe.type(name)
        types = await pipe.execute()
        pipe = self._r.pipeline(transaction=False)
        for name, kind in zip(names, types, strict=True):
            if _text(kind) == "hash":
                pipe.hgetall(name)
            elif _text(kind) == "zset":
                pipe.zrange(name, 0, -1, withscores=True)
            elif _text(kind) == "set":
                pipe.smembers(name)
            else:
                pipe.dump(name)
        contents = await pipe.execute()
        out: dict[str, Any] = {}
        for name, kind, content in zip(names, types, contents, strict=True):
            relative = _text(name)[len(base) :]
            if _text(kind) == "hash":
                fields = {_text(f): _text(v) for f, v in sorted(content.items())}
                if _in_namespace(relative).startswith("meta:"):
                    fields.pop("v", None)  # a session version, not data (see keys)
                out[relative] = fields
            elif _text(kind) == "zset":
                out[relative] = [[_text(m), s] for m, s in content]
            elif _text(kind) == "set":
                out[relative] = sorted(_text(m) for m in content)
            else:
                out[relative] = {"type": _text(kind)}
        return out
