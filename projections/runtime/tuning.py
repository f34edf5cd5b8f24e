"""Process settings for a batch consumer (``runwire serve projector-*``, rebuilds).

A projector holds a few thousand freshly decoded events at a time. With
CPython's default collector thresholds those survive enough young
collections to be promoted and then rescanned, together with every object
the imports created (pydantic schemas, modules), by full collections: on a
rebuild that is about a third of the CPU. The events themselves form no
reference cycles, so reference counting frees them either way; collecting
less often only changes when cyclic garbage (rare here) is reclaimed.

- :func:`tune_for_batches`: a served projector's young threshold
  (:data:`YOUNG_THRESHOLD`); a young collection is a pause of its loop, which
  a live projector's latency feels.
- :func:`tune_for_rebuild`: a rebuild's (:data:`REBUILD_YOUNG_THRESHOLD`),
  above what its batches in flight hold, so that young collections, which
  would find those batches alive and only promote them, seldom run. A
  rebuild has no latency to keep; at the served threshold the collector was
  a tenth of a rebuild's CPU.

Call one of them once, after start-up, in a process whose main job is a
projector or a rebuild. It is a process-wide setting, so the library never
calls it on its own.
"""

from __future__ import annotations

from runwire.projections.runtime.rebuild import REBUILD_OPTIONS
from runwire.telemetry import gc_tuning

YOUNG_THRESHOLD = 20_000

TRACKED_PER_RECORD = 20
"""Objects the collector tracks per record in flight: its event, payload,
their dicts, the record tuple, and what a fold builds for it (pairs, rows,
entries). At the peak of a rebuild of the runs or the memory projection
about 16 per record of its two batches were alive; at 10 the threshold sat
below that peak, and a young collection walking every live record (tens of
milliseconds) ran about once per 25,000 records."""

REBUILD_YOUNG_THRESHOLD = 2 * REBUILD_OPTIONS.max_records * TRACKED_PER_RECORD
"""Two batches in flight (one applied, the next read meanwhile) of a rebuild's size."""


def tune_for_batches() -> None:
    """Freeze what start-up allocated and collect young objects less often
    (:func:`runwire.telemetry.gc_tuning.tune`, with a projector's young threshold)."""
    gc_tuning.tune(young=YOUNG_THRESHOLD)


def tune_for_rebuild() -> None:
    """As :func:`tune_for_batches`, with a rebuild's young threshold."""
    gc_tuning.tune(young=REBUILD_YOUNG_THRESHOLD)
