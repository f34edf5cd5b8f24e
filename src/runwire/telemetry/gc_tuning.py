"""The garbage collector set for a long-lived service process.

Contract:
- :func:`tune` is called once by every ``runwire serve`` process as it starts
  (:func:`runwire.telemetry.process.observed`), tracing on or off alike. It
  collects once, freezes what is then alive (the imported modules, classes
  and functions: ~100k objects that every full collection would otherwise
  walk again, for nothing) and sets the thresholds to :data:`THRESHOLDS`.
- It changes when cyclic garbage is freed, never whether: objects freed by
  their reference count go at once as before; cycles wait for a later,
  larger collection.
- :func:`untune` undoes it (tests, and a process that embeds a service).
- It is the one place that sets the collector: a projector's
  (:func:`runwire.projections.runtime.tuning.tune_for_batches`) only asks
  for a larger young threshold.

Why: a service answering a backlog keeps thousands of operations in flight;
with CPython's default thresholds (700, 10, 10) their objects survive the
young collections, are promoted, and full collections walk them and the
frozen-able start-up objects again and again. In ``bench/bench_tracing.py``
(the orchestrator answering a backlog of 1500 runs) full collections were a
third of the CPU per turn; with these settings the collector's share is a
few per cent, tracing off and on alike (``docs/operations.md``).
"""

from __future__ import annotations

import gc

__all__ = ["THRESHOLDS", "tune", "untune"]

THRESHOLDS = (10_000, 10, 10)
"""Young collections every 10 000 net allocations (not 700); the older ones as
CPython's ratios have them (every 10 of the younger, full ones only when the
objects waiting for one are a quarter of those that survived the last). Not
higher: a young collection is a pause of the loop, and at 50 000 the
orchestrator benchmark's p99 per turn rose while its CPU fell little further."""

_before: tuple[int, int, int] | None = None


def tune(young: int = THRESHOLDS[0]) -> None:
    """Freeze what is alive now and raise the thresholds (see the module contract);
    ``young``: the young generation's (a projector's batches want more)."""
    global _before
    if _before is None:
        _before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(young, *THRESHOLDS[1:])


def untune() -> None:
    """The collector as it was before :func:`tune` (the frozen objects collectable again)."""
    global _before
    if _before is None:
        return
    gc.unfreeze()
    gc.set_threshold(*_before)
    _before = None
