"""The price table: TOML and environment, exact decimals, unknown is not zero."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from runwire.errors import ConfigurationError
from runwire.projections.usage.prices import Cost, Counts, PriceTable
from runwire.settings import Settings

TOML = """
[models."gpt-4o"]
input = 2.50
output = 10.00
cache_read = 1.25

[models."claude-sonnet-4"]
input = 3
output = 15
cache_read = 0.30
cache_write = 3.75
"""


def table(tmp_path: Path, text: str = TOML, **kw: object) -> PriceTable:
    path = tmp_path / "prices.toml"
    path.write_text(text)
    return PriceTable.from_settings(Settings(usage_prices_file=path, **kw))  # type: ignore[arg-type]


def test_a_price_is_exact_per_million_tokens(tmp_path: Path) -> None:
    t = table(tmp_path)
    counts = Counts(input_tokens=1_000, output_tokens=200, cache_read_tokens=4_000)
    # 1000 * 2.50 + 200 * 10.00 + 4000 * 1.25 = 9500 per million.
    assert t.price("gpt-4o", counts) == Decimal("0.0095")
    both = Counts(1_000_000, 1_000_000, 1_000_000, 1_000_000)
    assert t.price("claude-sonnet-4", both) == Decimal("22.05")


def test_an_unknown_model_costs_unknown_not_zero(tmp_path: Path) -> None:
    t = table(tmp_path)
    assert t.price("mystery-1", Counts(input_tokens=10)) is None
    cost = t.total([("gpt-4o", Counts(input_tokens=1_000_000)), ("mystery-1", Counts(1))])
    assert cost == Cost(None, "USD", ("mystery-1",))
    assert t.total([("gpt-4o", Counts(input_tokens=1_000_000))]) == Cost(Decimal("2.5"), "USD")


def test_tokens_of_a_kind_without_a_price_make_the_cost_unknown(tmp_path: Path) -> None:
    t = table(tmp_path)
    assert t.price("gpt-4o", Counts(input_tokens=5, cache_write_tokens=1)) is None
    # None of that kind: the missing price does not matter.
    assert t.price("gpt-4o", Counts(input_tokens=5)) == Decimal("0.0000125")


def test_the_environment_adds_and_replaces_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "RUNWIRE_USAGE_PRICES",
        '{"gpt-4o": {"input": 5, "output": 20}, "local-1": {"input": 0, "output": 0}}',
    )
    t = table(tmp_path, usage_currency="EUR")
    assert t.models["gpt-4o"].input == Decimal(5)
    assert t.models["gpt-4o"].cache_read is None
    assert t.price("local-1", Counts(9, 9)) == Decimal(0)
    assert t.total([("local-1", Counts(1))]).currency == "EUR"
    assert "claude-sonnet-4" in t.models


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[models."m"]\ninput = 1\n', r"model 'm': missing \['output'\]"),
        (
            '[models."m"]\ninput = 1\noutput = 2\nreasoning = 3\n',
            r"unknown price\(s\) \['reasoning'\]",
        ),
        ('[models."m"]\ninput = -1\noutput = 2\n', r"model 'm': input must be a number >= 0"),
        ('[models."m"]\ninput = "cheap"\noutput = 2\n', r"input must be a number"),
        ('[models."m"]\ninput = true\noutput = 2\n', r"input must be a number"),
        ("[models]\nm = 3\n", r"model 'm' must be a table of prices"),
        ("[prices]\n", r"unknown top-level key\(s\) \['prices'\]"),
        ("[models\n", r"is not valid TOML"),
    ],
)
def test_a_wrong_price_file_names_where_and_what(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        table(tmp_path, text)
    assert "prices.toml" in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    settings = Settings(usage_prices_file=tmp_path / "nope.toml")
    with pytest.raises(ConfigurationError, match=r"nope\.toml.*cannot be read"):
        PriceTable.from_settings(settings)


def test_no_configuration_is_an_empty_table() -> None:
    t = PriceTable.from_settings(Settings())
    assert t.models == {}
    assert t.total([("gpt-4o", Counts(1))]).amount is None
