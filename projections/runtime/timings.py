"""Per-batch timings of every projector in the process, for benches and diagnostics.

Contract:
- An observer installed with :func:`observe` is called once per batch a
  :class:`~runwire.projections.runtime.consumer.Projector` applied, after
  its apply returned, with a :class:`BatchTiming`: when each of its
  partitions' records were fetched (the consumer's ``getmany`` returned
  them) and decoded, when the apply began and when it returned.
- Times are ``time.perf_counter()`` (the system's monotonic clock on Linux,
  so comparable across processes of one machine).
- Process-wide, costs nothing while none is installed (callers test
  :data:`installed` first); an observer that raises is a bug in it: the
  error is logged and the projector goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BatchTiming", "Span", "installed", "observe", "report"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Span:
    """Records of one partition that one fetch handed over: the offsets of the
    first and the last, when the fetch returned them and when they were decoded."""

    topic: str
    partition: int
    first: int
    last: int
    fetched: float
    decoded: float


@dataclass(frozen=True, slots=True)
class BatchTiming:
    projection: str
    spans: tuple[Span, ...]
    started: float
    """The apply began."""
    applied: float
    """The apply returned (its transaction committed)."""


Observer = Callable[[BatchTiming], None]
_observers: list[Observer] = []
installed = False
"""True while an observer is installed (checked before building a timing)."""


def observe(observer: Observer) -> Callable[[], None]:
    """Call ``observer`` with every batch's timing from now on; returns its remover."""
    global installed
    _observers.append(observer)
    installed = True

    def remove() -> None:
        global installed
        if observer in _observers:
            _observers.remove(observer)
        installed = bool(_observers)

    return remove


def report(timing: BatchTiming) -> None:
    """Hand ``timing`` to every observer (their errors are logged, never raised)."""
    for observer in tuple(_observers):
        try:
            observer(timing)
        except Exception:
            log.exception("batch timing observer %r failed", observer)
