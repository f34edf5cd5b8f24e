"""An in-memory run-events log and session builders for the context tests.

:class:`FakeLog` keeps partitions of events at offsets, as Kafka would, with
runs spread over partitions by run id; ``read`` is the reader
``rebuild_history`` takes, ``history`` gives a run as the orchestrator would
read it.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import UTC, datetime

from runwire.context import RunHistory
from runwire.contract.events import Event, EventPayload, RunCompleted, RunStarted
from runwire.transcript.ledger import payloads_for_messages
from runwire.transcript.messages import (
    Message,
    Part,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
)

SESSION = "session-1"
T0_MS = 1_750_000_000_000


class FakeLog:
    """Partitions of events; a run's events all go to one partition."""

    def __init__(self, partitions: int = 3) -> None:
        self.partitions: list[list[Event]] = [[] for _ in range(partitions)]
        self.reads = 0

    def partition_of(self, run_id: str) -> int:
        return zlib.crc32(run_id.encode()) % len(self.partitions)

    def append(self, event: Event) -> tuple[int, int]:
        assert event.run_id is not None
        partition = self.partition_of(event.run_id)
        self.partitions[partition].append(event)
        return partition, len(self.partitions[partition]) - 1

    def publish(self, run_id: str, payloads: Sequence[EventPayload], at_ms: int) -> None:
        when = datetime.fromtimestamp(at_ms / 1000, UTC)
        for payload in payloads:
            self.append(
                Event.create(
                    payload, run_id=run_id, session_id=SESSION, producer="test", occurred_at=when
                )
            )

    def add_run(self, run_id: str, messages: Sequence[Message], at_ms: int) -> None:
        """A whole run: started, its transcript, completed."""
        self.publish(
            run_id, [RunStarted(), *payloads_for_messages(messages), RunCompleted()], at_ms
        )

    def read(self, run_id: str, partition: int, first: int, last: int) -> list[Event]:
        self.reads += 1
        return [e for e in self.partitions[partition][first : last + 1] if e.run_id == run_id]

    async def aread(self, run_id: str, partition: int, first: int, last: int) -> list[Event]:
        return self.read(run_id, partition, first, last)

    def history(self, run_id: str) -> RunHistory:
        partition = self.partition_of(run_id)
        records = list(enumerate(self.partitions[partition]))
        return RunHistory.from_events(run_id, partition, records)


def user(text: str) -> Message:
    return Message(role="user", parts=(TextPart(text=text),))


def assistant(*parts: Part) -> Message:
    return Message(role="assistant", parts=parts)


def signed(text: str) -> ThinkingPart:
    return ThinkingPart(text=text, signature=f"sig-{text}")


def tool_turn(n: int, tool_id: str, *, thinking: bool = True) -> list[Message]:
    """One user turn answered with a calculator call: user, assistant (tool_use),
    user (tool_result), assistant (final text)."""
    think: tuple[Part, ...] = (signed(f"add {n}"),) if thinking else ()
    return [
        user(f"what is {n} + 1?"),
        assistant(
            *think,
            TextPart(text="Let me compute."),
            ToolUsePart(id=tool_id, name="calculator", input={"expression": f"{n} + 1"}),
        ),
        Message(
            role="user",
            parts=(ToolResultPart(tool_use_id=tool_id, content={"value": n + 1}),),
        ),
        assistant(TextPart(text=f"{n} + 1 = {n + 1}.")),
    ]


def chat_turn(text: str, answer: str) -> list[Message]:
    return [user(text), assistant(TextPart(text=answer))]
