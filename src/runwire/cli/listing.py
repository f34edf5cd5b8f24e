"""How ``list`` and ``show`` commands print projection rows: JSON for scripts, tables for people.

The run-status and session-index commands share the filter options' parsing
and the same two shapes of output (a keyset page of rows, one row), so they
print through these helpers and stay alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from runwire.contract import jsonvalues
from runwire.errors import ConfigurationError

console = Console(highlight=False)

Column = tuple[str, Callable[[Mapping[str, Any]], str]]
"""A table column: its header and how a row's cell reads."""


def parse_labels(pairs: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` to a dict; a clear error for anything else."""
    labels: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"--label wants KEY=VALUE, got {pair!r}")
        labels[key] = value
    return labels


def parse_time(text: str | None, option: str) -> datetime | None:
    """An ISO 8601 time (a date alone means midnight UTC)."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(f"{option} wants an ISO 8601 time, got {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def field(name: str) -> Callable[[Mapping[str, Any]], str]:
    """A cell showing ``row[name]`` as text (None as empty)."""
    return lambda row: "" if row[name] is None else str(row[name])


def timestamp(name: str) -> Callable[[Mapping[str, Any]], str]:
    """A cell showing an ISO time to the second."""
    return lambda row: str(row[name])[:19]


def print_page(page: Mapping[str, Any], key: str, columns: Sequence[Column], as_json: bool) -> None:
    """A page ``{key: [rows], "next_page": token}`` as JSON or a table with a next-page hint."""
    if as_json:
        typer.echo(json.dumps(page, indent=2))
        return
    table = Table()
    for header, _ in columns:
        table.add_column(header)
    for row in page[key]:
        table.add_row(*(cell(row) for _, cell in columns))
    console.print(table)
    if page["next_page"]:
        console.print(f"[dim]more: --page {page['next_page']}[/]")


def print_row(row: Mapping[str, Any], title: str, hidden: Sequence[str], as_json: bool) -> None:
    """One row as JSON or as a two-column table (structured values as JSON), minus ``hidden``."""
    if as_json:
        typer.echo(json.dumps(row, indent=2))
        return
    table = Table(show_header=False, title=title, title_justify="left")
    for name, value in row.items():
        if name in hidden:
            continue
        if value is None:
            text = ""
        elif isinstance(value, dict | list):
            text = (
                jsonvalues.dumps_text(value) if jsonvalues.has_decimal(value) else json.dumps(value)
            )
        else:
            text = str(value)
        table.add_row(name, text)
    console.print(table)
