"""An in-memory :class:`~runwire.projections.transcripts.store.TranscriptStore`
for unit tests: the same guards and writes as ``apply.lua``, on dicts.

``expire(generation, run_id)`` drops a transcript body the way a Redis TTL
would; nothing expires on its own.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any

from runwire.log.records import TopicPartition
from runwire.projections.transcripts.keys import position_field, tenant_segment
from runwire.projections.transcripts.store import (
    COMMITTED,
    UNKNOWN,
    BodyAppend,
    Commit,
    CommitOutcome,
    Conflict,
    Guard,
    RunBody,
    RunHead,
    RunMeta,
    SessionState,
    Slot,
    Snapshot,
)


@dataclass
class _Generation:
    """The positions of a generation and its tenants' namespaces."""

    positions: dict[TopicPartition, int] = field(default_factory=dict)
    tenants: dict[str | None, _Namespace] = field(default_factory=dict)

    def of(self, tenant: str | None) -> _Namespace:
        return self.tenants.setdefault(tenant, _Namespace())


@dataclass
class _Namespace:
    """One tenant's runs and sessions in a generation (see ``keys``)."""

    meta: dict[str, RunMeta] = field(default_factory=dict)
    bodies: dict[str, RunBody] = field(default_factory=dict)
    sessions: dict[str, dict[str, int]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    erased: set[str] = field(default_factory=set)
    cleared: dict[str, int] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)
    versions: dict[str, int] = field(default_factory=dict)

    def bump(self, session_id: str) -> None:
        """A new version of the session (as ``apply.lua``: above the old one, at
        least the clock in microseconds)."""
        old = self.versions.get(session_id, 0)
        self.versions[session_id] = max(old + 1, time.time_ns() // 1000)

    def erase(self, run_id: str) -> None:
        self.meta.pop(run_id, None)
        self.bodies.pop(run_id, None)
        self.erased.add(run_id)


def _appended(body: RunBody, change: BodyAppend) -> RunBody:
    committed = body.committed
    if change.committed:
        committed = committed + b"," + change.committed if committed else change.committed
    return RunBody(
        committed=committed,
        count=body.count + change.count,
        open=change.open,
        state=change.state,
        applied=body.applied + change.applied,
    )


class InMemoryTranscriptStore:
    def __init__(self) -> None:
        self._generations: dict[int, _Generation] = {}
        self._live = 0
        self._building: int | None = None
        self._counter = 0
        self._lock = asyncio.Lock()
        self.commits = 0

    def _g(self, generation: int) -> _Generation:
        return self._generations.setdefault(generation, _Generation())

    def expire(self, generation: int, run_id: str, tenant: str | None = None) -> None:
        self._g(generation).of(tenant).bodies.pop(run_id, None)

    def lose_positions(self, generation: int) -> None:
        """Forget the generation's positions, like deleting its ``pos`` hash."""
        self._g(generation).positions.clear()

    def flush(self) -> None:
        """Forget everything, like Redis FLUSHDB."""
        self._generations.clear()
        self._live, self._building, self._counter = 0, None, 0

    async def generation(self, slot: Slot) -> int | None:
        return self._live if slot is Slot.LIVE else self._building

    async def positions(
        self, generation: int, partitions: Collection[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        stored = self._g(generation).positions
        if partitions is None:
            return dict(stored)
        return {tp: stored.get(tp, 0) for tp in partitions}

    async def heads(
        self, generation: int, run_ids: Collection[str], *, tenant: str | None = None
    ) -> dict[str, RunHead]:
        g = self._g(generation).of(tenant)
        out: dict[str, RunHead] = {}
        for run_id in run_ids:
            meta = g.meta.get(run_id)
            out[run_id] = UNKNOWN if meta is None else RunHead(meta, run_id in g.bodies)
        return out

    async def snapshot(
        self,
        generation: int,
        partitions: Collection[TopicPartition],
        run_ids: Collection[str],
        session_ids: Collection[str] = (),
        *,
        tenant: str | None = None,
    ) -> Snapshot:
        heads = await self.heads(generation, run_ids, tenant=tenant)
        sessions = {h.meta.session_id for h in heads.values() if h.meta and h.meta.session_id}
        return Snapshot(
            await self.positions(generation, partitions),
            heads,
            await self.deleted(generation, sessions | set(session_ids), tenant=tenant),
            self._g(generation).of(tenant).erased.intersection(run_ids),
        )

    async def deleted(
        self, generation: int, session_ids: Collection[str], *, tenant: str | None = None
    ) -> set[str]:
        return self._g(generation).of(tenant).deleted.intersection(session_ids)

    async def session_state(
        self, generation: int, session_id: str, *, tenant: str | None = None
    ) -> SessionState:
        g = self._g(generation).of(tenant)
        return SessionState(
            g.versions.get(session_id, 0),
            g.cleared.get(session_id),
            session_id in g.deleted,
            session_id in g.ended,
        )

    async def bodies(
        self, generation: int, run_ids: Collection[str], *, tenant: str | None = None
    ) -> dict[str, RunBody]:
        g = self._g(generation).of(tenant)
        return {r: g.bodies[r] for r in run_ids if r in g.bodies}

    async def messages(
        self, generation: int, run_ids: Collection[str], *, tenant: str | None = None
    ) -> dict[str, bytes]:
        bodies = self._g(generation).of(tenant).bodies
        return {r: bodies[r].messages for r in run_ids if r in bodies}

    async def session_runs(
        self, generation: int, session_id: str, *, tenant: str | None = None
    ) -> list[str]:
        runs = self._g(generation).of(tenant).sessions.get(session_id, {})
        return [r for r, _ in sorted(runs.items(), key=lambda item: (item[1], item[0]))]

    async def commit(self, commit: Commit) -> CommitOutcome:
        async with self._lock:
            pointer = self._live if commit.slot is Slot.LIVE else self._building
            if pointer != commit.generation:
                return CommitOutcome(
                    False,
                    f"generation {commit.generation} is not {commit.slot}",
                    Conflict.GENERATION,
                )
            gen = self._g(commit.generation)
            for p in commit.positions:
                stored = gen.positions.get(p.tp, 0)
                if stored != p.expected:
                    return CommitOutcome(
                        False,
                        f"position of {position_field(p.tp)} is {stored}, read {p.expected}",
                        Conflict.POSITION,
                    )
            for w in commit.runs:
                g = gen.of(w.tenant)
                if w.meta.session_id in g.deleted:
                    return CommitOutcome(
                        False,
                        f"deleted session {w.meta.session_id} of run {w.run_id} is erased",
                        Conflict.DELETED,
                    )
                if w.run_id in g.erased:
                    return CommitOutcome(
                        False, f"deleted session took run {w.run_id} with it", Conflict.DELETED
                    )
                meta = g.meta.get(w.run_id)
                last = -1 if meta is None else meta.last
                has_body = w.run_id in g.bodies
                if w.guard is Guard.EXACT:
                    if last != w.expected_last or has_body != w.expected_body:
                        return CommitOutcome(
                            False, f"run {w.run_id} changed since it was read", Conflict.RUN
                        )
                elif not (last < w.meta.last or (last == w.meta.last and not has_body)):
                    return CommitOutcome(
                        False, f"run {w.run_id} is already at {last}", Conflict.RUN
                    )
            for p in commit.positions:
                gen.positions[p.tp] = p.position
            for w in commit.runs:
                g = gen.of(w.tenant)
                meta = g.meta.get(w.run_id)
                if meta is None:
                    g.meta[w.run_id] = w.meta
                    if w.meta.session_id:
                        g.sessions.setdefault(w.meta.session_id, {}).setdefault(
                            w.run_id, w.meta.first_ms
                        )
                else:
                    g.meta[w.run_id] = replace(meta, last=w.meta.last)
                if isinstance(w.body, RunBody):
                    g.bodies[w.run_id] = w.body
                elif w.body is not None:
                    g.bodies[w.run_id] = _appended(g.bodies[w.run_id], w.body)
                if w.meta.session_id:
                    g.bump(w.meta.session_id)
            for tenant, session_id in commit.deletions:
                g = gen.of(tenant)
                g.deleted.add(session_id)
                g.cleared.pop(session_id, None)
                g.ended.discard(session_id)
                g.bump(session_id)
                for run_id in g.sessions.pop(session_id, {}):
                    g.erase(run_id)
            for tenant, run_id in commit.erasures:
                g = gen.of(tenant)
                meta = g.meta.get(run_id)
                if meta is not None and meta.session_id in g.sessions:
                    index = g.sessions[meta.session_id]
                    index.pop(run_id, None)
                    if not index:
                        del g.sessions[meta.session_id]  # as Redis drops an empty zset
                if meta is not None and meta.session_id:
                    g.bump(meta.session_id)
                g.erase(run_id)
            for tenant, session_id, cleared_ms in commit.clears:
                g = gen.of(tenant)
                if session_id not in g.deleted:
                    g.cleared[session_id] = cleared_ms
                    g.bump(session_id)
            for tenant, session_id in commit.endings:
                g = gen.of(tenant)
                if session_id not in g.deleted and session_id not in g.ended:
                    g.ended.add(session_id)
                    g.bump(session_id)
            self.commits += 1
            return COMMITTED

    async def begin_generation(self, *, restart: bool = False) -> tuple[int, int | None]:
        async with self._lock:
            if self._building is not None and not restart:
                return self._building, None
            dropped = self._building
            self._counter = max(self._counter + 1, self._live + 1, (dropped or 0) + 1)
            self._building = self._counter
            return self._building, dropped

    async def switch(self, generation: int) -> int | None:
        async with self._lock:
            if self._building != generation:
                return None
            built = self._g(generation).positions
            if any(built.get(tp, 0) < p for tp, p in self._g(self._live).positions.items()):
                return None
            old, self._live, self._building = self._live, generation, None
            return old

    async def abandon(self, generation: int) -> None:
        async with self._lock:
            if self._building == generation:
                self._building = None

    async def drop_generation(self, generation: int) -> None:
        self._generations.pop(generation, None)

    async def dump(self, generation: int) -> dict[str, Any]:
        gen = self._g(generation)
        out: dict[str, Any] = {}
        if gen.positions:
            out["pos"] = {position_field(tp): str(p) for tp, p in sorted(gen.positions.items())}
        for tenant, g in gen.tenants.items():
            segment = tenant_segment(tenant)
            out.update({segment + k: v for k, v in self._dump_namespace(g).items()})
        return dict(sorted(out.items()))

    @staticmethod
    def _dump_namespace(g: _Namespace) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for run_id, meta in g.meta.items():
            fields = {
                "p": meta.partition,
                "f": meta.first,
                "l": meta.last,
                "t": meta.first_ms,
                "u": meta.owner,
            }
            text = {k: str(v) for k, v in fields.items()}
            if meta.session_id:
                text["s"] = meta.session_id
            out[f"meta:{run_id}"] = dict(sorted(text.items()))
        for run_id, body in g.bodies.items():
            out[f"run:{run_id}"] = {
                "a": body.applied.decode(),
                "c": body.committed.decode(),
                "n": str(body.count),
                "o": body.open.decode(),
                "st": body.state.decode(),
            }
        for session_id, runs in g.sessions.items():
            ordered = sorted(runs.items(), key=lambda item: (item[1], item[0]))
            out[f"session:{session_id}"] = [[r, float(s)] for r, s in ordered]
            owners = Counter(g.meta[r].owner for r in runs)
            if owners:
                out[f"owners:{session_id}"] = {o: str(n) for o, n in sorted(owners.items())}
        if g.deleted:
            out["deleted"] = sorted(g.deleted)
        if g.erased:
            out["erased"] = sorted(g.erased)
        if g.cleared:
            out["cleared"] = {s: str(ms) for s, ms in sorted(g.cleared.items())}
        if g.ended:
            out["ended"] = sorted(g.ended)
        return out
