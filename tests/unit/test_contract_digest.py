"""The body digest read models store: the same value whichever way it is computed."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings

from runwire.contract.events import Event, EventType
from runwire.contract.identity import body_digest, payload_digest
from tests.support.event_samples import events, sample_event


def _by_definition(event: Event) -> str:
    # The definition stored rows were digested with; it must never change.
    body = f"{event.payload.event_type.value}\x1f{event.payload.model_dump_json()}"
    return hashlib.sha256(body.encode()).hexdigest()[:32]


@pytest.mark.parametrize("event_type", list(EventType))
def test_digest_of_every_type_is_the_defined_one(event_type: EventType) -> None:
    event = sample_event(event_type)
    assert body_digest(event) == _by_definition(event)
    assert payload_digest(event.payload) == _by_definition(event)


@given(events())
@settings(max_examples=200, deadline=None)
def test_digest_of_any_event_is_the_defined_one(event: Event) -> None:
    assert body_digest(event) == _by_definition(event)


def test_digest_is_pinned() -> None:
    # A stored digest from before the fast path: a change here breaks every
    # read model's duplicate detection for events applied before it.
    assert body_digest(sample_event(EventType.ASSISTANT_TEXT)) == "46d157f4ca806f0cb09bb97d99e02aa8"
    assert body_digest(sample_event(EventType.TOOL_USE)) == "4726443cce33eae8399347060f4d13d2"
