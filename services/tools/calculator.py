"""Safe arithmetic: parse an expression and compute it, never ``eval`` it.

Contract:
- Accepts numbers (ints, decimals), ``+ - * / // % **`` (``^`` means ``**``),
  unary ``+``/``-`` and parentheses; nothing else (no names, calls,
  attributes, comparisons), so no input can run code.
- Bounded: at most :data:`MAX_LENGTH` characters and :data:`MAX_NODES`
  operations; integer results stay under :data:`MAX_INT_BITS` bits and
  exponents are checked before they are computed, so no input can make the
  process spin or run out of memory.
- Raises :class:`CalculatorError` with a readable message (division by zero,
  what is not allowed and where).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

__all__ = ["MAX_INT_BITS", "MAX_LENGTH", "MAX_NODES", "CalculatorError", "calculate"]

MAX_LENGTH = 1000
MAX_NODES = 500
MAX_INT_BITS = 4096

Number = int | float


class CalculatorError(ValueError):
    """The expression cannot be computed; the message says why."""


_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}


def calculate(expression: str) -> Number:
    """The value of ``expression`` (see the module contract)."""
    text = expression.strip()
    if not text:
        raise CalculatorError("the expression is empty")
    if len(text) > MAX_LENGTH:
        raise CalculatorError(f"the expression is longer than {MAX_LENGTH} characters")
    text = text.replace("^", "**").replace("\u00d7", "*").replace("\u00f7", "/")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        raise CalculatorError(f"not an arithmetic expression: {e.msg} at column {e.offset}") from e
    nodes = sum(1 for _ in ast.walk(tree))
    if nodes > MAX_NODES:
        raise CalculatorError(f"the expression has more than {MAX_NODES} parts")
    return _tidy(_eval(tree.body))


def _eval(node: ast.expr) -> Number:
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CalculatorError(f"{value!r} is not a number")
        return value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        operand = _eval(node.operand)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        op = _BINARY.get(type(node.op))
        if op is None:
            raise CalculatorError(f"the operator {type(node.op).__name__} is not allowed")
        try:
            result = op(left, right)
        except ZeroDivisionError:
            raise CalculatorError("division by zero") from None
        return _checked(result)
    what = type(node).__name__
    raise CalculatorError(f"{what} is not allowed: only numbers and + - * / // % ** ( )")


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(base, int) and isinstance(exponent, int) and exponent >= 0:
        if abs(base) > 1 and exponent * math.log2(abs(base)) >= MAX_INT_BITS:
            raise CalculatorError(f"{base} ** {exponent} is too large")
    elif abs(exponent) > 10_000:
        raise CalculatorError(f"the exponent {exponent} is too large")
    try:
        result = base**exponent
    except ZeroDivisionError:
        raise CalculatorError("zero cannot be raised to a negative power") from None
    except OverflowError:
        raise CalculatorError(f"{base} ** {exponent} is too large") from None
    if isinstance(result, complex):
        raise CalculatorError(f"{base} ** {exponent} is not a real number")
    return _checked(result)


def _checked(value: Number) -> Number:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise CalculatorError("the result is too large")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError("the result is too large")
    return value


def _tidy(value: Number) -> Number:
    """Whole floats as ints (``6 / 3`` is ``2``), others rounded to 12 significant digits."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
        return float(f"{value:.12g}")
    return value
