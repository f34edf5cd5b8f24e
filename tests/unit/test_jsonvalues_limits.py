"""The edges of what runwire takes as a JSON value (runwire.contract.jsonvalues):
numbers no decimal holds are refused where the text is parsed, saying which and
where; text no UTF-8 writer can write (a lone surrogate) is refused where a value
is accepted, by every JSON-value field alike, naming the place inside the value."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from runwire.contract import jsonvalues
from runwire.contract.events import (
    ContextSeeded,
    MemorySet,
    SessionCreated,
    SessionMetadataSet,
    ToolResult,
    ToolUse,
)
from runwire.errors import InputError
from runwire.memory.checks import require_json

# -- numbers past what a decimal holds ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "number", "place"),
    [
        ("1e999999999999999999999", "1e999999999999999999999", "line 1 column 1 (char 0)"),
        (
            '{"a": [1, "1e999999999999999999999",\n  -2.5E-99999999999999999999999]}',
            "-2.5E-99999999999999999999999",
            "line 2 column 3 (char 39)",
        ),
        ("[0.5, 12345e999999999999999999]", "12345e999999999999999999", "line 1 column 7 (char 6)"),
        (
            '{"n": ' + "7" * 60 + "e1" + "0" * 30 + "}",
            "777777777777777777777777…000000000000",
            "line 1 column 7 (char 6)",
        ),
    ],
    ids=["alone", "nested-after-a-string-that-looks-like-it", "big-mantissa", "long-literal"],
)
def test_a_number_no_decimal_holds_is_refused_naming_it_and_its_place(
    text: str, number: str, place: str
) -> None:
    with pytest.raises(jsonvalues.JsonValueError) as refused:
        jsonvalues.loads(text)
    message = str(refused.value)
    assert f"the number {number} at {place} is out of range" in message, message
    assert "999999999999999999" in message, message  # the range it is out of
    # The same as bytes (the HTTP API's body), and never another kind of error.
    with pytest.raises(jsonvalues.JsonValueError, match="out of range"):
        jsonvalues.loads(text.encode())


def test_number_refuses_such_a_number_as_a_value_error_not_an_arithmetic_one() -> None:
    with pytest.raises(ValueError, match="1e999999999999999999999 is out of range") as refused:
        jsonvalues.number("1e999999999999999999999")
    assert not isinstance(refused.value, ArithmeticError)
    # As json's own parse_float, too: a ValueError any JSON reader reports as one.
    with pytest.raises(ValueError, match="out of range"):
        json.loads("[1e-999999999999999999999]", parse_float=jsonvalues.number)


def test_numbers_a_decimal_does_hold_are_still_kept_exactly() -> None:
    assert jsonvalues.loads("1e999999999999999999") == Decimal("1e999999999999999999")
    assert jsonvalues.loads("-1E-999999999999999999") == Decimal("-1e-999999999999999999")
    assert jsonvalues.loads("[1e-999999999]") == [Decimal("1e-999999999")]
    # Zero is zero whatever its exponent: the float a zero reads as.
    zero = jsonvalues.loads("[0e999999999999999999999, -0.0E-999999999999999999999]")
    assert zero == [0.0, -0.0]
    assert [str(z) for z in zero] == ["0.0", "-0.0"]


# -- lone surrogates: not UTF-8, so no JSON runwire writes can hold them -------------------


@pytest.mark.parametrize(
    ("make", "lone", "where", "why"),
    [
        (lambda c: c, "\ud800", "value", "holds a lone surrogate (U+D800) at 0"),
        (
            lambda c: {"a": ["ok", f"x{c}y"]},
            "\udfff",
            "value.a[1]",
            "holds a lone surrogate (U+DFFF) at 1",
        ),
        (lambda c: {f"k{c}": 1}, "\ud800", "value", "has the key 'k\\ud800', which holds"),
        (
            lambda c: [{"a": {c: None}}],
            "\udc80",
            "value[0].a",
            "which holds a lone surrogate (U+DC80) at 0",
        ),
        # Off canonical's fast path (a Decimal) as well as on it.
        (lambda c: {"n": Decimal("1e400"), "t": c}, "\ud800", "value.t", "holds a lone surrogate"),
    ],
    ids=["text", "nested-text", "key", "nested-key", "beside-a-decimal"],
)
def test_canonical_refuses_a_lone_surrogate_naming_where(
    make: Any, lone: str, where: str, why: str
) -> None:
    # A whole pair (what JSON's "\ud83d\ude00" reads as) is text like any other.
    pair = jsonvalues.loads('"\\ud83d\\ude00"')
    assert pair == "😀"
    for fine in (pair, "é", "\x00"):
        assert jsonvalues.canonical(make(fine)) == make(fine)
    with pytest.raises(jsonvalues.JsonValueError) as refused:
        jsonvalues.canonical(make(lone))
    assert str(refused.value).startswith(f"{where} "), str(refused.value)
    assert why in str(refused.value)
    assert "not UTF-8" in str(refused.value)


# Every payload field that takes a JSON value, with the surrogate put in it.
JSON_VALUE_FIELDS = [
    pytest.param(lambda v: ToolResult(tool_use_id="t", content=v), id="tool_result.content"),
    pytest.param(lambda v: ToolUse(id="t", name="n", input={"q": v}), id="tool_use.input"),
    pytest.param(lambda v: SessionMetadataSet(key="m", value=[v]), id="session_metadata_set"),
    pytest.param(lambda v: SessionCreated(user_id="u", metadata={"m": v}), id="session_created"),
    pytest.param(
        lambda v: MemorySet(scope="session", owner="s", key="k", value={"v": v}),
        id="memory_set.value",
    ),
    pytest.param(
        lambda v: ContextSeeded(runs=[v], message_count=0, digest="d", provider="p"),
        id="context_seeded.runs",
    ),
]


@pytest.mark.parametrize("make", JSON_VALUE_FIELDS)
def test_every_json_value_field_refuses_a_lone_surrogate_alike(make: Any) -> None:
    assert make("fine") is not None
    with pytest.raises(ValidationError, match="holds a lone surrogate") as refused:
        make("a\ud800")
    assert "not UTF-8" in str(refused.value)


def test_the_sdk_edges_refuse_it_as_input_errors_naming_the_field() -> None:
    with pytest.raises(InputError) as refused:
        require_json({"rows": ["a", "\ud800"]}, "value")
    assert refused.value.field == "value"
    assert "value.rows[1] holds a lone surrogate" in str(refused.value)


class Score(float):
    """A float subclass, as numpy's float64 is."""


class Name(str):
    pass


def test_subclasses_of_json_types_are_their_json_type() -> None:
    value = jsonvalues.canonical({"f": Score(0.5), "s": Name("x"), "n": [Score(1e300)]})
    assert value == {"f": 0.5, "s": "x", "n": [1e300]}
    assert [type(v) for v in (value["f"], value["s"], value["n"][0])] == [float, str, float]
    assert jsonvalues.loads(jsonvalues.dumps(value)) == value
