"""What the orchestrator and tool-runner tests share: service processes and a log reader."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from runwire.client import topic_partitions
from runwire.contract.codec import default_codec
from runwire.contract.events import Event, EventType
from runwire.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def service_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process exactly ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWIRE_")}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        env[f"RUNWIRE_{name.upper()}"] = str(value)
    return env


class ServiceProcess:
    """``python -m runwire.services.NAME`` as a child process of the test."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        *,
        instance_id: str | None = None,
        local_latency: float = 0.0,
        tool_latency: float = 0.0,
        max_records: int | None = None,
    ) -> None:
        self.name = name
        self._settings = settings
        self._args = ["-m", f"runwire.services.{name}", "--log-level", "WARNING"]
        if instance_id:
            self._args += ["--instance-id", instance_id]
        if local_latency:
            self._args += ["--local-latency", str(local_latency)]
        if tool_latency:
            self._args += ["--tool-latency", str(tool_latency)]
        if max_records:
            self._args += ["--max-records", str(max_records)]
        self.process: asyncio.subprocess.Process | None = None
        self.output: list[str] = []
        self._caught_up = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._caught_up.clear()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            *self._args,
            cwd=REPO,
            env=service_env(self._settings),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read(self.process))

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.output.append(line)
            if line == f"{self.name} caught up":
                self._caught_up.set()

    async def wait_caught_up(self, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        try:
            async with asyncio.timeout(timeout):
                await self._caught_up.wait()
        except TimeoutError:
            raise AssertionError(
                f"{self.name} did not catch up in {timeout}s; output:\n" + "\n".join(self.output)
            ) from None

    async def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        await self._drain()

    async def stop(self) -> None:
        """SIGTERM and wait (idempotent)."""
        process = self.process
        if process is None or process.returncode is not None:
            await self._drain()
            return
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(30):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
        await self._drain()

    async def _drain(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)


@contextlib.asynccontextmanager
async def service_process(
    name: str, settings: Settings, **options: float | str | None
) -> AsyncIterator[ServiceProcess]:
    process = ServiceProcess(name, settings, **options)  # type: ignore[arg-type]
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


@dataclass(frozen=True)
class LogRecord:
    partition: int
    offset: int
    event: Event


async def read_run_log(settings: Settings) -> list[LogRecord]:
    """Every record of the run-events topic, decoded, partition by partition."""
    codec = default_codec()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, settings.run_events)
        tps = [TopicPartition(settings.run_events, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[LogRecord] = []
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                out.extend(
                    LogRecord(tp.partition, r.offset, codec.decode(r.value)) for r in records
                )
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return out
    finally:
        await consumer.stop()


ANSWER_TYPES = frozenset(
    {
        EventType.THINKING,
        EventType.ASSISTANT_TEXT,
        EventType.TOOL_USE,
        EventType.USAGE,
        EventType.RUN_COMPLETED,
        EventType.RUN_FAILED,
        EventType.RUN_STATUS_CHANGED,
    }
)


def duplicated_ids(records: Sequence[LogRecord], producer: str) -> dict[str, int]:
    """Event ids of ``producer`` written more than once (each record counts)."""
    counts = Counter(r.event.event_id for r in records if r.event.producer == producer)
    return {k: n for k, n in counts.items() if n > 1}


@contextlib.asynccontextmanager
async def projectors(settings: Settings) -> AsyncIterator[None]:
    """The run-status, session-index and transcript-cache projectors, in this process."""
    from runwire.projections.catalog import opener
    from runwire.projections.runtime.consumer import Projector, ProjectorOptions
    from runwire.projections.transcripts.service import open_projection

    options = ProjectorOptions(session_timeout_ms=6000, heartbeat_interval_ms=500)
    async with contextlib.AsyncExitStack() as stack:
        projections = [
            await stack.enter_async_context(opener("runs")(settings)),
            await stack.enter_async_context(opener("sessions")(settings)),
            await stack.enter_async_context(open_projection(settings)),
        ]
        tasks = []
        for projection in projections:
            projector = await stack.enter_async_context(
                Projector(projection, settings, options=options)
            )
            tasks.append(asyncio.create_task(projector.run()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
