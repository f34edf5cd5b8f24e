"""``runwire demo``: the main job. Until the orchestrator lands it proves the
pipe end to end: publish one run event to Kafka and read it back by its position.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from rich.console import Console

from runwire.cli.common import fail_on_runwire_error
from runwire.errors import PublishError
from runwire.settings import Settings

console = Console()


def demo() -> None:
    """Publish a run event and read it back from the log (needs `runwire stack up`)."""
    settings = Settings()
    with fail_on_runwire_error():
        event, position, back = asyncio.run(_round_trip(settings))
    console.print(
        f"published to {settings.run_events} at partition {position[0]}, offset {position[1]}"
    )
    console.print_json(json.dumps(event))
    if back != event:
        typer.secho("read back something else", err=True, fg=typer.colors.RED)
        raise typer.Exit(1)
    console.print("[green]read back the same event from the log[/]")


async def _round_trip(settings: Settings) -> tuple[dict[str, Any], tuple[int, int], Any]:
    run_id = str(uuid.uuid4())
    event = {
        "event_id": str(uuid.uuid4()),
        "run_id": run_id,
        "session_id": "demo-session",
        "agent_id": "demo-agent",
        "type": "run_started",
        "occurred_at": datetime.now(UTC).isoformat(),
        "producer": "runwire-demo",
    }
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        client_id=settings.client_id,
    )
    try:
        await producer.start()
        meta = await producer.send_and_wait(
            settings.run_events, json.dumps(event).encode(), key=run_id.encode()
        )
    except Exception as e:
        raise PublishError(
            f"cannot publish to {settings.run_events} on {settings.kafka_bootstrap_servers}: {e!r}"
        ) from e
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(settings.run_events, meta.partition)
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        record = await asyncio.wait_for(consumer.getone(tp), 30)
    finally:
        await consumer.stop()
    return event, (meta.partition, meta.offset), json.loads(record.value)
