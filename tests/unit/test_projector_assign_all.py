"""A projector that reads every partition (a rebuild's) seeks before the fetcher can move."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import pytest

from runwire.log import clients
from runwire.log.records import TopicPartition
from runwire.projections.runtime.consumer import Projector
from runwire.projections.runtime.protocol import ApplyResult, Batch, DeadLetterSink, Rejection
from runwire.settings import Settings

TOPIC = "t.run-events"


class FakeConsumer:
    """Records what the projector does to it, in order."""

    def __init__(self, log: list[str]) -> None:
        self._log = log
        self._assigned: list[Any] = []

    async def start(self) -> None:
        self._log.append("start")

    async def stop(self) -> None:
        self._log.append("stop")

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1, 2}

    def assign(self, tps: Sequence[Any]) -> None:
        self._log.append("assign " + ",".join(str(tp.partition) for tp in tps))
        self._assigned = list(tps)

    def assignment(self) -> set[Any]:
        return set(self._assigned)

    def seek(self, tp: Any, offset: int) -> None:
        # The fetcher asks the broker to reset a partition it finds assigned
        # without a position: a seek must follow its assignment with no wait.
        assert tp in self._assigned, "seek of a partition not assigned"
        self._log.append(f"seek {tp.partition}@{offset}")


class StoredPositions:
    """A projection that only knows its stored positions."""

    name = "runs"
    topics = (TOPIC,)

    def __init__(self, log: list[str], stored: dict[TopicPartition, int]) -> None:
        self._log = log
        self._stored = stored

    async def load_positions(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, int]:
        self._log.append("load " + ",".join(str(tp.partition) for tp in sorted(partitions)))
        return {tp: self._stored.get(tp, 0) for tp in partitions}

    async def apply(self, batch: Batch, dead_letters: DeadLetterSink) -> ApplyResult:
        raise AssertionError("nothing is applied here")


class NoDeadLetters:
    async def send(self, rejections: Sequence[Rejection]) -> None:
        assert not rejections


@pytest.mark.parametrize("only", [None, {TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 2)}])
async def test_every_partition_is_assigned_at_its_stored_position_with_no_wait_between(
    monkeypatch: pytest.MonkeyPatch, only: set[TopicPartition] | None
) -> None:
    log: list[str] = []
    monkeypatch.setattr(clients, "consumer", lambda *_args, **_kwargs: FakeConsumer(log))
    stored = {TopicPartition(TOPIC, 0): 40, TopicPartition(TOPIC, 2): 7}
    projector = Projector(
        StoredPositions(log, stored),
        Settings(),
        assignment="all",
        partitions=only,
        dead_letters=NoDeadLetters(),
    )
    await projector.start()
    parts = "0,2" if only else "0,1,2"
    seeks = [f"seek {p}@{stored.get(TopicPartition(TOPIC, int(p)), 0)}" for p in parts.split(",")]
    # The positions are read first; the assignment and its seeks follow at once.
    assert log[:3] == ["start", f"load {parts}", f"assign {parts}"]
    assert sorted(log[3:]) == sorted(seeks)
    assert projector.positions() == {
        TopicPartition(TOPIC, int(p)): stored.get(TopicPartition(TOPIC, int(p)), 0)
        for p in parts.split(",")
    }
    assert projector.stats.assignments == 1
    await projector.stop()
