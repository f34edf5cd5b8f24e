"""Stored messages decode to exactly what validation gives, once per distinct body."""

from __future__ import annotations

from decimal import Decimal

from runwire.projections.transcripts.body import MESSAGES, decode_runs, encode_body
from runwire.projections.transcripts.session_read import DecodedRuns, StoredMessages
from runwire.transcript.ledger import TranscriptBuilder
from runwire.transcript.messages import (
    Message,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
)
from tests.support.transcript_workload import by_run, workload

EVERY_PART = [
    Message(role="user", parts=(TextPart(text="what is the weather in Paris? é ✓"),)),
    Message(
        role="assistant",
        parts=(
            ThinkingPart(text="the user wants weather", signature="sig+/=AbC"),
            ThinkingPart(redacted=bytes(range(256))),
            TextPart(text="Let me check."),
            ToolUsePart(id="tu_1", name="weather", input={"city": "Paris", "days": [1, 2]}),
            ToolUsePart(id="tu_2", name="clock", input={}),
        ),
    ),
    Message(
        role="user",
        parts=(
            ToolResultPart(tool_use_id="tu_1", content={"temp": 21.5, "sky": None}),
            ToolResultPart(tool_use_id="tu_2", content="timeout", is_error=True),
        ),
    ),
    Message(role="assistant", parts=(ThinkingPart(text="", signature="omitted-display"),)),
]


def stored(messages: list[Message]) -> StoredMessages:
    """``messages`` as a body stores them: committed joined by commas, the last one open."""
    if not messages:
        return StoredMessages(b"", b"")
    *committed, last = messages
    joined = MESSAGES.dump_json(committed)[1:-1] if committed else b""
    return StoredMessages(joined, MESSAGES.dump_json([last])[1:-1])


def validated(body: StoredMessages) -> list[Message]:
    return MESSAGES.validate_json(body.json)


def test_every_part_type_decodes_to_what_validation_gives() -> None:
    bodies = {
        "all": stored(EVERY_PART),
        "open-only": stored(EVERY_PART[:1]),
        "committed-only": StoredMessages(MESSAGES.dump_json(EVERY_PART[:2])[1:-1], b""),
        "empty": stored([]),
    }
    decoder = DecodedRuns()
    for attempt in ("cold", "warm"):
        decoded = decoder.decode(bodies)
        assert decoded == {run: validated(body) for run, body in bodies.items()}, attempt
    assert decoded["all"] == EVERY_PART
    redacted = decoded["all"][1].parts[1]
    assert isinstance(redacted, ThinkingPart)
    assert redacted.redacted == bytes(range(256))
    error = decoded["all"][2].parts[1]
    assert isinstance(error, ToolResultPart)
    assert error.is_error
    assert decoded["committed-only"] == EVERY_PART[:2]
    assert decoded["empty"] == []


def test_workload_runs_decode_to_their_builders_messages() -> None:
    expected: dict[str, list[Message]] = {}
    bodies: dict[str, StoredMessages] = {}
    for run_id, events in by_run(workload(11, runs=25, sessions=2, turns=(1, 4))).items():
        builder = TranscriptBuilder(run_id)
        builder.apply_all(events)
        body = encode_body(builder)
        bodies[run_id] = StoredMessages(body.committed, body.open)
        expected[run_id] = builder.messages()
    assert sum(len(m) for m in expected.values()) > 50
    assert decode_runs([b.json for b in bodies.values()]) == list(expected.values())
    decoder = DecodedRuns()
    assert decoder.decode(bodies) == expected
    assert decoder.decode(bodies) == expected


def test_runs_of_text_and_thinking_are_decoded_once_per_distinct_body() -> None:
    text_run = stored([EVERY_PART[0], Message(role="assistant", parts=(TextPart(text="hi"),))])
    decoder = DecodedRuns()
    first = decoder.decode({"r1": text_run})
    assert decoder.decoded == 1
    first["r1"].append(EVERY_PART[0])  # each read gets its own lists
    again = decoder.decode({"r1": text_run, "r1-copy": StoredMessages(*_copy(text_run))})
    assert decoder.decoded == 1  # same bytes, kept
    assert again["r1"] == again["r1-copy"] == validated(text_run)
    grown = StoredMessages(text_run.committed + b"," + text_run.open, text_run.open)
    assert decoder.decode({"r1": grown})["r1"] == validated(grown)
    assert decoder.decoded == 2  # a changed body is new bytes: decoded


def test_runs_with_tool_parts_are_decoded_afresh_so_a_callers_change_stays_its_own() -> None:
    tool_run = stored(EVERY_PART)
    decoder = DecodedRuns()
    first = decoder.decode({"r1": tool_run})["r1"]
    use = first[1].parts[3]
    assert isinstance(use, ToolUsePart)
    use.input["city"] = "changed by the caller"
    second = decoder.decode({"r1": tool_run})["r1"]
    assert second == EVERY_PART
    assert decoder.decoded == 2
    assert len(decoder) == 0


def test_what_is_kept_stays_within_its_byte_bound() -> None:
    decoder = DecodedRuns(max_bytes=2000)
    bodies = {
        f"r{i}": stored([Message(role="user", parts=(TextPart(text=f"{i} " + "x" * 300),))])
        for i in range(20)
    }
    for run_id, body in bodies.items():
        assert decoder.decode({run_id: body})[run_id] == validated(body)
    assert 0 < len(decoder) < 20
    assert len(decoder) * 300 <= 2000
    # The newest are kept, the oldest went first.
    before = decoder.decoded
    decoder.decode({"r19": bodies["r19"]})
    assert decoder.decoded == before
    decoder.decode({"r0": bodies["r0"]})
    assert decoder.decoded == before + 1


def _copy(body: StoredMessages) -> tuple[bytes, bytes]:
    """Equal bytes in new objects (what a second read from Redis gives)."""
    return bytes(bytearray(body.committed)), bytes(bytearray(body.open))


def test_flat_gives_the_runs_messages_in_order_in_a_new_list_each_time() -> None:
    text = stored([Message(role="user", parts=(TextPart(text="hi"),))])
    tools = stored(EVERY_PART)
    decoder = DecodedRuns()
    bodies = [text, tools, text]
    expected = [*validated(text), *validated(tools), *validated(text)]
    first = decoder.flat(bodies)
    assert first == expected
    assert decoder.decoded == 3  # each missing body decoded once per read
    first.clear()  # a caller's list is its own
    second = decoder.flat(bodies)
    assert second == expected
    assert decoder.decoded == 4  # the text run is kept; the tool run decoded afresh
    tool_use = second[2].parts[3]
    assert isinstance(tool_use, ToolUsePart)
    tool_use.input["city"] = "Lyon"  # mutable content is never shared between reads
    assert decoder.flat(bodies) == expected


def test_a_read_that_evicts_one_of_its_own_kept_runs_still_serves_it() -> None:
    """Keeping the runs a read decodes can push out a run the same read found kept."""
    decoder = DecodedRuns(max_bytes=700)
    old, new_a, new_b = (
        stored([Message(role="user", parts=(TextPart(text=f"{n} " + "x" * 300),))])
        for n in range(3)
    )
    decoder.flat([old])
    assert len(decoder) == 1
    expected = [*validated(old), *validated(new_a), *validated(new_b)]
    assert decoder.flat([old, new_a, new_b]) == expected
    decoder = DecodedRuns(max_bytes=700)
    decoder.decode({"old": old})
    got = decoder.decode({"old": old, "a": new_a, "b": new_b})
    assert got == {"old": validated(old), "a": validated(new_a), "b": validated(new_b)}


def test_tool_numbers_stay_exact_however_the_tool_part_is_spelt() -> None:
    # Text-only bodies skip the exactness round trip; a tool part, even one
    # whose kind is written with a JSON escape, must not.
    plain = b'[{"role":"assistant","parts":[{"kind":"tool_use","id":"t","name":"n","input":{"n":0.10000000000000000001}}]}]'
    escaped = plain.replace(b'"tool_use"', b'"tool\\u005fuse"')
    for body in (plain, escaped):
        [[message]] = decode_runs([body])
        part = message.parts[0]
        assert isinstance(part, ToolUsePart)
        assert part.input == {"n": Decimal("0.10000000000000000001")}
    text = b'[{"role":"user","parts":[{"kind":"text","text":"tool_use \\u00e9 \\"tool_\\""}]}]'
    assert decode_runs([text]) == [MESSAGES.validate_json(text)]


def test_a_reader_that_keeps_nothing_decodes_every_read() -> None:
    runs = DecodedRuns(max_bytes=0)
    body = StoredMessages(b'{"role":"user","parts":[{"kind":"text","text":"hi"}]}', b"")
    first = runs.flat([body, body])
    assert [m.text() for m in first] == ["hi", "hi"]
    assert runs.flat([body]) == first[:1]
    assert (runs.decoded, len(runs)) == (3, 0)
