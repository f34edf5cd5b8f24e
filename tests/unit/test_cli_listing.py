"""The listing helpers shared by ``runwire runs`` and ``runwire sessions``."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from runwire.cli import listing
from runwire.errors import ConfigurationError

ROWS = {
    "runs": [
        {"run_id": "r1", "session_id": None, "started_at": "2026-11-22T06:00:00.123456+00:00"},
        {"run_id": "r2", "session_id": "s1", "started_at": "2026-11-22T07:00:00+00:00"},
    ],
    "next_page": "tok",
}
COLUMNS: list[listing.Column] = [
    ("run", listing.field("run_id")),
    ("session", listing.field("session_id")),
    ("started", listing.timestamp("started_at")),
]


def test_a_page_prints_as_a_table_with_the_next_page_hint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    listing.print_page(ROWS, "runs", COLUMNS, as_json=False)
    out = capsys.readouterr().out
    assert "session" in out
    assert "r2" in out
    assert "s1" in out
    assert "2026-11-22T06:00:00" in out
    assert ".123456" not in out
    assert "more: --page tok" in out


def test_a_page_prints_as_json_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    listing.print_page(ROWS, "runs", COLUMNS, as_json=True)
    assert json.loads(capsys.readouterr().out) == ROWS


def test_a_row_hides_what_it_is_told_and_shows_structures_as_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    row = {"run_id": "r1", "labels": {"k": "v"}, "error": None, "count": 3}
    listing.print_row(row, "run r1", ("run_id",), as_json=False)
    out = capsys.readouterr().out
    assert '{"k": "v"}' in out
    assert "count" in out
    assert "3" in out
    assert "run_id" not in out


def test_filters_parse_or_name_the_option() -> None:
    assert listing.parse_labels(["a=1", "b=x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(ConfigurationError, match="--label wants KEY=VALUE, got 'oops'"):
        listing.parse_labels(["oops"])
    assert listing.parse_time("2026-11-22", "--since") == datetime(2026, 11, 22, tzinfo=UTC)
    with pytest.raises(ConfigurationError, match="--until wants an ISO 8601 time"):
        listing.parse_time("yesterday", "--until")
