"""How usage is reported: the window's days, priced groups, compact counts."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from runwire.cli.usage import compact
from runwire.errors import InputError
from runwire.projections.usage.prices import ModelPrice, PriceTable
from runwire.projections.usage.reader import ModelUsage, Tokens, UsageGroup
from runwire.projections.usage.report import parse_day, priced

TODAY = date(2026, 3, 10)


@pytest.mark.parametrize(
    ("text", "day"),
    [("1d", TODAY), ("7d", date(2026, 3, 4)), ("2026-01-31", date(2026, 1, 31)), (None, None)],
)
def test_a_window_bound_is_days_ending_today_or_a_date(text: str | None, day: date) -> None:
    assert parse_day(text, "--since", now=TODAY) == day


@pytest.mark.parametrize("text", ["0d", "7", "7 days", "-3d", "2026-13-01", "yesterday"])
def test_a_bad_window_bound_names_the_option(text: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_day(text, "--since", now=TODAY)
    assert caught.value.field == "--since"


def test_a_group_is_priced_as_a_whole_and_per_model() -> None:
    prices = PriceTable({"m1": ModelPrice(Decimal(1), Decimal(2))}, "EUR")
    group = UsageGroup(
        "agent-1",
        Tokens(3, 3_000_000, 1_000_000, 0, 0, 10),
        (
            ModelUsage("m1", "openai", Tokens(2, 1_000_000, 1_000_000, 0, 0, 10)),
            ModelUsage("m2", "bedrock", Tokens(1, 2_000_000)),
        ),
    )
    out = priced(group, prices)
    assert out["cost"] is None
    assert out["unpriced_models"] == ["m2"]
    assert out["total_tokens"] == 4_000_000
    assert [(m["model"], m["cost"], m["currency"]) for m in out["models"]] == [
        ("m1", "3", "EUR"),
        ("m2", None, "EUR"),
    ]
    tiny = UsageGroup("x", Tokens(1, 1), (ModelUsage("m1", "openai", Tokens(1, 1)),))
    assert priced(tiny, prices)["cost"] == "0.000001"  # never 1E-6


def test_counts_are_compact() -> None:
    assert [compact(n) for n in (0, 999, 1_000, 12_345, 4_560_000, 7_890_000_000)] == [
        "0",
        "999",
        "1k",
        "12.3k",
        "4.56M",
        "7.89G",
    ]
    assert compact(12_345 * 10**9) == "12,345G"
