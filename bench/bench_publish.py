"""Publish throughput of runwire's Publisher vs raw aiokafka, same settings, same run.

Both sides use the producer options the Publisher uses (acks=all, idempotence,
compression, linger, batch size from Settings) against the same cluster, and
write the same events with the same keys and headers to fresh topics.

- ``raw``: what a service would write by hand with aiokafka and fastavro:
  encode a ready-made record dict with ``schemaless_writer`` after the
  single-object header, then ``producer.send``; a chunk at a time, then await
  the futures. The SDK side pays for everything it adds: model -> record
  (JSON fields), the size check, routing, headers, positions.
- ``transport``: aiokafka alone sending bytes encoded beforehand (an upper
  bound no serializing publisher can reach; shown for scale).
- one by one: ``await Publisher.publish`` vs ``await producer.send_and_wait``
  (latency bound; what a caller that waits for each position gets).

Run against a running stack (``runwire stack up``, or
``RUNWIRE_HOME=.runwire/test`` for the test stack):
    .venv/bin/python bench/bench_publish.py [--events N] [--repeat K]
Writes bench/results/publish.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from fastavro import parse_schema, schemaless_writer

from bench_codec import events as sample_events
from runwire.contract.events import Event
from runwire.contract.records import to_record
from runwire.contract.routing import record_headers, record_key, topic_for
from runwire.infra.topics import load_topics, provision_topics
from runwire.log import Publisher
from runwire.log.clients import producer_options
from runwire.settings import Settings

RESULTS = Path(__file__).parent / "results"
CHUNK = 1_000


async def best_rate(work: Callable[[], Awaitable[int]], repeat: int) -> float:
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        count = await work()
        best = max(best, count / (time.perf_counter() - start))
    return best


async def measure(
    settings: Settings, events: list[Event], serial: int, repeat: int
) -> dict[str, Any]:
    publisher = Publisher(settings)
    raw = AIOKafkaProducer(**producer_options(settings))
    codec = publisher._codec  # the same codec, so both sides send identical bytes
    prepared = [
        (
            topic_for(e.stream, settings),
            codec.encode(e),
            record_key(e),
            record_headers(e, codec.writer_schema(e.type).fingerprint),
        )
        for e in events
    ]
    parsed = {
        t: parse_schema(dict(codec.writer_schema(t).definition)) for t in {e.type for e in events}
    }
    by_hand = [
        (
            topic,
            b"\xc3\x01" + codec.writer_schema(e.type).fingerprint,
            parsed[e.type],
            to_record(e),
            key,
            headers,
        )
        for e, (topic, _, key, headers) in zip(events, prepared, strict=True)
    ]
    async with publisher:
        await raw.start()
        try:

            async def raw_pipelined() -> int:
                for i in range(0, len(by_hand), CHUNK):
                    futures = []
                    for topic, header, schema, record, key, headers in by_hand[i : i + CHUNK]:
                        buffer = io.BytesIO()
                        buffer.write(header)
                        schemaless_writer(buffer, schema, record)
                        value = buffer.getvalue()
                        futures.append(await raw.send(topic, value, key=key, headers=headers))
                    await asyncio.gather(*futures)
                return len(by_hand)

            async def transport_pipelined() -> int:
                for i in range(0, len(prepared), CHUNK):
                    futures = [
                        await raw.send(topic, value, key=key, headers=headers)
                        for topic, value, key, headers in prepared[i : i + CHUNK]
                    ]
                    await asyncio.gather(*futures)
                return len(prepared)

            async def sdk_pipelined() -> int:
                for i in range(0, len(events), CHUNK):
                    await publisher.publish_many(events[i : i + CHUNK])
                return len(events)

            async def raw_serial() -> int:
                for topic, value, key, headers in prepared[:serial]:
                    await raw.send_and_wait(topic, value, key=key, headers=headers)
                return serial

            async def sdk_serial() -> int:
                for event in events[:serial]:
                    await publisher.publish(event)
                return serial

            await raw_pipelined()  # warm up connections, metadata, JIT-free but cache-warm
            await sdk_pipelined()
            rates = dict.fromkeys(("raw", "transport", "sdk", "raw_serial", "sdk_serial"), 0.0)
            pipelined_pairs: list[float] = []
            serial_pairs: list[float] = []
            # Interleave the sides so that noise on a shared machine hits both;
            # each round pairs a raw and an SDK measurement taken back to back.
            for _ in range(repeat):
                raw_rate = await best_rate(raw_pipelined, 1)
                sdk_rate = await best_rate(sdk_pipelined, 1)
                pipelined_pairs.append(sdk_rate / raw_rate)
                transport_rate = await best_rate(transport_pipelined, 1)
                raw_serial_rate = await best_rate(raw_serial, 1)
                sdk_serial_rate = await best_rate(sdk_serial, 1)
                serial_pairs.append(sdk_serial_rate / raw_serial_rate)
                for name, rate in (
                    ("raw", raw_rate),
                    ("sdk", sdk_rate),
                    ("transport", transport_rate),
                    ("raw_serial", raw_serial_rate),
                    ("sdk_serial", sdk_serial_rate),
                ):
                    rates[name] = max(rates[name], rate)
        finally:
            await raw.stop()
    return {
        "events_per_round": len(events),
        "serial_events_per_round": serial,
        "mean_event_bytes": round(sum(len(p[1]) for p in prepared) / len(prepared)),
        "compression": settings.producer_compression,
        "linger_ms": settings.producer_linger_ms,
        "raw_pipelined_per_s": round(rates["raw"]),
        "sdk_pipelined_per_s": round(rates["sdk"]),
        "pipelined_ratio_of_bests": round(rates["sdk"] / rates["raw"], 3),
        "pipelined_ratio_median_of_pairs": round(statistics.median(pipelined_pairs), 3),
        "transport_only_per_s": round(rates["transport"]),
        "sdk_vs_transport_only": round(rates["sdk"] / rates["transport"], 3),
        "raw_one_by_one_per_s": round(rates["raw_serial"]),
        "sdk_one_by_one_per_s": round(rates["sdk_serial"]),
        "one_by_one_ratio_of_bests": round(rates["sdk_serial"] / rates["raw_serial"], 3),
        "one_by_one_ratio_median_of_pairs": round(statistics.median(serial_pairs), 3),
        "goal_ratio": 0.8,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=6_500)
    parser.add_argument("--serial", type=int, default=200, help="events in the one-by-one rounds")
    parser.add_argument("--repeat", type=int, default=8)
    args = parser.parse_args()

    base = Settings()
    settings = base.model_copy(update={"topic_prefix": f"bench-{uuid.uuid4().hex[:8]}."})
    await provision_topics(settings)
    try:
        events = sample_events(max(1, args.events // 13))
        result = await measure(settings, events, args.serial, args.repeat)
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
        await admin.start()
        with contextlib.suppress(Exception):
            await admin.delete_topics([settings.topic_for(spec.id) for spec in load_topics()])
        await admin.close()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "publish.json").write_text(json.dumps(result, indent=2) + "\n")
    for key, value in result.items():
        print(f"{key:>34}: {value}")


if __name__ == "__main__":
    asyncio.run(main())
