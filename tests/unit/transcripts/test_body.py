"""A stored body gives back the builder it was written from, at every step of every run."""

from __future__ import annotations

from runwire.projections.transcripts.body import (
    decode_messages,
    encode_append,
    encode_body,
    mark,
    restore_builder,
)
from runwire.projections.transcripts.store import RunBody
from runwire.transcript.ledger import TranscriptBuilder
from tests.support.transcript_workload import by_run, workload


def test_every_prefix_of_every_run_round_trips() -> None:
    checked = 0
    for run_id, events in by_run(workload(5, runs=30, sessions=3, turns=(1, 4))).items():
        builder = TranscriptBuilder(run_id)
        for event in events:
            builder.apply(event)
            body = encode_body(builder)
            assert decode_messages(body.messages) == builder.messages()
            restored = restore_builder(run_id, body)
            assert restored.state == builder.state
            assert encode_body(restored) == body
            checked += 1
    assert checked > 500


def test_the_stored_state_leaves_the_committed_messages_to_the_messages() -> None:
    run_id, events = next(iter(by_run(workload(6, runs=1, sessions=1, turns=(3, 3))).items()))
    builder = TranscriptBuilder(run_id)
    builder.apply_all(events)
    body = encode_body(builder)
    assert builder.state.ledger.messages
    assert b'"role"' not in body.state  # no committed message in the state
    assert len(body.state) < len(builder.state.model_dump_json()) / 4


def test_appends_build_exactly_the_whole_body_however_the_events_are_cut() -> None:
    for run_id, events in by_run(workload(8, runs=20, sessions=2, turns=(2, 4))).items():
        whole = TranscriptBuilder(run_id)
        whole.apply_all(events)
        expected = encode_body(whole)
        for cut in (1, 2, 5):
            builder = TranscriptBuilder(run_id)
            stored = encode_body(builder)
            for start in range(0, len(events), cut):
                since = mark(builder)
                builder.apply_all(events[start : start + cut])
                change = encode_append(builder, since)
                committed = stored.committed
                if change.committed:
                    committed = (
                        committed + b"," + change.committed if committed else change.committed
                    )
                stored = RunBody(
                    committed=committed,
                    count=stored.count + change.count,
                    open=change.open,
                    state=change.state,
                    applied=stored.applied + change.applied,
                )
            assert stored == expected
