"""Process settings for a batch consumer (``runwire serve projector-*``, rebuilds).

A projector holds a few thousand freshly decoded events at a time. With
CPython's default collector thresholds those survive enough young
collections to be promoted and then rescanned, together with every object
the imports created (pydantic schemas, modules), by full collections: on a
rebuild that is about a third of the CPU. The events themselves form no
reference cycles, so reference counting frees them either way; collecting
less often only changes when cyclic garbage (rare here) is reclaimed.

Call :func:`tune_for_batches` once, after start-up, in a process whose main
job is a projector. It is a process-wide setting, so the library never
calls it on its own.
"""

from __future__ import annotations

from runwire.telemetry import gc_tuning

YOUNG_THRESHOLD = 20_000


def tune_for_batches() -> None:
    """Freeze what start-up allocated and collect young objects less often
    (:func:`runwire.telemetry.gc_tuning.tune`, with a projector's young threshold)."""
    gc_tuning.tune(young=YOUNG_THRESHOLD)
