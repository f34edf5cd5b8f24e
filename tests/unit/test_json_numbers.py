"""JSON numbers round-trip exactly through every layer that parses or writes them
(docs/json-numbers.md): the contract module, events and Avro records, the
transcript cache's bodies, the memory rows' jsonb text, the provider encoders."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runwire.context.digest import canonical_json, model_input_digest
from runwire.contract import jsonvalues
from runwire.contract.codec import default_codec
from runwire.contract.events import Event, MemorySet, SessionMetadataSet, ToolResult, ToolUse
from runwire.errors import InputError
from runwire.memory.checks import require_json, require_stored_json
from runwire.projections.memory.fold import row_value
from runwire.projections.transcripts.body import decode_messages, encode_body, restore_builder
from runwire.providers.encoders import anthropic_messages, bedrock_converse, openai_chat
from runwire.providers.encoders.common import EncodingError, parse_tool_arguments
from runwire.sessions.responses_items import items_to_messages, messages_to_items
from runwire.transcript.ledger import TranscriptBuilder
from runwire.transcript.messages import Message, TextPart, ToolResultPart, ToolUsePart
from tests.support.exact_json import identical

# -- strategies: canonical JSON values --------------------------------------------------

big_ints = st.integers(min_value=-(10**60), max_value=10**60) | st.sampled_from(
    [2**63, -(2**63) - 1, 2**64, 10**308, -(10**4299), 123456789012345678901234567890]
)
floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [1e308, -0.0, 0.1, 5e-324, 1e16, 1e22, 1e-7, 100.0]
)
# Decimals that no float writes: more digits than a float keeps, or out of its range.
long_decimals = st.builds(
    lambda digits, exponent, sign: Decimal(f"{sign}{digits}E{exponent}"),
    st.integers(min_value=10**17, max_value=10**40),
    st.integers(min_value=-500, max_value=500),
    st.sampled_from(["", "-"]),
).map(jsonvalues.canonical) | st.sampled_from(
    [Decimal("0.10000000000000000555"), Decimal("1E+400"), Decimal("2E-400")]
)
numbers = big_ints | floats | long_decimals
scalars = st.none() | st.booleans() | st.text(max_size=20) | numbers
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
objects = st.dictionaries(st.text(max_size=8), values, max_size=5)


def _canonical_numbers(value: Any) -> bool:
    """True when every number is in the contract's form (what the strategy promises)."""
    if isinstance(value, dict):
        return all(_canonical_numbers(v) for v in value.values())
    if isinstance(value, list):
        return all(_canonical_numbers(v) for v in value)
    return not isinstance(value, Decimal) or jsonvalues.canonical(value) is value


# -- the contract module ------------------------------------------------------------------


@given(values)
def test_loads_of_dumps_gives_the_very_value(value: Any) -> None:
    assert identical(jsonvalues.loads(jsonvalues.dumps(value)), value)
    assert identical(jsonvalues.canonical(value), value)


@given(numbers)
def test_every_number_text_reads_back_to_the_same_decimal(number: Any) -> None:
    text = jsonvalues.dumps(number).decode()
    assert Decimal(text) == (Decimal(repr(number)) if isinstance(number, float) else number)
    # Another spelling of the same decimal of the same kind (integer literal or
    # not) reads as the very value: what lets Postgres respell numbers.
    spelled = format(Decimal(text), "f")
    if not isinstance(number, int) and "." not in spelled:
        spelled += ".0"
    assert identical(jsonvalues.loads(spelled), jsonvalues.loads(text)) or (
        number == 0 and not isinstance(number, int)  # -0.0 written "0.0" by format
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("123456789012345678901234567890", 123456789012345678901234567890),
        ("0.10000000000000000555", Decimal("0.10000000000000000555")),
        ("1e308", 1e308),
        ("1e400", Decimal("1E+400")),
        ("-0.0", -0.0),
        ("0.1", 0.1),
        ("1E+2", 100.0),
        ("[1, 1.0, 1e0]", [1, 1.0, 1.0]),
    ],
)
def test_numbers_are_read_in_the_contracts_form(text: str, expected: Any) -> None:
    assert identical(jsonvalues.loads(text), expected)


def test_a_decimal_a_float_writes_the_same_becomes_that_float() -> None:
    assert identical(jsonvalues.canonical({"a": [Decimal("0.1"), Decimal("5")]}), {"a": [0.1, 5]})


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"a": [float("nan")]}, "input.a[0]"),
        ({"a": Decimal("Infinity")}, "input.a"),
        ({"a": (1, 2)}, "input.a"),
        ({"a": {1: 2}}, "input.a"),
        ({"a": b"x"}, "input.a"),
    ],
)
def test_what_json_cannot_hold_is_refused_naming_the_place(value: Any, where: str) -> None:
    with pytest.raises(jsonvalues.JsonValueError) as info:
        jsonvalues.canonical(value, "input")
    assert str(info.value).startswith(where + " ")


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", "-Infinity", "1" * 5000, "{", "1 2"])
def test_what_is_not_json_is_refused(text: str) -> None:
    with pytest.raises(jsonvalues.JsonValueError):
        jsonvalues.loads(text)


# -- events and Avro --------------------------------------------------------------------------


@settings(max_examples=60)
@given(objects, values)
def test_events_keep_every_number_through_avro(tool_input: Any, content: Any) -> None:
    codec = default_codec()
    for payload in (
        ToolUse(id="t", name="n", input=tool_input),
        ToolResult(tool_use_id="t", content=content),
    ):
        event = Event.create(payload, run_id="r")
        again = codec.decode(codec.encode(event))
        assert again == event
        for name in ("input", "content"):
            if hasattr(payload, name):
                assert identical(getattr(again.payload, name), getattr(payload, name))


def test_big_integers_are_json_values_now() -> None:
    use = ToolUse(id="t", name="n", input={"a": 2**70, "b": Decimal("0.10000000000000000555")})
    assert identical(use.input, {"a": 2**70, "b": Decimal("0.10000000000000000555")})


def test_stored_payloads_refuse_what_postgres_cannot_keep() -> None:
    with pytest.raises(InputError, match=r"payload.value.*negative zero"):
        Event.create(MemorySet(scope="user", owner="u", key="k", value={"x": -0.0}))
    with pytest.raises(InputError, match="16383 digits after the point"):
        Event.create(SessionMetadataSet(key="k", value=Decimal("1E-20000")), session_id="s")
    # Transcript payloads go to Kafka and Redis only: -0.0 is kept there.
    Event.create(ToolResult(tool_use_id="t", content=-0.0), run_id="r")


# -- memory rows (Postgres jsonb text) ---------------------------------------------------------


def _postgres_numeric(text: str) -> str:
    """What ``numeric`` prints for a JSON number's text: positional, its scale kept."""
    d = Decimal(text)
    scale = max(0, -int(d.as_tuple().exponent))
    return f"{d:.{scale}f}".replace("-0.", "0.") if d.is_zero() else f"{d:.{scale}f}"


def _as_postgres(text: str) -> str:
    """The JSON text ``jsonb`` gives back (numbers respelled as ``numeric`` does)."""

    def respell(number: str) -> Any:
        return jsonvalues.loads(_postgres_numeric(number))

    value = json.loads(text, parse_float=respell, parse_int=respell)
    return jsonvalues.dumps_text(value)


@settings(max_examples=80)
@given(values)
def test_memory_values_survive_postgres_respelling(value: Any) -> None:
    if jsonvalues.stored_problem(value) is not None:
        with pytest.raises(InputError):
            require_stored_json(value, "value")
        return
    assert identical(jsonvalues.loads(_as_postgres(row_value(value))), value)


@settings(max_examples=300)
@given(values)
def test_jsonb_text_writes_plain_values_as_the_positional_rewrite_does(value: Any) -> None:
    # jsonb_text writes a value without Decimals or exponent floats as dumps
    # does; it must be the text the positional rewrite of every number gives.
    if not jsonvalues._plain(value):
        return
    rewritten = jsonvalues.dumps(jsonvalues._positional(value)).decode()
    assert jsonvalues.jsonb_text(value) == rewritten


@settings(max_examples=2000)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_orjson_writes_a_positional_float_as_repr_does(number: float) -> None:
    if "e" in repr(number):
        return
    assert jsonvalues.dumps(number).decode() == repr(number) == format(Decimal(repr(number)), "f")


def test_1e308_is_written_for_jsonb_with_a_fraction() -> None:
    text = row_value({"x": 1e308, "y": Decimal("1E+400"), "z": 7})
    assert text.startswith('{"x":1' + "0" * 308 + '.0,"y":1' + "0" * 400 + '.0,"z":7}')
    assert identical(jsonvalues.loads(text), {"x": 1e308, "y": Decimal("1E+400"), "z": 7})


def test_require_json_gives_the_canonical_value_and_names_the_field() -> None:
    assert identical(require_json({"a": Decimal("0.5")}, "value"), {"a": 0.5})
    with pytest.raises(InputError, match=r"^value: .*value.a\[0\]"):
        require_json({"a": [float("inf")]}, "value")


# -- the transcript cache's bodies (Redis) ------------------------------------------------------


@settings(max_examples=50)
@given(objects, values)
def test_transcript_bodies_keep_every_number(tool_input: Any, content: Any) -> None:
    builder = TranscriptBuilder("r")
    events = [
        Event.create(ToolUse(id="t1", name="n", input=tool_input), run_id="r"),
        Event.create(ToolResult(tool_use_id="t1", content=content), run_id="r"),
    ]
    for event in events:
        builder.apply(event)
    body = encode_body(builder)
    restored = restore_builder("r", body)
    assert restored.messages() == builder.messages()
    stored = decode_messages(
        b"[" + body.committed + (b"," + body.open if body.open else b"") + b"]"
    )
    uses = [p for m in stored for p in m.tool_uses()]
    results = [p for m in stored for p in m.tool_results()]
    assert identical(uses[0].input, tool_input)
    assert identical(results[0].content, content)


# -- provider encoders ------------------------------------------------------------------------------


def _exchange(tool_input: dict[str, Any], content: Any) -> list[Message]:
    return [
        Message(role="user", parts=(TextPart(text="go"),)),
        Message(role="assistant", parts=(ToolUsePart(id="t1", name="n", input=tool_input),)),
        Message(role="user", parts=(ToolResultPart(tool_use_id="t1", content=content),)),
    ]


@settings(max_examples=60)
@given(objects, values)
def test_openai_chat_carries_every_digit(tool_input: Any, content: Any) -> None:
    body = openai_chat.encode_request(_exchange(tool_input, content), model="m")
    call = body["messages"][1]["tool_calls"][0]
    assert identical(jsonvalues.loads(call["function"]["arguments"]), tool_input)
    tool = body["messages"][2]
    if isinstance(content, str):
        assert tool["content"] == content
    else:
        assert identical(jsonvalues.loads(tool["content"]), content)
    # And the model's arguments come back exactly.
    assert identical(
        parse_tool_arguments("openai", "t1", call["function"]["arguments"]), tool_input
    )


@settings(max_examples=60)
@given(objects, values)
def test_anthropic_and_bedrock_carry_every_digit_or_refuse(tool_input: Any, content: Any) -> None:
    messages = _exchange(tool_input, content)
    encoders: list[Callable[[], dict[str, Any]]] = [
        lambda: anthropic_messages.encode_request(messages, model="m", max_tokens=10),
        lambda: bedrock_converse.encode_request(messages, model="m", tools=[_spec()]),
    ]
    for encode in encoders:
        if jsonvalues.has_decimal(tool_input):
            with pytest.raises(EncodingError, match="a float cannot carry exactly"):
                encode()
            continue
        body = encode()
        # What the SDKs do with the body: Python's json (no NaN), floats as repr.
        sent = json.loads(
            json.dumps(body, default=str, allow_nan=False), parse_float=jsonvalues.number
        )
        assert identical(_tool_input(sent), tool_input)
        assert identical(_tool_content(sent, content), content)


def _spec() -> Any:
    from runwire.providers.encoders.common import ToolSpec

    return ToolSpec(name="n")


def _tool_input(sent: dict[str, Any]) -> Any:
    block = sent["messages"][1]["content"][0]
    return block["input"] if "input" in block else block["toolUse"]["input"]


def _tool_content(sent: dict[str, Any], content: Any) -> Any:
    block = sent["messages"][2]["content"][0]
    result = block.get("toolResult", block)
    inner = result["content"]
    if isinstance(inner, list):
        inner = inner[0]
        if "json" in inner:
            return inner["json"]
        inner = inner["text"]
    return inner if isinstance(content, str) else jsonvalues.loads(inner)


def test_floats_stay_floats_for_ordinary_numbers() -> None:
    value = jsonvalues.loads(b'{"t": 0.5, "n": 3, "x": 1e-7}')
    assert identical(value, {"t": 0.5, "n": 3, "x": 1e-7})
    assert not any(isinstance(v, Decimal) for v in value.values())
    assert math.copysign(1.0, jsonvalues.loads("-0.0")) == -1.0


@settings(max_examples=40)
@given(objects)
def test_the_context_digest_writes_numbers_exactly(tool_input: Any) -> None:
    messages = _exchange(tool_input, tool_input)
    text = canonical_json(messages)
    again = jsonvalues.loads(text)
    assert identical(again[1]["parts"][0]["input"], tool_input)
    assert identical(again[2]["parts"][0]["content"], tool_input)
    # A Decimal is never written as a string: the two give different digests.
    number = _exchange({"x": Decimal("0.10000000000000000555")}, None)
    string = _exchange({"x": "0.10000000000000000555"}, None)
    assert model_input_digest(number) != model_input_digest(string)


@settings(max_examples=40)
@given(objects, values)
def test_responses_items_carry_every_digit(tool_input: Any, content: Any) -> None:
    items = messages_to_items(_exchange(tool_input, content))
    call = next(i for i in items if i.get("type") == "function_call")
    output = next(i for i in items if i.get("type") == "function_call_output")
    assert identical(jsonvalues.loads(call["arguments"]), tool_input)
    if not isinstance(content, str):
        assert identical(jsonvalues.loads(output["output"]), content)
    back = items_to_messages([(f"items[{i}]", item) for i, item in enumerate(items)]).messages
    uses = [p for m, _ in back for p in m.tool_uses()]
    assert identical(uses[0].input, tool_input)


def test_the_cli_shows_numbers_no_float_writes_exactly() -> None:
    from runwire.cli import run, transcript

    value = {"a": Decimal("0.10000000000000000555"), "b": 2**100}
    for text in (run._json(value), transcript._json(value)):
        assert "0.10000000000000000555" in text
        assert str(2**100) in text
