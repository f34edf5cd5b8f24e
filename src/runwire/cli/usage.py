"""``runwire usage``: tokens and cost grouped by agent, session, user, model, run, provider or day.

Reads the usage projection (``runwire serve projector-usage`` keeps it) and
prices it with the configured price table (docs/usage.md). Every user's
usage: this is an operator's command (the HTTP API scopes to the caller).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer
from rich.table import Table

from runwire.cli import listing
from runwire.cli.common import ADMIN_HELP, fail_on_runwire_error, settings_for


async def _summary(query: dict[str, Any], admin: bool) -> dict[str, Any]:
    from runwire.projections.usage.prices import PriceTable
    from runwire.projections.usage.reader import UsageStore
    from runwire.projections.usage.report import priced

    settings = settings_for(admin)
    prices = PriceTable.from_settings(settings)  # a wrong table fails before any query
    async with await UsageStore.connect(settings) as store:
        groups = await store.summary(**query)
    return {
        "by": query["by"],
        "since": None if query["since"] is None else query["since"].isoformat(),
        "until": None if query["until"] is None else query["until"].isoformat(),
        "groups": [priced(g, prices) for g in groups],
    }


_SHOWN = (
    ("calls", "calls"),
    ("input", "input_tokens"),
    ("output", "output_tokens"),
    ("cache r", "cache_read_tokens"),
    ("cache w", "cache_write_tokens"),
    ("reason", "reasoning_tokens"),
)


def compact(n: int) -> str:
    """A count as people read it at a glance: 950, 12.3k, 4.56M, 7.89G."""
    for unit, size in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= size:
            value = n / size
            return f"{value:.3g}{unit}" if value < 1000 else f"{value:,.0f}{unit}"
    return str(n)


def _print(result: dict[str, Any]) -> None:
    currency = result["groups"][0]["currency"] if result["groups"] else ""
    table = Table()
    table.add_column(result["by"], overflow="fold")
    for header, _ in _SHOWN:
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column(f"cost {currency}".strip(), justify="right", no_wrap=True)
    unpriced: set[str] = set()
    for g in result["groups"]:
        unpriced.update(g["unpriced_models"])
        cost = "unknown" if g["cost"] is None else f"{float(g['cost']):,.4f}"
        table.add_row(
            "(none)" if g["key"] is None else g["key"],
            *(compact(g[name]) for _, name in _SHOWN),
            cost,
        )
    listing.console.print(table)
    if unpriced:
        names = ", ".join(sorted(unpriced))
        listing.console.print(f"[dim]unknown: no price for {names} (docs/usage.md)[/]")
    if not result["groups"]:
        listing.console.print("[dim]no usage in this window[/]")


def usage(
    by: str = typer.Option(
        "agent", "--by", help="agent | session | user | model | run | provider | day"
    ),
    since: str | None = typer.Option(
        "7d", help="The first UTC day: Nd (the N days ending today) or YYYY-MM-DD."
    ),
    until: str | None = typer.Option(None, help="The UTC day the window ends before (YYYY-MM-DD)."),
    user: str | None = typer.Option(None, "--user", help="Only this user's usage."),
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant's usage."),
    limit: int = typer.Option(50, min=1, max=10_000, help="Groups to show (the newest days)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    admin: bool = typer.Option(False, "--admin", help=ADMIN_HELP),
) -> None:
    """Tokens and cost of model calls, grouped, from the usage projection."""
    from runwire.projections.usage.reader import check_query
    from runwire.projections.usage.report import parse_day

    with fail_on_runwire_error():
        check_query(by, limit)
        query = {
            "by": by,
            "since": parse_day(since, "--since"),
            "until": parse_day(until, "--until"),
            "user_id": user,
            "tenant": tenant,
            "limit": limit,
        }
        result = asyncio.run(_summary(query, admin))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        _print(result)
