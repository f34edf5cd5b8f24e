"""A run is its tenant's: another tenant's events on its id are not the run's."""

from __future__ import annotations

from runwire.contract.events import Event, RunCanceled, RunStarted, RunStatus, Usage
from runwire.contract.run_lifecycle import RunLifecycle, foreign_to_run


def test_another_tenants_cancel_does_not_end_the_run() -> None:
    started = Event.create(RunStarted(), run_id="r", tenant="b")
    theirs = Event.create(RunCanceled(reason="a's"), run_id="r", tenant="a")
    shared = Event.create(RunCanceled(reason="the operator's"), run_id="r")
    run = RunLifecycle.of([started, theirs])
    assert (run.status, run.events, run.tenant) == (RunStatus.PENDING, 1, "b")
    run.apply(shared)  # a process serving every tenant writes without one
    assert (run.status, run.events) == (RunStatus.CANCELED, 2)


def test_a_run_takes_the_first_tenant_its_events_name() -> None:
    early = Event.create(Usage(model="m", provider="p"), run_id="r")
    started = Event.create(RunStarted(), run_id="r", tenant="b")
    assert not foreign_to_run(started, None)
    run = RunLifecycle.of([early, started])
    assert run.tenant == "b"
    assert foreign_to_run(Event.create(RunCanceled(), run_id="r", tenant="a"), run.tenant)
    assert not foreign_to_run(Event.create(RunCanceled(), run_id="r"), run.tenant)
