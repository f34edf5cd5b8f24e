"""A bounded workload on a cluster, the faults to throw at it, and the invariants after.

Shared by the cluster fault tests and ``bench/soak_cluster.py``.

Contract:
- :class:`Fleet` runs every consumer service (a projector per read model
  of the catalog, the orchestrator, the tool runner) as ``instances`` separate processes each, on
  one deployment; :meth:`Fleet.assert_alive` fails when a process it did not
  kill has exited (a service that could not ride out a fault).
- :func:`drive` issues tool-using runs and session writes, spread over a few
  seconds; a write counts as acknowledged only when the call returned. It
  returns the acknowledged writes and how each run ended.
- :func:`check_invariants` asserts, after a fault: every run ended (completed
  with the right answer, or failed with a readable reason); one answer per
  delta; every acknowledged write in the log and in every projection; the
  Postgres projections equal a clean rebuild; every projection's lag is 0.
- :func:`first_write_after` measures the time to the first successful publish.
- :func:`under_load` is one round: the workload with a fault (and its
  healing) thrown beside it mid-way, then the invariants; its
  :class:`Report` has the recovery times.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from runwire.client import Client, RunOutcome
from runwire.contract.events import EventType, RunStatus, RunStatusChanged
from runwire.errors import RunwireError
from runwire.infra.stack import LocalStack
from runwire.projections.catalog import CATALOG, opener
from runwire.projections.runs.projection import RunsProjection
from runwire.projections.runtime.dead_letters import list_dead_letters
from runwire.projections.runtime.lag import projection_lag
from runwire.projections.runtime.pg import open_pool
from runwire.projections.runtime.rebuild import rebuild
from runwire.projections.sessions.projection import SessionsProjection
from runwire.projections.transcripts.reader import TranscriptCache
from runwire.services.process import ServiceProcess
from runwire.settings import Settings
from tests.integration.orchestration_support import LogRecord, read_run_log
from tests.integration.projection_support import checksums, table

PROJECTIONS = tuple(sorted(CATALOG))  # every read model, each its own consumer service
SERVICES = (*(f"projector-{p}" for p in PROJECTIONS), "orchestrator", "tools")


class Fleet:
    """Every consumer service, ``instances`` processes each (see the module contract)."""

    def __init__(
        self, settings: Settings, log_dir: Path, instances: int = 3, latency: float = 0.2
    ) -> None:
        self.procs: dict[str, list[ServiceProcess]] = {
            name: [
                _process(name, settings, log_dir / f"{name}-{i}.log", latency)
                for i in range(instances)
            ]
            for name in SERVICES
        }
        self.log_dir = log_dir
        self.killed: set[int] = set()  # id() of the processes killed on purpose

    def all(self) -> list[ServiceProcess]:
        return [p for procs in self.procs.values() for p in procs]

    async def start(self) -> None:
        for proc in self.all():
            await proc.start()
        await asyncio.gather(*(p.wait_caught_up(timeout=180) for p in self.all()))

    def assert_alive(self) -> None:
        for name, procs in self.procs.items():
            for i, proc in enumerate(procs):
                process = proc.process
                if id(proc) in self.killed or process is None or process.returncode is None:
                    continue
                log = self.log_dir / f"{name}-{i}.log"
                last = log.read_text().strip().splitlines()[-3:] if log.exists() else []
                raise AssertionError(
                    f"{name} instance {i} exited with {process.returncode}: " + " | ".join(last)
                )

    async def kill_one_of_each(self) -> None:
        """kill -9 the first instance of every service."""
        for procs in self.procs.values():
            self.killed.add(id(procs[0]))
        await asyncio.gather(*(procs[0].kill9() for procs in self.procs.values()))

    async def restart_killed(self) -> None:
        again = [p for p in self.all() if id(p) in self.killed]
        for proc in again:
            await proc.start()
        self.killed.clear()
        await asyncio.gather(*(p.wait_caught_up(timeout=180) for p in again))

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop() for p in self.all()), return_exceptions=True)


def _process(name: str, settings: Settings, log: Path, latency: float) -> ServiceProcess:
    """A service process; model calls and tools take ``latency`` s, so runs are in flight."""
    quiet = ("--log-level", "WARNING")
    if name.startswith("projector-"):
        return ServiceProcess.serve(name, settings, *quiet, log_file=log)
    knob = "--local-latency" if name == "orchestrator" else "--tool-latency"
    argv = ["-m", "runwire.services", name, knob, str(latency), *quiet]
    return ServiceProcess(name, settings, argv, log_file=log)


@dataclass
class Load:
    """What a workload wrote and was told was written, and how its runs ended."""

    tag: str
    runs: dict[str, int] = field(default_factory=dict)  # run id -> the expected answer
    sessions: dict[str, str] = field(default_factory=dict)  # session id -> its metadata mark
    refused: list[str] = field(default_factory=list)  # writes that raised (not acknowledged)
    outcomes: dict[str, RunOutcome] = field(default_factory=dict)


async def drive(
    rw: Client,
    tag: str,
    *,
    runs: int,
    sessions: int,
    seconds: float,
    on_started: Callable[[int], Awaitable[None]] | None = None,
    wait_seconds: float = 120,
) -> Load:
    """Issue ``runs`` tool-using runs over ``sessions`` sessions in about ``seconds``.

    ``on_started(i)`` is awaited after the i-th run was acknowledged (where a
    test throws its fault); then every run is waited for.
    """
    load = Load(tag)
    handles = []
    gap = seconds / max(1, runs)
    for i in range(runs):
        session_id = f"{tag}-s{i % sessions}"
        try:
            if i < sessions:
                await rw.declare_session(session_id, user_id=None, metadata={"mark": f"{tag}-{i}"})
                load.sessions[session_id] = f"{tag}-{i}"
            handle = await rw.run("helper", f"what is {i} * 7 + 1?", session_id=session_id)
        except RunwireError as e:
            load.refused.append(f"run {i}: {e}")
        else:
            handles.append(handle)
            load.runs[handle.run_id] = i * 7 + 1
        if on_started is not None:
            await on_started(i)
        await asyncio.sleep(gap)
    outcomes = await asyncio.gather(*(h.wait(timeout=wait_seconds) for h in handles))
    load.outcomes = {o.run_id: o for o in outcomes}
    return load


async def first_write_after(rw: Client, tag: str, limit: float = 60) -> float:
    """Seconds until a session write is acknowledged, trying every 50 ms."""
    begun = time.monotonic()
    n = 0
    while True:
        n += 1
        try:
            async with asyncio.timeout(2):
                await rw.declare_session(f"{tag}-probe-{n}", user_id=None)
            return time.monotonic() - begun
        except (RunwireError, TimeoutError):
            if time.monotonic() - begun > limit:
                raise
            await asyncio.sleep(0.05)


async def busiest_leader(stack: LocalStack, settings: Settings) -> str:
    """The node that leads the most records of the run-events topic (the busiest partitions)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    await admin.start()
    try:
        (topic,) = await admin.describe_topics([settings.run_events])
        leaders = {p["partition"]: p["leader"] for p in topic["partitions"]}
        ends = await consumer.end_offsets([TopicPartition(settings.run_events, p) for p in leaders])
    finally:
        await consumer.stop()
        await admin.close()
    load: Counter[int] = Counter()
    for tp, end in ends.items():
        load[leaders[tp.partition]] += end
    node = load.most_common(1)[0][0]
    return stack.kafka_nodes[node - 1].name


async def wait_in_sync(settings: Settings, within: float = 60) -> None:
    """Until every partition of the deployment's topics has all its replicas in sync."""
    deadline = time.monotonic() + within
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        while True:
            topics = await admin.describe_topics(
                [settings.run_events, settings.session_events, settings.memory]
            )
            short = [
                (t["topic"], p["partition"])
                for t in topics
                for p in t["partitions"]
                if set(p["isr"]) != set(p["replicas"])
            ]
            if not short:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"replicas still out of sync after {within:.0f}s: {short}")
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


async def wait_caught_up(settings: Settings, fleet: Fleet | None, within: float = 120) -> float:
    """Seconds until every projection's stored positions reach the log end (lag 0)."""
    begun = time.monotonic()
    last: dict[str, int] = {}
    while True:
        if fleet is not None:
            fleet.assert_alive()
        with contextlib.suppress(RunwireError, OSError):
            for name in PROJECTIONS:
                async with opener(name)(settings) as projection:
                    last[name] = (await projection_lag(projection, settings)).lag
            if len(last) == len(PROJECTIONS) and not any(last.values()):
                return time.monotonic() - begun
        if time.monotonic() - begun > within:
            raise AssertionError(f"projections still behind after {within:.0f}s: {last}")
        await asyncio.sleep(0.25)


def _check_answers(load: Load, records: Sequence[LogRecord]) -> None:
    """Every delta of the load's runs has at most one answer; a completed run's, exactly one."""
    by_run: dict[str, list[LogRecord]] = defaultdict(list)
    for record in records:
        if record.event.run_id in load.runs:
            by_run[record.event.run_id].append(record)
    missing = set(load.runs) - set(by_run)
    assert not missing, f"acknowledged runs not in the log: {sorted(missing)[:5]}"
    for run_id, events in by_run.items():
        deltas = [
            r.event.event_id
            for r in events
            if r.event.type in (EventType.USER_MESSAGE, EventType.TOOL_RESULT)
        ]
        closings = Counter(
            r.event.causation_id
            for r in events
            if r.event.type in (EventType.RUN_COMPLETED, EventType.RUN_FAILED)
            or (
                isinstance(r.event.payload, RunStatusChanged)
                and r.event.payload.status is RunStatus.AWAITING_TOOLS
            )
        )
        twice = {k: n for k, n in closings.items() if n > 1}
        assert not twice, f"run {run_id}: a delta answered more than once: {twice}"
        if load.outcomes[run_id].status is RunStatus.COMPLETED:
            assert set(closings) == set(deltas), f"run {run_id}: {closings} for {deltas}"


async def _redis_state(settings: Settings, run_id: str) -> dict[str, object]:
    """What Redis holds about a run (its meta hashes), to tell why a transcript differs."""
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        out: dict[str, object] = {}
        async for key in client.scan_iter(match=f"{settings.redis_key_prefix}*{run_id}*"):
            kind = await client.type(key)
            out[str(key)] = await client.hgetall(key) if kind == b"hash" else str(kind)
        return out
    finally:
        await client.aclose()


def _first_difference(cached: Sequence[object], logged: Sequence[object]) -> str:
    for n, (a, b) in enumerate(zip(cached, logged, strict=False)):
        if a != b:
            return f"message {n}: {a!r} in the cache, {b!r} in the log"
    return f"{len(cached)} messages in the cache, {len(logged)} in the log"


async def check_invariants(settings: Settings, fleet: Fleet | None, load: Load) -> float:
    """The invariants of the module contract; returns the seconds until lag was 0."""
    ended = {RunStatus.COMPLETED, RunStatus.FAILED}
    for run_id, outcome in load.outcomes.items():
        assert outcome.status in ended, f"run {run_id} did not end: {outcome.status}"
        if outcome.status is RunStatus.FAILED:
            assert outcome.error is not None, f"run {run_id}: no reason"
            assert outcome.error.message, f"run {run_id}: an empty reason"
        else:
            assert str(load.runs[run_id]) in outcome.text, f"run {run_id}: {outcome.text!r}"
    caught_up = await wait_caught_up(settings, fleet)
    _check_answers(load, await read_run_log(settings))
    # A fault of the infrastructure is never a record's fault: nothing is dead-lettered.
    dead = await list_dead_letters(settings)
    assert not dead, [
        (d.consumer, d.source_topic, d.source_partition, d.source_offset, d.error_class, d.message)
        for d in dead[:5]
    ]

    pool = await open_pool(settings)
    try:
        rows = await table(pool, "SELECT run_id, status FROM run_status")
        status = {r["run_id"]: r["status"] for r in rows}
        for run_id, outcome in load.outcomes.items():
            assert status.get(run_id) == outcome.status.value, f"run {run_id} in run_status"
        rows = await table(pool, "SELECT session_id, metadata FROM session_index")
        metadata = {r["session_id"]: r["metadata"] for r in rows}
        for session_id, mark in load.sessions.items():
            assert session_id in metadata, f"session {session_id} not in session_index"
            assert mark in str(metadata[session_id]), f"session {session_id}: {metadata}"
        # A clean rebuild from offset 0 gives the same tables.
        before = await checksums(pool)
        runs, sessions = RunsProjection(pool, settings), SessionsProjection(pool, settings)
        await asyncio.gather(rebuild(runs, settings), rebuild(sessions, settings))
        assert await checksums(pool) == before, "a clean rebuild differs from the projection"
    finally:
        await pool.close()

    async with TranscriptCache(settings) as cache:
        for run_id, outcome in load.outcomes.items():
            cached, logged = await cache.get(run_id), outcome.messages
            if cached != logged:
                state = await _redis_state(settings, run_id)
                raise AssertionError(
                    f"transcript of {run_id}: {_first_difference(cached, logged)}; in Redis: {state}"
                )
        assert cache.misses == 0, "transcripts read from the log, not the projection"
    return caught_up


@dataclass
class Report:
    """One fault under load: what it cost and how the runs ended."""

    tag: str
    outage: float  # seconds from the fault until it was healed
    first_write: float  # seconds from the fault until a write was acknowledged
    caught_up: float  # seconds from the last run's end until every projection's lag was 0
    load: Load

    @property
    def ended(self) -> dict[str, int]:
        return dict(Counter(o.status.value for o in self.load.outcomes.values()))

    def line(self) -> str:
        return (
            f"{self.tag}: outage {self.outage:.1f}s, first acknowledged write"
            f" {self.first_write:.2f}s after the fault, projections caught up"
            f" {self.caught_up:.1f}s after the last run ended; runs {self.ended};"
            f" {len(self.load.refused)} write(s) refused"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "fault": self.tag,
            "outage_s": round(self.outage, 2),
            "first_write_s": round(self.first_write, 2),
            "caught_up_s": round(self.caught_up, 2),
            "runs": self.ended,
            "refused": len(self.load.refused),
        }

    def assert_ridden_out(self) -> None:
        """No write refused, and no run failed because of the fault."""
        assert not self.load.refused, self.load.refused
        errors = [o.error for o in self.load.outcomes.values() if o.error is not None]
        assert self.ended == {"completed": len(self.load.runs)}, errors


async def under_load(
    settings: Settings,
    fleet: Fleet,
    rw: Client,
    tag: str,
    fault: Callable[[], Awaitable[object]],
    heal: Callable[[], Awaitable[None]] | None = None,
    *,
    runs: int,
    sessions: int,
    fault_at: int,
    seconds: float = 6,
) -> Report:
    """The workload with ``fault`` (then ``heal``) thrown beside it once ``fault_at``
    runs were acknowledged; the load goes on writing meanwhile. Invariants checked."""
    timings: dict[str, float] = {}
    thrown: list[asyncio.Task[None]] = []

    async def throw() -> None:
        begun = time.monotonic()
        await fault()
        # The first write is measured from the fault, racing the healing.
        first = asyncio.create_task(first_write_after(rw, tag))
        if heal is not None:
            await heal()
        timings["outage"] = time.monotonic() - begun
        timings["first write"] = await first

    async def at(i: int) -> None:
        if i == fault_at:
            thrown.append(asyncio.create_task(throw()))

    load = await drive(rw, tag, runs=runs, sessions=sessions, seconds=seconds, on_started=at)
    assert thrown, "the fault was never thrown"
    await thrown[0]
    caught_up = await check_invariants(settings, fleet, load)
    fleet.assert_alive()
    return Report(tag, timings["outage"], timings["first write"], caught_up, load)
