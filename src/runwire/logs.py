"""Logging of the long-running processes: one setup, and Kafka's client kept quiet.

While Kafka is down, aiokafka logs an ERROR line for every failed connect,
metadata update, fetch and heartbeat of every client in the process: dozens
of lines a second that bury everything else. :class:`KafkaLogFilter` keeps
the log useful:

- A *connection error* (a WARNING or worse from an ``aiokafka`` logger that
  says a broker could not be reached) starts an outage: that first line
  passes as it is; further connection errors, whatever their wording, are
  counted, and at most one summary passes per ``window`` seconds while they
  go on: ``Kafka unreachable for 42 s (317 connection errors since the
  first; last: ...)``. An outage ends after ``window`` seconds without a
  connection error; the next one starts a new outage.
- Any other aiokafka WARNING or worse is limited per message template: the
  first passes, repeats within ``window`` seconds are counted and the next
  one after the window passes with ``(repeated N times in M s)`` appended.
- Records of other loggers, and aiokafka records below WARNING, pass untouched.

:func:`configure_service_logging` is the one logging setup of ``runwire
serve`` and ``python -m runwire.services NAME``; it installs the filter once
on the root handlers (a filter on the ``aiokafka`` logger would not see its
child loggers' records).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["KafkaLogFilter", "configure_service_logging", "is_connection_error"]

_KAFKA_LOGGER = "aiokafka"

_CONNECTION = re.compile(
    r"unable connect|unable to (update|request) metadata|connect call failed|"
    r"connection refused|connection reset|kafkaconnectionerror|nodenotready|"
    r"failed fetch|heartbeat send request failed|coordinator request failed|"
    r"coordinator.*(not available|dead)|cannot send|could not send|requesttimedout|"
    r"no route to host|name or service not known|temporary failure in name resolution",
    re.IGNORECASE,
)


def is_connection_error(record: logging.LogRecord) -> bool:
    """True for an aiokafka WARNING or worse that says a broker could not be reached."""
    if record.levelno < logging.WARNING or not _is_kafka(record):
        return False
    text = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
        error = record.exc_info[1]
        text += f" {type(error).__name__} {error}"
    return _CONNECTION.search(text) is not None


def _is_kafka(record: logging.LogRecord) -> bool:
    return record.name == _KAFKA_LOGGER or record.name.startswith(_KAFKA_LOGGER + ".")


@dataclass(slots=True)
class _Repeats:
    first: float
    last_passed: float
    suppressed: int = 0


class KafkaLogFilter(logging.Filter):
    """Summarises aiokafka's connection errors and limits its repeats; see the module doc.

    ``clock`` is for tests (monotonic seconds). Thread-safe enough for
    logging's use: state changes are small and a lost count only changes a
    number in a summary.
    """

    def __init__(self, window: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window = window
        self._clock = clock
        self._outage: _Repeats | None = None
        self._last_connection_error = float("-inf")
        self._repeats: dict[tuple[str, str], _Repeats] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not _is_kafka(record):
            return True
        now = self._clock()
        if is_connection_error(record):
            return self._connection_error(record, now)
        return self._repeat(record, now)

    def _connection_error(self, record: logging.LogRecord, now: float) -> bool:
        outage = self._outage
        quiet = now - self._last_connection_error > self.window
        self._last_connection_error = now
        if outage is None or quiet:
            self._outage = _Repeats(first=now, last_passed=now)
            return True
        outage.suppressed += 1
        if now - outage.last_passed < self.window:
            return False
        summary = (
            f"Kafka unreachable for {now - outage.first:.0f} s "
            f"({outage.suppressed} connection errors since the first; "
            f"last: {_one_line(record)})"
        )
        outage.last_passed = now
        _rewrite(record, summary)
        return True

    def _repeat(self, record: logging.LogRecord, now: float) -> bool:
        key = (record.name, str(record.msg))
        seen = self._repeats.get(key)
        if seen is not None and now - seen.last_passed < self.window:
            seen.suppressed += 1
            return False
        if seen is not None and seen.suppressed:
            text = (
                f"{_one_line(record)} (repeated {seen.suppressed} times "
                f"in {now - seen.last_passed:.0f} s)"
            )
            _rewrite(record, text)
        if len(self._repeats) > 1000:
            self._repeats.clear()  # templates are few; still, never grow for ever
        self._repeats[key] = _Repeats(first=now, last_passed=now)
        return True


def _one_line(record: logging.LogRecord) -> str:
    text = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
        error = record.exc_info[1]
        text += f": {type(error).__name__}: {error}"
    return " ".join(text.split())


def _rewrite(record: logging.LogRecord, text: str) -> None:
    """Make ``record`` say ``text`` (a summary line, without the traceback)."""
    record.msg = text
    record.args = None
    record.exc_info = None
    record.exc_text = None
    record.stack_info = None


def configure_service_logging(name: str, level: str = "INFO") -> None:
    """Log to stderr as ``<time> NAME LEVEL logger: message``, aiokafka at WARNING
    and above, summarised by one :class:`KafkaLogFilter` on every root handler."""
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger(_KAFKA_LOGGER).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, KafkaLogFilter) for f in handler.filters):
            handler.addFilter(KafkaLogFilter())
