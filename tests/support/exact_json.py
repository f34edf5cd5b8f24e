"""The test oracle for exact JSON values (docs/json-numbers.md)."""

from __future__ import annotations

from typing import Any


def identical(a: Any, b: Any) -> bool:
    """Equal, with the same types, key order and sign of zero, all the way down.

    ``==`` alone would take ``1 == 1.0``, ``-0.0 == 0.0`` and a float equal to
    an int for the same value.
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(identical(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(identical(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return repr(a) == repr(b)
    return bool(a == b)
