"""The run event stream: SSE framing, order, end, Last-Event-ID, keepalive, errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from runwire.contract.events import (
    AssistantText,
    Event,
    LiveChunk,
    RunCompleted,
    RunStarted,
    ToolUse,
    UserMessage,
)
from runwire.errors import ContractError
from runwire.services.api.sse import message, run_event_stream
from tests.unit.api_twins import ALICE, BOB, Twins, auth, client, make_run, twin_app

RUN = "r-1"


def run_events() -> list[Event]:
    payloads = [
        RunStarted(agent_id="a"),
        UserMessage(parts=["hi"]),
        ToolUse(id="tu-1", name="calculator", input={"expression": "1+1"}),
        AssistantText(text="two\nlines"),
        RunCompleted(stop_reason="end_turn"),
    ]
    return [Event.create(p, run_id=RUN) for p in payloads]


async def from_list(events: list[Event]) -> AsyncIterator[Event]:
    for event in events:
        yield event


def parse(body: bytes) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for block in body.decode().split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line:
                key, _, value = line.partition(": ")
                fields[key] = fields.get(key, "") + value if key == "data" else value
        if fields:
            out.append(fields)
    return out


async def collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


def test_a_message_puts_each_line_of_data_on_its_own_data_line() -> None:
    assert message("a\nb", event="x", event_id="7") == b"id: 7\nevent: x\ndata: a\ndata: b\n\n"


async def test_events_come_in_order_then_end_with_the_status() -> None:
    events = run_events()
    body = await collect(run_event_stream(RUN, from_list(events)))
    parsed = parse(body)
    assert body.startswith(b"retry: 2000\n\n")
    messages = parsed[1:]
    assert [m["id"] for m in messages[:-1]] == [e.event_id for e in events]
    assert [m["event"] for m in messages[:-1]] == [e.type.value for e in events]
    assert [Event.model_validate_json(m["data"]) for m in messages[:-1]] == events
    assert messages[-1] == {
        "event": "end",
        "data": json.dumps({"run_id": RUN, "status": "completed"}),
    }


async def test_a_reconnecting_client_gets_only_what_follows_its_last_event() -> None:
    events = run_events()
    body = await collect(run_event_stream(RUN, from_list(events), last_event_id=events[2].event_id))
    ids = [m.get("id") for m in parse(body)[1:]]
    assert ids == [events[3].event_id, events[4].event_id, None]  # None: the end message


def with_live(events: list[Event]) -> list[Event]:
    """``events`` with a live chunk after each of the first four."""
    out: list[Event] = []
    for i, event in enumerate(events):
        out.append(event)
        if i < 4:
            chunk = LiveChunk(
                stream_id="s", seq=i, deltas=[{"kind": "text", "index": 0, "text": "t"}]
            )
            out.append(Event.create(chunk, run_id=RUN, causation_id=events[1].event_id))
    return out


async def test_live_events_come_without_an_id_so_last_event_id_stays_canonical() -> None:
    events = run_events()
    parsed = parse(await collect(run_event_stream(RUN, from_list(with_live(events)))))[1:-1]
    assert [m["event"] for m in parsed].count("live_chunk") == 4
    assert all("id" not in m for m in parsed if m["event"] == "live_chunk")
    assert [m["id"] for m in parsed if "id" in m] == [e.event_id for e in events]
    # A reconnecting client gets the live events only after its last canonical one.
    again = parse(
        await collect(
            run_event_stream(RUN, from_list(with_live(events)), last_event_id=events[2].event_id)
        )
    )[1:-1]
    assert [m["event"] for m in again] == [
        "live_chunk",
        "assistant_text",
        "live_chunk",
        "run_completed",
    ]


async def test_an_idle_stream_sends_keepalive_comments() -> None:
    gate = asyncio.Event()

    async def slow() -> AsyncIterator[Event]:
        await gate.wait()
        yield run_events()[-1]

    stream = run_event_stream(RUN, slow(), keepalive=0.01)
    first = [await anext(stream), await anext(stream), await anext(stream)]
    gate.set()
    rest = await collect(stream)
    assert first == [b"retry: 2000\n\n", b": keepalive\n\n", b": keepalive\n\n"]
    assert b"event: run_completed" in rest
    assert b"event: end" in rest


async def test_a_failing_log_read_ends_the_stream_with_an_error_message() -> None:
    async def broken() -> AsyncIterator[Event]:
        yield run_events()[0]
        raise ConnectionError("broker 10.0.0.7:9092 gone")

    parsed = parse(await collect(run_event_stream(RUN, broken())))
    assert [m.get("event") for m in parsed[1:]] == ["run_started", "error"]
    error = json.loads(parsed[-1]["data"])
    # The failure's kind, never the library's words (they may name hosts and ports).
    assert error["error"] == "unavailable"
    assert error["retriable"] is True
    assert "ConnectionError" in error["message"]
    assert "10.0.0.7" not in parsed[-1]["data"]


async def test_a_failure_that_retrying_cannot_mend_says_so() -> None:
    async def broken() -> AsyncIterator[Event]:
        yield run_events()[0]
        raise ContractError("a record at runwire.run-events[3]@17 is not an event")

    parsed = parse(await collect(run_event_stream(RUN, broken())))
    error = json.loads(parsed[-1]["data"])
    assert error["error"] == "internal"
    assert error["retriable"] is False
    assert "run-events" not in parsed[-1]["data"]


async def test_closing_the_stream_closes_the_log_reader() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[Event]:
        try:
            yield run_events()[0]
            await asyncio.Event().wait()
        finally:
            closed.set()

    stream = run_event_stream(RUN, endless(), keepalive=60)
    await anext(stream)  # retry
    await anext(stream)  # run_started
    await stream.aclose()  # the client went away
    assert closed.is_set()


async def test_the_route_streams_the_callers_run_only() -> None:
    twins = Twins()
    twins.add(make_run(RUN, "alice"))
    twins.log[RUN] = run_events()
    async with client(twin_app(twins)) as http:
        mine = await http.get(f"/v1/runs/{RUN}/events", headers=auth(ALICE))
        resumed = await http.get(
            f"/v1/runs/{RUN}/events",
            headers={**auth(ALICE), "Last-Event-ID": twins.log[RUN][3].event_id},
        )
        theirs = await http.get(f"/v1/runs/{RUN}/events", headers=auth(BOB))
        metrics = await http.get("/metrics")
    assert mine.status_code == 200
    assert mine.headers["content-type"].startswith("text/event-stream")
    assert mine.headers["cache-control"] == "no-cache"
    events = [m["event"] for m in parse(mine.content)[1:]]
    assert events == [
        "run_started",
        "user_message",
        "tool_use",
        "assistant_text",
        "run_completed",
        "end",
    ]
    assert [m["event"] for m in parse(resumed.content)[1:]] == ["run_completed", "end"]
    assert theirs.status_code == 404
    assert "runwire_api_open_streams 0.0" in metrics.text


async def test_a_closing_server_ends_the_stream_without_an_end_message() -> None:
    closing = asyncio.Event()

    async def endless() -> AsyncIterator[Event]:
        yield run_events()[0]
        await asyncio.Event().wait()

    stream = run_event_stream(RUN, endless(), keepalive=60, closing=closing)
    head = [await anext(stream), await anext(stream)]
    closing.set()
    rest = await collect(stream)
    assert head[1].startswith(b"id: ")
    assert rest == b": server closing; reconnect with Last-Event-ID\n\n"
