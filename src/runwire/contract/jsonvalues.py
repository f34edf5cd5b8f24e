"""JSON values with exact numbers: the one place runwire parses and writes them.

Contract (the rule is written out in docs/json-numbers.md):
- A JSON number is the decimal its text writes; runwire keeps that decimal
  exactly through events, Avro records, caches, stores and encoders.
- In Python: an integer literal (no fraction, no exponent) is an ``int`` of any
  size (up to ``MAX_INT_DIGITS`` digits, Python's own limit); any other number
  is a ``float`` when the float writes back as the same decimal (``0.1``,
  ``1e308``, ``-0.0``: JSON as usual), else a :class:`~decimal.Decimal`
  holding the text's exact value (``0.10000000000000000555``, ``1e400``).
- :func:`canonical` gives a Python value that form: a ``Decimal`` a float
  writes the same becomes that float, one without fraction or exponent (``5``)
  an ``int``. ``loads(dumps(v)) == v``, same types, for every canonical ``v``.
- :func:`loads` refuses what is not JSON (NaN, Infinity, trailing data),
  numbers no ``Decimal`` holds (an exponent past about ±10**18, such as
  ``1e999999999999999999999``: named, with their place in the text), text
  or keys holding a lone surrogate (an escape such as ``"\\ud800"``: named,
  with the place in the value) and
  values nested deeper than ``MAX_DEPTH`` levels, the most :func:`dumps` can
  write back (a value read must be one every reader can pass on);
  :func:`canonical` refuses what JSON cannot hold (non-finite numbers, tuples,
  sets, bytes, non-string keys, text or keys holding a lone surrogate, which
  is not UTF-8, other objects, values nested deeper than ``MAX_DEPTH``
  levels, where Python's recursion would fail first), naming where in the
  value. Every model field of a JSON value goes through it, so each refuses
  the same things the same way.
- :func:`dumps` writes compact UTF-8 JSON, key order kept: ints as digits,
  floats as their shortest text, Decimals as their exact text.
- :func:`jsonb_text` is the spelling for Postgres ``jsonb``, whose ``numeric``
  drops exponents (``1e308`` comes back as 309 digits): every non-integer
  number is written positionally with a fraction, so it reads back as one.
  :func:`stored_problem` says what ``numeric`` cannot hold (``-0.0``, too many
  digits).
"""

from __future__ import annotations

import base64
import json
import math
import re
import sys
from collections.abc import Callable
from decimal import MAX_EMAX, Decimal
from typing import Any

import orjson

__all__ = [
    "MAX_DEPTH",
    "MAX_HELD_DEPTH",
    "MAX_INT_DIGITS",
    "JsonValueError",
    "bytes_as_base64",
    "canonical",
    "deeper_than",
    "dumps",
    "dumps_text",
    "has_decimal",
    "jsonb_text",
    "loads",
    "number",
    "stored_problem",
]

MAX_INT_DIGITS = sys.get_int_max_str_digits() or 4300
"""The most digits an integer may have (Python's int/str conversion limit)."""

MAX_DEPTH = 254
"""The most levels of arrays and objects a JSON value may nest (orjson writes no deeper)."""

MAX_HELD_DEPTH = 200
"""The most levels a value handed to runwire may nest when it is kept inside
another (a framework's item in a run's state, a checkpoint in its event): far
below :data:`MAX_DEPTH`, so the levels around it never take it past that."""

# Postgres numeric: up to 131072 digits before the decimal point, 16383 after.
_PG_INT_DIGITS = 131072
_PG_FRACTION_DIGITS = 16383


class JsonValueError(ValueError):
    """Not a JSON value, or not JSON text; the message says what and where."""


class _OutOfRange(JsonValueError):
    """A number whose exponent no ``Decimal`` holds (``text``: the number; ``place``:
    where it stands in the JSON text, when known)."""

    def __init__(self, text: str, place: str = "") -> None:
        shown = text if len(text) <= 40 else f"{text[:24]}…{text[-12:]}"
        super().__init__(
            f"the number {shown}{place} is out of range: its exponent is past "
            f"±{MAX_EMAX}, the most a decimal holds"
        )
        self.text = text


def number(text: str) -> int | float | Decimal:
    """The Python value of one JSON number's ``text`` (the contract's form).

    Raises :class:`JsonValueError` for a number whose exponent no ``Decimal``
    holds (past about ±10**18), which no float holds either.
    """
    if "." not in text and "e" not in text and "E" not in text:
        return int(text)
    value = float(text)
    try:
        if math.isfinite(value):
            shortest = repr(value)
            # Most texts are a float's shortest text already; else compare the decimals.
            if shortest == text or Decimal(shortest) == Decimal(text):
                return value
        return Decimal(text)
    except ArithmeticError:  # decimal.InvalidOperation: the exponent is out of its range
        if value == 0 and not text.lower().partition("e")[0].strip("-+0."):
            return value  # 0e999999999999999999999 is zero all the same
        raise _OutOfRange(text) from None


def _refuse_constant(name: str) -> Any:
    raise JsonValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_float=number, parse_constant=_refuse_constant)


def loads(data: str | bytes | bytearray | memoryview, *, lone_surrogates: bool = False) -> Any:
    """The JSON value in ``data`` (UTF-8 bytes or text), numbers exact.

    ``lone_surrogates``: keep text holding a lone surrogate, for a caller whose
    every field refuses it itself, naming the field (the HTTP API's bodies:
    :func:`canonical`); a record of the log is read without it.
    """
    if not isinstance(data, str):
        data = bytes(data)
    # Fast path: what orjson parses and writes back byte for byte has every
    # number as a float's shortest text or a 64-bit integer: parsed exactly.
    try:
        value = orjson.loads(data)
        if orjson.dumps(value) == (data if isinstance(data, bytes) else data.encode()):
            return value
    except (orjson.JSONDecodeError, TypeError, UnicodeEncodeError):
        pass
    text = data if isinstance(data, str) else _utf8(data)
    try:
        value = _DECODER.decode(text)
    except _OutOfRange as e:
        placed = _OutOfRange(e.text, _place(text, e.text))
        raise JsonValueError(f"not a JSON value runwire keeps: {placed}") from None
    except JsonValueError:
        raise
    except json.JSONDecodeError as e:
        raise JsonValueError(f"not JSON: {e}") from None
    except ValueError as e:  # an integer over MAX_INT_DIGITS
        raise JsonValueError(f"not a JSON value runwire keeps: {e}") from None
    except RecursionError:  # Python's parser gives up near 1000 levels
        raise JsonValueError(_TOO_DEEP) from None
    # Only here, off the fast path: what orjson wrote back is no deeper than it can write.
    if deeper_than(value, MAX_DEPTH):
        raise JsonValueError(_TOO_DEEP)
    # orjson refuses a lone surrogate (an escape such as JavaScript writes for one,
    # or one in ``data`` given as text); the standard parser reads it. Such text
    # is not UTF-8: no writer can pass it on, so it is refused here, where every
    # reader of the log reads it, not later by whichever writes it again.
    if not lone_surrogates and (_SURROGATE_ESCAPE.search(text) or _SURROGATE.search(text)):
        problem = _lone_surrogate(value, "value")
        if problem is not None:
            raise JsonValueError(f"not a JSON value runwire keeps: {problem}")
    return value


# A surrogate written as an escape (one half of a pair, or alone).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _lone_surrogate(value: Any, where: str) -> str | None:
    """Where ``value`` holds a lone surrogate (in text or a key), and which; None: nowhere."""
    if isinstance(value, str):
        why = _not_utf8(value)
        return None if why is None else f"{where} {why}"
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _lone_surrogate(item, f"{where}[{i}]")
            if found is not None:
                return found
    elif isinstance(value, dict):
        for key, item in value.items():
            why = _not_utf8(key)
            if why is not None:
                return f"{where} has the key {key!r:.50}, which {why}"
            found = _lone_surrogate(item, f"{where}.{key}")
            if found is not None:
                return found
    return None


_TOO_DEEP = f"not a JSON value runwire keeps: nested deeper than {MAX_DEPTH} levels"

# The tokens of JSON text that hold digits: strings (skipped) and numbers.
_TOKENS = re.compile(
    r'"[^"\\]*(?:\\.[^"\\]*)*"|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?'
)


def _place(text: str, literal: str) -> str:
    """Where the number ``literal`` first stands in the JSON ``text``, as ``json`` says it."""
    for token in _TOKENS.finditer(text):
        if token.group() == literal:
            at = token.start()
            line, column = text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)
            return f" at line {line} column {column} (char {at})"
    return ""


def deeper_than(value: Any, limit: int) -> bool:
    """True when ``value`` nests arrays and objects more than ``limit`` levels deep
    (an array or object is one level; a scalar none)."""
    level: list[Any] = [value]
    for _ in range(limit):
        level = [
            child
            for v in level
            if isinstance(v, list | dict)
            for child in (v.values() if isinstance(v, dict) else v)
        ]
        if not level:
            return False
    return any(isinstance(v, list | dict) for v in level)


def _utf8(data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError as e:
        raise JsonValueError(f"not UTF-8: {e}") from None


def _fragment(value: Any) -> orjson.Fragment:
    if isinstance(value, Decimal):
        return orjson.Fragment(_decimal_text(value, "a number"))
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _decimal_text(value: Decimal, where: str) -> str:
    if not value.is_finite():
        raise JsonValueError(f"{where} is {value}, which JSON cannot hold")
    return str(value)


def _big_ints(value: Any) -> Any:
    """``value`` with integers beyond 64 bits as fragments (orjson refuses them)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if -(2**63) <= value < 2**64:
            return value
        return orjson.Fragment(str(value))
    if isinstance(value, dict):
        return {k: _big_ints(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_big_ints(v) for v in value]
    return value


def dumps(
    value: Any, *, sort_keys: bool = False, default: Callable[[Any], Any] | None = None
) -> bytes:
    """Compact UTF-8 JSON of ``value``, numbers exact (key order kept unless ``sort_keys``).

    ``default`` turns other objects into JSON values (as orjson's); Decimals are
    written by their text whatever it does.
    """
    option = orjson.OPT_SORT_KEYS if sort_keys else 0

    def fallback(o: Any) -> Any:
        if isinstance(o, Decimal) or default is None:
            return _fragment(o)
        return default(o)

    try:
        return orjson.dumps(value, default=fallback, option=option)
    except orjson.JSONEncodeError as e:
        if "Integer exceeds 64-bit range" not in str(e):
            raise JsonValueError(f"not a JSON value: {e}") from None
    try:
        return orjson.dumps(_big_ints(value), default=fallback, option=option)
    except orjson.JSONEncodeError as e:
        raise JsonValueError(f"not a JSON value: {e}") from None


def bytes_as_base64(value: Any) -> str:
    """A :func:`dumps` ``default`` for models dumped in Python mode: bytes as
    URL-safe base64, the way pydantic's ``ser_json_bytes="base64"`` writes them."""
    if isinstance(value, bytes):
        return base64.urlsafe_b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def dumps_text(value: Any, *, sort_keys: bool = False) -> str:
    """:func:`dumps` as ``str``."""
    return dumps(value, sort_keys=sort_keys).decode()


def canonical(value: Any, where: str = "value") -> Any:
    """``value`` in the contract's form (``value`` itself when it already is).

    Raises :class:`JsonValueError` naming the place (``where``, then the path
    inside) of the first thing JSON cannot hold.
    """
    # Fast path: orjson writes it and reads back an equal value (no Decimal, no
    # big integer, no NaN, which orjson would write as null, no tuple).
    try:
        if orjson.loads(orjson.dumps(value)) == value:
            return value
    except (TypeError, orjson.JSONDecodeError):
        pass
    return _canonical(value, where, 0)


def _canonical(value: Any, where: str, depth: int) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        why = _not_utf8(value)
        if why is not None:
            raise JsonValueError(f"{where} {why}")
        return value if type(value) is str else str(value)
    if isinstance(value, int):
        try:
            str(value)  # Python refuses integers over MAX_INT_DIGITS digits here
        except ValueError:
            raise JsonValueError(f"{where}: an integer over {MAX_INT_DIGITS} digits") from None
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise JsonValueError(f"{where} is {value}, which JSON cannot hold")
        # A subclass (numpy's float64) as the float it is: orjson writes no subclass.
        return value if type(value) is float else float(value)
    if isinstance(value, Decimal):
        return number(_decimal_text(value, where))
    if isinstance(value, list | dict) and depth >= MAX_DEPTH:
        raise JsonValueError(f"{where} is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, list):
        return [_canonical(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise JsonValueError(f"{where} has the key {k!r:.50}: JSON keys are strings")
            why = _not_utf8(k)
            if why is not None:
                raise JsonValueError(f"{where} has the key {k!r:.50}, which {why}")
            out[k] = _canonical(v, f"{where}.{k}", depth + 1)
        return out
    if isinstance(value, tuple):
        raise JsonValueError(f"{where} is a tuple: a JSON array is a list")
    raise JsonValueError(f"{where} is a {type(value).__name__}, not a JSON value: {value!r:.100}")


# Lone surrogates: Python text, but not UTF-8, so no JSON runwire writes can hold them.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _not_utf8(text: str) -> str | None:
    """Why ``text`` is not UTF-8 (it holds a lone surrogate), or None when it is."""
    bad = None if text.isascii() else _SURROGATE.search(text)
    if bad is None:
        return None
    return f"holds a lone surrogate (U+{ord(bad.group()):04X}) at {bad.start()}: not UTF-8 text"


def has_decimal(value: Any) -> bool:
    """True when ``value`` holds a Decimal (a number a float cannot write)."""
    if isinstance(value, Decimal):
        return True
    if isinstance(value, dict):
        return any(has_decimal(v) for v in value.values())
    if isinstance(value, list):
        return any(has_decimal(v) for v in value)
    return False


def _stored_number(value: float | Decimal) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else value


def stored_problem(value: Any, where: str = "value") -> tuple[str, str] | None:
    """Where and why Postgres ``jsonb`` cannot keep ``value`` exactly (None: it can)."""
    return _stored_problem(value, where, signed_zero=True)


def _stored_problem(value: Any, where: str, *, signed_zero: bool) -> tuple[str, str] | None:
    if isinstance(value, float | Decimal):
        d = _stored_number(value)
        if not d.is_finite():
            return where, f"{value} is not a JSON number"
        if signed_zero and d.is_zero() and d.is_signed():
            return where, "is -0.0: Postgres numeric has no negative zero (write 0.0)"
        if d.adjusted() + 1 > _PG_INT_DIGITS:
            return where, f"a number over {_PG_INT_DIGITS} digits, which Postgres cannot store"
        if -int(d.as_tuple().exponent) > _PG_FRACTION_DIGITS:
            return where, (
                f"a number with over {_PG_FRACTION_DIGITS} digits after the point, "
                "which Postgres cannot store"
            )
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            found = _stored_problem(v, f"{where}.{k}", signed_zero=signed_zero)
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _stored_problem(v, f"{where}[{i}]", signed_zero=signed_zero)
            if found:
                return found
    return None


def _positional(value: Any) -> Any:
    if isinstance(value, float | Decimal):
        plain = format(_stored_number(value), "f")
        return orjson.Fragment(plain if "." in plain else plain + ".0")
    if isinstance(value, dict):
        return {k: _positional(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_positional(v) for v in value]
    return value


def _plain(value: Any) -> bool:
    """True when :func:`dumps` already writes ``value`` as :func:`jsonb_text` must:
    no Decimal, and every float finite with a positional shortest text.

    orjson writes such a float as ``repr`` does (its shortest digits, positional,
    with a fraction; a unit test compares them), and ``numeric`` holds every one
    of them (under 17 digits before the point, under 25 after).
    """
    if isinstance(value, float):
        text = repr(value)
        return "e" not in text and "n" not in text  # 1e+16, inf, nan
    if isinstance(value, dict):
        return all(_plain(v) for v in value.values())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return not isinstance(value, Decimal)


def jsonb_text(value: Any, where: str = "value") -> str:
    """JSON text of ``value`` that Postgres ``jsonb`` reads back as the same value
    (``-0.0`` aside: ``numeric`` makes it ``0.0``; :func:`stored_problem` says so).

    Raises :class:`JsonValueError` for a number over ``numeric``'s digits (checked
    before any number is written out, so a huge exponent costs nothing).
    """
    if _plain(value):
        # The usual value: written as it is, without a copy with every float
        # rewritten (a projection writes one per row).
        return dumps(value).decode()
    problem = _stored_problem(value, where, signed_zero=False)
    if problem is not None:
        raise JsonValueError(f"{problem[0]}: {problem[1]}")
    return dumps(_positional(value)).decode()
