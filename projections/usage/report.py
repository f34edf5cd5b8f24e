"""Usage as people and scripts read it: priced groups, and the days a window names.

Contract:
- :func:`priced` is one group as JSON-ready data: its key, calls, token
  counts, its cost (a decimal string, exact; None when unknown) with the
  currency and the models without a price, and the same per model. The CLI's
  ``--json`` and the HTTP API give this shape.
- :func:`parse_day` reads a window's bound: ``7d`` (the 7 UTC days ending
  today, so ``--since 1d`` is today) or an ISO date; anything else is an
  :class:`~runwire.errors.InputError` naming the option.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from runwire.errors import InputError
from runwire.projections.usage.fold import COUNTS
from runwire.projections.usage.prices import Cost, PriceTable
from runwire.projections.usage.reader import Tokens, UsageGroup

_DAYS = re.compile(r"^([1-9][0-9]{0,4})d$")


def today() -> date:
    """The current UTC day."""
    return datetime.now(UTC).date()


def parse_day(text: str | None, option: str, *, now: date | None = None) -> date | None:
    """``Nd`` (the first of the N UTC days ending today) or an ISO date (``YYYY-MM-DD``)."""
    if text is None or text == "":
        return None
    match = _DAYS.match(text)
    if match:
        return (now or today()) - timedelta(days=int(match.group(1)) - 1)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(
            option, f"{text!r:.40} is neither a number of days (7d) nor a date (2026-03-02)"
        ) from None


def _tokens(tokens: Tokens) -> dict[str, int]:
    return {
        "calls": tokens.calls,
        **{name: getattr(tokens, name) for name in COUNTS},
        "total_tokens": tokens.total_tokens,
    }


def _cost(cost: Cost) -> dict[str, Any]:
    return {
        "cost": None if cost.amount is None else format(cost.amount, "f"),
        "currency": cost.currency,
        "unpriced_models": list(cost.unpriced),
    }


def priced(group: UsageGroup, prices: PriceTable) -> dict[str, Any]:
    """One group with its cost and its split by model (see the module)."""
    parts = [(m.model, m.tokens.counts()) for m in group.models]
    return {
        "key": group.key,
        **_tokens(group.tokens),
        **_cost(prices.total(parts)),
        "models": [
            {
                "model": m.model,
                "provider": m.provider,
                **_tokens(m.tokens),
                **_cost(prices.total([(m.model, m.tokens.counts())])),
            }
            for m in group.models
        ],
    }
