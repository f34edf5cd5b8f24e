"""While Kafka is down, aiokafka's connection errors become one line plus periodic summaries."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator

import pytest

from runwire.logs import KafkaLogFilter, configure_service_logging


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(
    name: str, msg: str, *args: object, level: int = logging.ERROR, exc: BaseException | None = None
) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord(name, level, __file__, 1, msg, args, exc_info)


def unable(node: int = 1) -> logging.LogRecord:
    return record(
        "aiokafka.client",
        "Unable connect to node with id %s: %s",
        node,
        "[Errno 111] Connect call failed ('127.0.0.1', 29092)",
    )


def passed(f: KafkaLogFilter, records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if f.filter(r)]


def test_a_burst_of_connection_errors_is_one_line_then_a_summary_per_window() -> None:
    clock = Clock()
    f = KafkaLogFilter(window=30.0, clock=clock)
    out: list[str] = []
    # 50 errors a second for 95 s, in several wordings (connect, metadata, fetch).
    kinds: list[Callable[[], logging.LogRecord]] = [
        unable,
        lambda: record("aiokafka.client", "Unable to update metadata from %s", [1]),
        lambda: record(
            "aiokafka.consumer.fetcher", "Failed fetch messages from %s: %s", 1, "NodeNotReadyError"
        ),
    ]
    for tick in range(95 * 50):
        clock.now = 1000.0 + tick / 50
        out += passed(f, [kinds[tick % 3]()])
    assert out[0].startswith("Unable connect to node with id 1")
    summaries = out[1:]
    assert len(summaries) == 3  # at 30, 60 and 90 s
    assert summaries[0].startswith("Kafka unreachable for 30 s (1500 connection errors")
    assert summaries[2].startswith("Kafka unreachable for 90 s")
    assert all("last: " in s for s in summaries)


def test_an_outage_ends_after_a_quiet_window_and_the_next_one_starts_afresh() -> None:
    clock = Clock()
    f = KafkaLogFilter(window=10.0, clock=clock)
    assert len(passed(f, [unable() for _ in range(100)])) == 1
    clock.now += 11  # Kafka back: no connection error for a window
    again = passed(f, [unable(2) for _ in range(100)])
    assert again == [unable(2).getMessage()]  # the new outage's first line, as it is


def test_other_aiokafka_warnings_are_limited_per_template() -> None:
    clock = Clock()
    f = KafkaLogFilter(window=10.0, clock=clock)
    heartbeat = [record("aiokafka.consumer.group_coordinator", "Heartbeat failed: %r", "x")] * 20
    assert len(passed(f, heartbeat)) == 1
    clock.now += 10
    later = passed(f, [record("aiokafka.consumer.group_coordinator", "Heartbeat failed: %r", "y")])
    assert later == ["Heartbeat failed: 'y' (repeated 19 times in 10 s)"]
    other = passed(f, [record("aiokafka.cluster", "Topic %s not found in cluster metadata", "t")])
    assert len(other) == 1  # another template is not held back


def test_records_of_other_loggers_and_below_warning_pass_untouched() -> None:
    f = KafkaLogFilter(window=10.0, clock=Clock())
    mine = [record("runwire.services.follower", "Kafka error, retrying: %s", "x")] * 5
    assert len(passed(f, mine)) == 5
    debug = [record("aiokafka.conn", "Unable connect %s", 1, level=logging.DEBUG)] * 5
    assert len(passed(f, debug)) == 5


def test_a_summary_line_drops_the_traceback() -> None:
    clock = Clock()
    f = KafkaLogFilter(window=1.0, clock=clock)
    error = ConnectionRefusedError(111, "Connect call failed")
    first = record("aiokafka", "Unexpected error in fetcher routine", exc=error)
    assert f.filter(first)
    assert first.exc_info is not None  # the first one is kept whole
    clock.now += 0.5
    assert not f.filter(record("aiokafka", "Unexpected error in fetcher routine", exc=error))
    clock.now += 0.6
    summary = record("aiokafka", "Unexpected error in fetcher routine", exc=error)
    assert f.filter(summary)
    assert summary.exc_info is None
    assert summary.getMessage().startswith("Kafka unreachable for 1 s (2 connection errors")


@pytest.fixture
def root_logging() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    kafka_level = logging.getLogger("aiokafka").level
    stream = io.StringIO()
    root.handlers = []
    try:
        yield stream
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)
        logging.getLogger("aiokafka").setLevel(kafka_level)


def test_the_service_logging_setup_installs_the_filter_once(root_logging: io.StringIO) -> None:
    handler = logging.StreamHandler(root_logging)
    logging.getLogger().addHandler(handler)
    configure_service_logging("svc")
    configure_service_logging("svc")
    assert sum(isinstance(f, KafkaLogFilter) for f in handler.filters) == 1
    log = logging.getLogger("aiokafka.client")
    for _ in range(200):
        log.error("Unable connect to node with id %s: %s", 1, "refused")
    assert root_logging.getvalue().count("Unable connect") == 1
