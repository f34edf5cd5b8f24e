"""Synthetic run events for transcript tests and the transcripts benchmark.

``workload(seed, runs=..., sessions=...)`` gives events of many runs
interleaved the way concurrent runs write them (each run's own events in
order): lifecycle, user turns, signed and redacted thinking (signatures with
``+/=``, redacted bytes covering 0x00..0xff), text, parallel tool calls whose
results arrive in any order, usage. Every run is valid for the ledger, so
``reference_transcripts`` (the pure fold) never refuses an event.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from runwire.contract.events import (
    AssistantText,
    Event,
    EventPayload,
    RunCompleted,
    RunPhase,
    RunStarted,
    RunStatus,
    RunStatusChanged,
    Thinking,
    ToolResult,
    ToolUse,
    Usage,
    UserMessage,
)
from runwire.transcript.ledger import build_messages_from_events
from runwire.transcript.messages import Message

_WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "épsilon",
    "ζήτα",
    "東京",
    "naïve",
    "café",
    "✓",
    'quote"',
    "back\\slash",
]


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def _signature(rng: random.Random) -> str:
    return base64.b64encode(rng.randbytes(rng.randint(24, 96))).decode()


def run_payloads(rng: random.Random, run_id: str, turns: int) -> list[EventPayload]:
    """The payloads of one valid run."""
    out: list[EventPayload] = [
        RunStarted(agent_id="agent-1", labels={"tenant": "acme"}),
        RunStatusChanged(status=RunStatus.RUNNING, phase=RunPhase.PROMPTED),
    ]
    tool = 0
    for turn in range(turns):
        out.append(UserMessage(parts=[_text(rng, rng.randint(1, 12))]))
        steps = rng.randint(0, 2)
        for step in range(steps + 1):
            thinking = rng.randint(0, 2)
            for i in range(thinking):
                if rng.random() < 0.3:
                    redacted = bytes(range(256)) if rng.random() < 0.5 else rng.randbytes(40)
                    out.append(Thinking(redacted=redacted, index=i, final=i == thinking - 1))
                else:
                    out.append(
                        Thinking(
                            text=_text(rng, rng.randint(0, 20)),
                            signature=_signature(rng),
                            index=i,
                            final=i == thinking - 1,
                        )
                    )
            if rng.random() < 0.2:
                out.append(Thinking(text="unsigned preview", index=0))  # dropped by the ledger
            for _ in range(rng.randint(0 if step < steps else 1, 2)):
                out.append(AssistantText(text=_text(rng, rng.randint(1, 15))))
            if step == steps:
                break
            uses = [f"{run_id}-tu{tool + k}" for k in range(rng.randint(1, 3))]
            tool += len(uses)
            for use in uses:
                out.append(ToolUse(id=use, name="svc.lookup", input={"q": _text(rng, 3), "n": 1}))
            rng.shuffle(uses)
            for use in uses:
                out.append(
                    ToolResult(
                        tool_use_id=use,
                        content={"rows": [rng.randint(0, 99)], "note": _text(rng, 2)},
                        is_error=rng.random() < 0.1,
                    )
                )
        out.append(Usage(model="m", provider="local", input_tokens=10 * turn, output_tokens=7))
    out.append(RunCompleted(stop_reason="end_turn"))
    return out


def workload(
    seed: int,
    *,
    runs: int,
    sessions: int,
    turns: tuple[int, int] = (1, 3),
    start: datetime | None = None,
) -> list[Event]:
    """Events of ``runs`` runs over ``sessions`` sessions, interleaved, each run in order."""
    rng = random.Random(seed)
    clock = start or datetime(2025, 1, 1, tzinfo=UTC)
    queues: list[list[Event]] = []
    for r in range(runs):
        run_id = f"run-{seed}-{r:05d}"
        session_id = f"sess-{seed}-{r % sessions:04d}"
        payloads = run_payloads(rng, run_id, rng.randint(*turns))
        queues.append(
            [
                Event.create(p, run_id=run_id, session_id=session_id, producer="workload")
                for p in payloads
            ]
        )
    out: list[Event] = []
    live = [q for q in queues if q]
    heads = [0] * len(live)
    active = list(range(len(live)))
    while active:
        k = rng.randrange(len(active))
        i = active[k]
        event = live[i][heads[i]]
        clock += timedelta(milliseconds=rng.randint(1, 3))  # strictly increasing
        out.append(event.model_copy(update={"occurred_at": clock}))
        heads[i] += 1
        if heads[i] == len(live[i]):
            active.pop(k)
    return out


def by_run(events: Iterable[Event]) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = {}
    for event in events:
        if event.run_id is not None:
            out.setdefault(event.run_id, []).append(event)
    return out


def reference_transcripts(events: Sequence[Event]) -> dict[str, list[Message]]:
    """The pure fold: ``build_messages_from_events`` of each run's events, in log order."""
    return {
        run_id: build_messages_from_events(evs, run_id) for run_id, evs in by_run(events).items()
    }
