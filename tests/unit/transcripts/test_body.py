"""A stored body gives back the builder it was written from, at every step of every run."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from runwire.contract import jsonvalues
from runwire.projections.transcripts.body import (
    MESSAGES,
    _encode_parts,
    decode_messages,
    encode_append,
    encode_body,
    encode_messages,
    mark,
    restore_builder,
)
from runwire.projections.transcripts.store import RunBody
from runwire.transcript.ledger import TranscriptBuilder
from runwire.transcript.messages import (
    Message,
    Part,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
)
from tests.support.transcript_strategies import json_values, texts, transcripts
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


# Numbers only jsonvalues writes exactly (beyond 64 bits, more digits than a
# float keeps), beside the usual JSON values: the fast path's fallbacks.
_exotic_numbers = (
    st.integers(min_value=2**64, max_value=2**200)
    | st.integers(max_value=-(2**63) - 1, min_value=-(2**200))
    | st.decimals(allow_nan=False, allow_infinity=False, places=25)
)
_values = st.recursive(
    json_values | _exotic_numbers,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)


@st.composite
def _transcripts_with_any_numbers(draw: st.DrawFn) -> list[Message]:
    messages = draw(transcripts(thinking=True))
    out = []
    for message in messages:
        parts = [
            p.model_copy(update={"input": draw(st.dictionaries(texts, _values, max_size=3))})
            if isinstance(p, ToolUsePart)
            else p.model_copy(update={"content": draw(_values)})
            if isinstance(p, ToolResultPart)
            else p
            for p in message.parts
        ]
        out.append(message.model_copy(update={"parts": tuple(parts)}))
    return out


def _by_pydantic(adapter: TypeAdapter[Any], value: Any) -> bytes:
    # The definition: pydantic's dump of the models, written by jsonvalues.
    return jsonvalues.dumps(adapter.dump_python(value), default=jsonvalues.bytes_as_base64)


@settings(max_examples=200, deadline=None)
@given(_transcripts_with_any_numbers())
def test_messages_are_written_as_pydantic_dumps_them(messages: list[Message]) -> None:
    assert encode_messages(messages) == _by_pydantic(MESSAGES, messages)
    parts = [p for m in messages for p in m.parts]
    assert _encode_parts(parts) == _by_pydantic(TypeAdapter(list[Part]), parts)


def test_message_models_hold_plain_fields() -> None:
    # What encode_messages relies on: a model's fields are its __dict__, in order.
    for model in (Message, TextPart, ThinkingPart, ToolUsePart, ToolResultPart):
        assert not model.__pydantic_decorators__.field_serializers, model
        assert not model.__pydantic_decorators__.model_serializers, model
        assert not model.__pydantic_computed_fields__, model
        assert all(
            f.serialization_alias is None and not f.exclude for f in model.model_fields.values()
        )
