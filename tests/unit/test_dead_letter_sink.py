"""The dead-letter sink that starts with its first dead letter (what a rebuild uses)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from runwire.contract.sealing.errors import ERASED
from runwire.errors import NotStartedError
from runwire.log import clients
from runwire.projections.runtime import dead_letters
from runwire.projections.runtime.dead_letters import DeadLetterProducer
from runwire.projections.runtime.protocol import Rejection
from runwire.settings import Settings

BAD = Rejection(
    topic="t.run-events",
    partition=0,
    offset=7,
    key=b"run-1",
    value=b"\x00garbage",
    headers=(),
    reason="bad_magic",
    error_class="DecodeError",
    message="bad_magic: not a framing runwire knows",
)


class FakeProducer:
    """Counts starts, stops and records; every send is acknowledged at once."""

    def __init__(self, log: list[str]) -> None:
        self._log = log

    async def start(self) -> None:
        await asyncio.sleep(0)  # a start takes a while: another send may come meanwhile
        self._log.append("start")

    async def stop(self) -> None:
        self._log.append("stop")

    async def send(self, topic: str, **record: Any) -> asyncio.Future[None]:
        self._log.append(f"send {record['key']!r}")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


@pytest.fixture
def produced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    log: list[str] = []

    async def limit(_settings: Settings) -> int:
        log.append("limit read")
        return 1_000_000

    monkeypatch.setattr(dead_letters, "dead_letter_limit", limit)
    monkeypatch.setattr(clients, "producer", lambda *_args, **_kwargs: FakeProducer(log))
    return log


async def test_a_sink_started_on_send_connects_only_for_a_dead_letter(produced: list[str]) -> None:
    sink = DeadLetterProducer(Settings(), "runs-rebuild-g2", start_on_send=True)
    # Batches without rejections, and rejections of erased sessions, need no producer.
    await sink.send([])
    await sink.send([replace(BAD, reason=ERASED)])
    assert produced == []
    assert sink.erased == 1
    # Two sends that find it unstarted at once (a decode and an apply) start it once.
    await asyncio.gather(sink.send([BAD]), sink.send([replace(BAD, offset=8)]))
    assert produced == ["limit read", "start", "send b'run-1'", "send b'run-1'"]
    assert sink.sent == 2
    await sink.stop()
    assert produced[-1] == "stop"
    # Stopped is stopped: no start behind the owner's back.
    with pytest.raises(NotStartedError):
        await sink.send([BAD])
    assert produced.count("start") == 1


async def test_a_sink_not_started_on_send_refuses_a_dead_letter_until_started(
    produced: list[str],
) -> None:
    sink = DeadLetterProducer(Settings(), "runs")
    with pytest.raises(NotStartedError):
        await sink.send([BAD])
    assert produced == []
    await sink.start()
    await sink.start()  # idempotent
    await sink.send([BAD])
    assert produced == ["limit read", "start", "send b'run-1'"]
    await sink.stop()


async def test_a_sink_stopped_before_it_ever_started_closes_nothing(produced: list[str]) -> None:
    sink = DeadLetterProducer(Settings(), "memory-rebuild-g3", start_on_send=True)
    await sink.stop()
    await sink.stop()
    assert produced == []
