"""Messages that list what a log or a request holds stay short however much it holds."""

from __future__ import annotations

import itertools

from runwire.errors import NAMED, listed


def test_a_few_names_are_all_named() -> None:
    assert listed(["a", "b"], 2) == "a, b"
    assert listed([], 0) == "none"
    assert listed(map(str, range(NAMED)), NAMED) == ", ".join(map(str, range(NAMED)))


def test_many_names_are_named_up_to_the_limit_and_the_rest_counted() -> None:
    names = (f"call-{i}" for i in itertools.count())  # endless: only the first are taken
    message = listed(names, 1_000_000)
    assert message.startswith("call-0, call-1, ")
    assert message.endswith(f"call-{NAMED - 1} and {1_000_000 - NAMED} more")
    assert len(message) < 200
