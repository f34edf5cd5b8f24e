"""The price table: what a model's tokens cost, from configuration.

Contract:
- Prices are per million tokens, in one currency (``usage_currency``,
  ``USD`` by default), exact decimals: ``input`` and ``output`` are required;
  ``cache_read`` and ``cache_write`` are needed only for usage that has such
  tokens. Reasoning tokens are output tokens and priced as such.
- The table is the TOML file ``usage_prices_file`` (a ``[models."NAME"]``
  table per model), then ``RUNWIRE_USAGE_PRICES`` (JSON ``{"NAME": {...}}``),
  whose models replace the file's. A wrong entry is a
  :class:`~runwire.errors.ConfigurationError` naming where and what.
- A model with no price, or usage with a kind of token its price lacks, has
  an unknown cost (``None``), never zero; a group with any unknown part is
  unknown as a whole and names the models that made it so.
- Prices apply when usage is read, so a changed table needs no rebuild.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from runwire.errors import ConfigurationError
from runwire.settings import Settings

PER = Decimal(1_000_000)
"""Prices are per this many tokens."""

_FIELDS = ("input", "output", "cache_read", "cache_write")
_REQUIRED = ("input", "output")


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """What a million tokens of each kind cost (None: not given)."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Counts:
    """Token counts to price (``usage`` event meanings: input leaves the cache's out)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Cost:
    """The cost of some usage: ``amount`` None when unknown, and which models made it so."""

    amount: Decimal | None
    currency: str
    unpriced: tuple[str, ...] = ()


class PriceTable:
    """Model name -> :class:`ModelPrice`; prices usage (see the module)."""

    def __init__(self, models: Mapping[str, ModelPrice], currency: str = "USD") -> None:
        self.models = dict(models)
        self.currency = currency

    @classmethod
    def from_settings(cls, settings: Settings) -> PriceTable:
        models: dict[str, ModelPrice] = {}
        if settings.usage_prices_file is not None:
            models.update(load_file(settings.usage_prices_file))
        models.update(parse_models(settings.usage_prices, "RUNWIRE_USAGE_PRICES"))
        return cls(models, settings.usage_currency)

    def price(self, model: str, counts: Counts) -> Decimal | None:
        """What ``counts`` of ``model`` cost; None when the table cannot say."""
        p = self.models.get(model)
        if p is None:
            return None
        total = p.input * counts.input_tokens + p.output * counts.output_tokens
        for tokens, unit in (
            (counts.cache_read_tokens, p.cache_read),
            (counts.cache_write_tokens, p.cache_write),
        ):
            if tokens:
                if unit is None:
                    return None
                total += unit * tokens
        return total / PER

    def total(self, parts: Iterable[tuple[str, Counts]]) -> Cost:
        """The cost of usage given as (model, counts) parts."""
        amount = Decimal(0)
        unpriced: set[str] = set()
        for model, counts in parts:
            cost = self.price(model, counts)
            if cost is None:
                unpriced.add(model)
            else:
                amount += cost
        if unpriced:
            return Cost(None, self.currency, tuple(sorted(unpriced)))
        return Cost(amount, self.currency)


def load_file(path: Path) -> dict[str, ModelPrice]:
    """The ``[models."NAME"]`` tables of a TOML price file."""
    where = f"usage_prices_file {str(path)!r}"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    except OSError as e:
        raise ConfigurationError(f"{where} cannot be read: {e.strerror or e}") from e
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigurationError(f"{where} is not valid TOML: {e}") from e
    unknown = sorted(set(data) - {"models"})
    if unknown:
        raise ConfigurationError(f"{where}: unknown top-level key(s) {unknown} (only [models])")
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise ConfigurationError(f"{where}: models must be a table of model tables")
    return parse_models(models, where)


def parse_models(models: Mapping[str, Any], where: str) -> dict[str, ModelPrice]:
    """Validate ``{model: {input, output, cache_read?, cache_write?}}``."""
    out: dict[str, ModelPrice] = {}
    for model, entry in models.items():
        at = f"{where}: model {model!r}"
        if not model:
            raise ConfigurationError(f"{where}: a model name is empty")
        if not isinstance(entry, Mapping):
            raise ConfigurationError(f"{at} must be a table of prices, not {entry!r:.60}")
        unknown = sorted(set(entry) - set(_FIELDS))
        if unknown:
            raise ConfigurationError(f"{at}: unknown price(s) {unknown} (known: {list(_FIELDS)})")
        missing = [f for f in _REQUIRED if f not in entry]
        if missing:
            raise ConfigurationError(f"{at}: missing {missing} (USD per million tokens)")
        values = {name: _amount(entry[name], f"{at}: {name}") for name in entry}
        out[model] = ModelPrice(**values)
    return out


def _amount(value: Any, at: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ConfigurationError(f"{at} must be a number, not {value!r:.60}")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ConfigurationError(f"{at} must be a number, not {value!r:.60}") from None
    if not amount.is_finite() or amount < 0:
        raise ConfigurationError(f"{at} must be a number >= 0, not {value!r:.60}")
    return amount
