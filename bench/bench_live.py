"""Live chunks: how soon a reader sees a token, and how many the pipeline sustains.

Two measurements, on fresh topics / schema / Redis keys of the stack
``Settings()`` points at (``runwire stack up``, or ``RUNWIRE_HOME=.runwire/test``
for the test stack), everything in this one process:

1. **Token latency.** The orchestrator, the tool runner, the run-status and
   session projectors and the HTTP API run here; the local model streams at a
   fixed rate (``--chunk-chars`` characters every ``--interval`` seconds,
   after ``--latency`` seconds of thought, so the readers are connected when it
   starts). Runs are started over HTTP, ``--concurrency`` at a time; each is
   read by an SSE client (``/events?live=true``) and by ``handle.stream()``.
   For every delta the model emits, the time from its emission (the model's
   ``on_chunk``) until a reader holds it: the first token of each answer, and
   every token. The floor, measured in the same run: one small record
   published to the live topic and seen by a live watcher (``raw``).
2. **Chunks/s sustained.** ``--streams`` answers at once, each pushing
   ``--deltas`` deltas as fast as the event loop lets it, published to the
   live topic and read back by a live watcher; deltas/s from the first delta
   to the last one read. Modes: ``batched`` (what the orchestrator does:
   :class:`~runwire.services.orchestrator.streaming.ChunkStream`), ``per
   delta`` (one record per delta, in order, one send in flight per answer),
   and ``raw`` (the same number of records written with ``publish_many``, the
   producer's pipelined limit, then read back).

Prints p50/p99 (ms) and deltas/s with their ratios to ``raw``, writes
bench/results/live.json (with the load average).
Run: .venv/bin/python bench/bench_live.py [--runs N] [--streams S] [--deltas D]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from runwire.client import Client
from runwire.contract.codec import codec_for
from runwire.contract.events import Event, LiveChunk, Stream
from runwire.infra.isolation import isolated_deployment
from runwire.log import Publisher
from runwire.log.live import LiveEmitter, live_watcher
from runwire.log.watcher import RunWatcher
from runwire.projections.runtime.consumer import ProjectorOptions
from runwire.projections.serve import serve_projection
from runwire.providers.base import ChunkHandler, ModelRequest, ModelResponse, StreamDelta
from runwire.providers.local import LocalModel
from runwire.services.api.app import create_app
from runwire.services.api.server import ApiServer
from runwire.services.orchestrator.streaming import ChunkStream
from runwire.services.orchestrator.wiring import orchestrator_service
from runwire.services.run_context import RunContext
from runwire.services.tools.wiring import tool_runner_service
from runwire.settings import Settings

RESULTS = Path(__file__).parent / "results"
KEY = "bench-key-1c7e5a3f9d2b4680"
USER = "bench"
FAST = ProjectorOptions(session_timeout_ms=6000, heartbeat_interval_ms=500, poll_timeout_ms=100)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def machine_uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def ms(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values) * 1000, 2),
        "p99_ms": round(percentile(values, 0.99) * 1000, 2),
    }


# -- 1. token latency -------------------------------------------------------------------


class TimedModel(LocalModel):
    """The local model, noting when it emits each delta: prompt -> [(chars so far, time)]."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.emitted: dict[str, list[tuple[int, float]]] = defaultdict(list)

    async def complete(
        self, request: ModelRequest, *, on_chunk: ChunkHandler | None = None
    ) -> ModelResponse:
        if on_chunk is None:
            return await super().complete(request)
        prompt = request.messages[-1].text()
        log = self.emitted[prompt]
        total = 0

        async def timed(delta: StreamDelta) -> None:
            nonlocal total
            total += len(delta.text)
            log.append((total, time.perf_counter()))
            await on_chunk(delta)

        return await super().complete(request, on_chunk=timed)


def seen_chars(event: Event) -> int:
    payload = event.payload
    assert isinstance(payload, LiveChunk)
    return sum(len(d["text"]) for d in payload.deltas if isinstance(d, dict))


class Readings:
    """When a reader held how many characters of an answer (its first stream only)."""

    def __init__(self) -> None:
        self.points: list[tuple[int, float]] = []
        self._stream: str | None = None
        self._total = 0

    def add(self, event: Event) -> None:
        payload = event.payload
        if not isinstance(payload, LiveChunk) or event.causation_id is None:
            return
        if self._stream is None:
            self._stream = payload.stream_id
        if payload.stream_id != self._stream:
            return  # the first answer of the run is the one measured
        self._total += seen_chars(event)
        self.points.append((self._total, time.perf_counter()))


def latencies(emitted: list[tuple[int, float]], seen: list[tuple[int, float]]) -> list[float]:
    """Per emitted delta: the time until a reader held every character up to its end."""
    out: list[float] = []
    j = 0
    for chars, at in emitted:
        while j < len(seen) and seen[j][0] < chars:
            j += 1
        if j == len(seen):
            break  # not seen live (its answer landed first): not a live latency
        out.append(max(0.0, seen[j][1] - at))
    return out


async def sse_reader(http: httpx.AsyncClient, run_id: str, readings: Readings) -> None:
    event = ""
    async with http.stream(
        "GET", f"/v1/runs/{run_id}/events?live=true", headers={"Authorization": f"Bearer {KEY}"}
    ) as response:
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "live_chunk":
                readings.add(Event.model_validate_json(line[6:]))
            elif line.startswith("data: ") and event == "end":
                return


async def client_reader(client: Client, run_id: str, readings: Readings) -> None:
    async for event in client.handle(run_id).stream():
        if event.stream is Stream.LIVE:
            readings.add(event)


async def raw_floor(settings: Settings, n: int) -> list[float]:
    """One small record on the live topic, published and seen by a live watcher, n times."""
    context = RunContext(run_id="raw-floor")
    out: list[float] = []
    async with Publisher(settings) as publisher, live_watcher(settings, codec_for(settings)) as w:
        partition = w.partition_of(context.run_id)
        sub = await w.subscribe(context.run_id, partition, await w.end_offset(partition))
        for i in range(n):
            event = chunk_event(context.run_id, i)
            started = time.perf_counter()
            await publisher.publish(event)
            await sub.get()
            out.append(time.perf_counter() - started)
            await asyncio.sleep(0.02)
        await w.unsubscribe(sub)
    return out


@contextlib.asynccontextmanager
async def services(settings: Settings, model: LocalModel) -> AsyncIterator[ApiServer]:
    stop = asyncio.Event()
    projectors = [
        asyncio.create_task(serve_projection(name, settings, stop, options=FAST))
        for name in ("runs", "sessions")
    ]
    try:
        async with (
            orchestrator_service(settings, provider=model, history=False),
            tool_runner_service(settings),
            ApiServer(create_app(settings), port=0) as api,
        ):
            yield api
    finally:
        stop.set()
        await asyncio.gather(*projectors)


async def token_latency(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    model = TimedModel(
        chunk_chars=args.chunk_chars, chunk_interval=args.interval, latency=args.latency
    )
    sse: dict[str, Readings] = {}
    sdk: dict[str, Readings] = {}
    prompts: dict[str, str] = {}
    async with (
        services(settings, model) as api,
        httpx.AsyncClient(base_url=api.url, timeout=120.0) as http,
        Client(settings) as client,
    ):
        slots = asyncio.Semaphore(args.concurrency)

        async def one(i: int) -> None:
            async with slots:
                prompt = f"my name is Ada number {i} and my favourite colour is ultramarine"
                started = await http.post(
                    "/v1/runs",
                    json={"prompt": prompt, "agent_id": "bench", "session_id": f"s-{i}"},
                    headers={"Authorization": f"Bearer {KEY}"},
                )
                assert started.status_code == 202, started.text
                run_id = started.json()["run_id"]
                prompts[run_id] = prompt
                sse[run_id], sdk[run_id] = Readings(), Readings()
                await asyncio.wait_for(
                    asyncio.gather(
                        sse_reader(http, run_id, sse[run_id]),
                        client_reader(client, run_id, sdk[run_id]),
                    ),
                    120,
                )

        await one(-1)  # warm-up, not counted
        del prompts[next(iter(prompts))]
        await asyncio.gather(*(one(i) for i in range(args.runs)))
    raw = await raw_floor(settings, args.runs * 4)
    out: dict[str, Any] = {"raw_publish_to_watcher": ms(raw)}
    for name, readings in (("sse", sse), ("client_stream", sdk)):
        first: list[float] = []
        every: list[float] = []
        for run_id, prompt in prompts.items():
            emitted = model.emitted[prompt]
            values = latencies(emitted, readings[run_id].points)
            if values:
                first.append(values[0])
                every.extend(values)
        out[f"{name}_first_token"] = ms(first) | {"answers": len(first)}
        out[f"{name}_every_token"] = ms(every) | {"deltas": len(every)}
        out[f"{name}_first_token_p50_ratio_to_raw"] = round(
            statistics.median(first) / statistics.median(raw), 2
        )
    return out


# -- 2. chunks/s ------------------------------------------------------------------------


class ReadBack:
    """A live watcher's subscriptions to some runs, counting their records as they come."""

    def __init__(self, watcher: RunWatcher, run_ids: list[str]) -> None:
        self._watcher = watcher
        self._run_ids = run_ids
        self._subs: list[Any] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.count = 0
        self.target: int | None = None
        self.done = asyncio.Event()
        self.last = 0.0

    async def __aenter__(self) -> ReadBack:
        for run_id in self._run_ids:
            partition = self._watcher.partition_of(run_id)
            start = await self._watcher.end_offset(partition)
            self._subs.append(await self._watcher.subscribe(run_id, partition, start))
        self._tasks = [asyncio.create_task(self._drain(s)) for s in self._subs]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sub in self._subs:
            await self._watcher.unsubscribe(sub)

    async def _drain(self, sub: Any) -> None:
        while True:
            _, event = await sub.queue.get()
            if event is not None:
                self.count += 1
                self.last = time.perf_counter()
                self._check()

    def expect(self, records: int) -> None:
        self.target = records
        self._check()

    def _check(self) -> None:
        if self.target is not None and self.count >= self.target:
            self.done.set()


def chunk_event(run_id: str, seq: int) -> Event:
    chunk = LiveChunk(stream_id="x", seq=seq, deltas=[{"kind": "text", "index": 0, "text": "abcd"}])
    return Event.create(chunk, run_id=run_id, causation_id="cause")


async def throughput(
    settings: Settings, args: argparse.Namespace, mode: str, tag: int
) -> dict[str, Any]:
    """Deltas/s from the first delta to the last record read back (see the module doc)."""
    contexts = [RunContext(run_id=f"tp-{mode}-{tag}-{i}") for i in range(args.streams)]
    streams: list[ChunkStream] = []
    emitters: list[LiveEmitter] = []

    async def push(context: RunContext) -> None:
        if mode == "batched":
            stream = ChunkStream(publisher, context, "cause", producer="bench")
            streams.append(stream)
            for _ in range(args.deltas):
                await stream.on_chunk(StreamDelta(kind="text", index=0, text="abcd"))
                await asyncio.sleep(0)  # a model's stream yields between deltas
            await stream.flush()
        else:
            emitter = LiveEmitter(publisher)
            emitters.append(emitter)
            for j in range(args.deltas):
                emitter.emit(chunk_event(context.run_id, j))
                await asyncio.sleep(0)
            await emitter.flush()

    async with (
        Publisher(settings) as publisher,
        live_watcher(settings, codec_for(settings)) as watcher,
        ReadBack(watcher, [c.run_id for c in contexts]) as reader,
    ):
        await publisher.publish(chunk_event("warm-up", 0))
        started = time.perf_counter()
        if mode == "raw":
            events = [chunk_event(c.run_id, j) for j in range(args.deltas) for c in contexts]
            await publisher.publish_many(events)
            records = len(events)
        else:
            await asyncio.gather(*(push(c) for c in contexts))
            records = sum(s.records for s in streams) + sum(e.sent for e in emitters)
        published = time.perf_counter()
        reader.expect(records)
        await asyncio.wait_for(reader.done.wait(), 300)
        finished = reader.last
    deltas = args.streams * args.deltas
    seconds = finished - started
    return {
        "deltas": deltas,
        "records": records,
        "deltas_per_record": round(deltas / max(1, records), 1),
        "publish_seconds": round(published - started, 3),
        "seconds_until_all_read": round(seconds, 3),
        "deltas_per_second": round(deltas / seconds),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--chunk-chars", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--deltas", type=int, default=2000)
    args = parser.parse_args()
    uptime_before = machine_uptime()
    load_before = os.getloadavg()[0]
    results: dict[str, Any] = {
        "model": {
            "chunk_chars": args.chunk_chars,
            "interval_seconds": args.interval,
            "deltas_per_second_per_answer": round(1 / args.interval, 1),
            "runs": args.runs,
            "concurrency": args.concurrency,
        },
        "cpus": os.cpu_count(),
        "load_average_1m_at_start": round(load_before, 2),
    }
    async with isolated_deployment(Settings(), "benchlive") as base:
        settings = base.model_copy(update={"api_keys": SecretStr(f"{KEY}:{USER}")})
        results["latency"] = await token_latency(settings, args)
        rates: dict[str, Any] = {"streams": args.streams, "deltas_per_stream": args.deltas}
        for tag, mode in enumerate(("raw", "batched", "per_delta")):
            rates[mode] = await throughput(settings, args, mode, tag)
        for mode in ("batched", "per_delta"):
            rates[mode]["ratio_to_raw"] = round(
                rates[mode]["deltas_per_second"] / rates["raw"]["deltas_per_second"], 2
            )
        results["throughput"] = rates
    results["load_average_1m"] = round(os.getloadavg()[0], 2)
    results["uptime"] = {"at_start": uptime_before, "at_end": machine_uptime()}
    print(json.dumps(results, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "live.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
