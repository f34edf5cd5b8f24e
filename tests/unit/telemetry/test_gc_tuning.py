"""The collector settings every serve process runs with."""

from __future__ import annotations

import gc

from runwire.settings import Settings
from runwire.telemetry import gc_tuning
from runwire.telemetry.process import observed


def test_tune_freezes_start_up_and_raises_thresholds_untune_restores() -> None:
    gc_tuning.untune()  # an earlier test of this process may have tuned it (a rebuild)
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    gc_tuning.tune()
    try:
        assert gc.get_threshold() == gc_tuning.THRESHOLDS
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # the imported modules at least
        gc_tuning.tune()  # again: the first settings are still what untune restores
    finally:
        gc_tuning.untune()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_cycles_are_still_collected_when_tuned() -> None:
    import weakref

    class Node:
        other: object = None

    gc_tuning.tune()
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
    finally:
        gc_tuning.untune()


async def test_a_serve_process_runs_tuned_and_leaves_as_it_was() -> None:
    before = gc.get_threshold()
    async with observed("test", Settings(metrics_port=None)):
        assert gc.get_threshold() == gc_tuning.THRESHOLDS
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_projectors_tuning_is_the_same_with_a_larger_young_threshold() -> None:
    from runwire.projections.runtime.tuning import YOUNG_THRESHOLD, tune_for_batches

    gc_tuning.untune()
    before = gc.get_threshold()
    tune_for_batches()
    try:
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *gc_tuning.THRESHOLDS[1:])
        assert gc.get_freeze_count() > 10_000
    finally:
        gc_tuning.untune()  # the one home undoes it too
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_rebuilds_young_threshold_holds_its_batches_in_flight() -> None:
    from runwire.projections.runtime.rebuild import REBUILD_OPTIONS
    from runwire.projections.runtime.tuning import (
        REBUILD_YOUNG_THRESHOLD,
        YOUNG_THRESHOLD,
        tune_for_rebuild,
    )

    # Two rebuild batches of records and what their folds build (about 16
    # tracked objects per record at a rebuild's peak) stay below it, so young
    # collections do not just walk and promote them.
    assert 2 * REBUILD_OPTIONS.max_records * 16 <= REBUILD_YOUNG_THRESHOLD
    assert REBUILD_YOUNG_THRESHOLD > YOUNG_THRESHOLD
    gc_tuning.untune()
    before = gc.get_threshold()
    tune_for_rebuild()
    try:
        assert gc.get_threshold() == (REBUILD_YOUNG_THRESHOLD, *gc_tuning.THRESHOLDS[1:])
        assert gc.get_freeze_count() > 10_000
    finally:
        gc_tuning.untune()
    assert gc.get_threshold() == before
