"""A dead letter always fits its topic: whole when it can, else a truncated copy with a digest."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from runwire.projections.runtime.consumer import is_transient
from runwire.projections.runtime.dead_letters import (
    KEY_SHA256,
    TRUNCATED_FROM,
    VALUE_SHA256,
    DeadLetter,
    dead_letter_headers,
    fit_dead_letter,
    record_size,
)
from runwire.projections.runtime.protocol import Rejection

BUDGET = 100_000


def rejection(value: bytes, key: bytes = b"run-1", headers: int = 0) -> Rejection:
    return Rejection(
        topic="t.run-events",
        partition=3,
        offset=42,
        key=key,
        value=value,
        headers=tuple((f"h{i}", b"v" * 100) for i in range(headers)),
        reason="bad_magic",
        error_class="DecodeError",
        message="bad_magic: not a framing runwire knows",
    )


def fit(r: Rejection, budget: int = BUDGET) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    return fit_dead_letter(r.key, r.value, dead_letter_headers(r, "runs"), budget)


def test_a_dead_letter_that_fits_is_written_whole() -> None:
    r = rejection(b"x" * 50_000, headers=3)
    given = dead_letter_headers(r, "runs")
    assert fit_dead_letter(r.key, r.value, given, BUDGET) == (r.key, r.value, given)


def test_a_value_too_big_becomes_its_leading_bytes_with_length_and_digest() -> None:
    original = bytes(range(256)) * 2_000  # 512,000 bytes
    key, value, headers = fit(rejection(original, headers=3))
    assert record_size(key, value, headers) <= BUDGET
    assert record_size(key, value, headers) > BUDGET - 16  # as much as fits
    assert original.startswith(value)
    found = dict(headers)
    assert found[TRUNCATED_FROM] == b"512000"
    assert found[VALUE_SHA256] == hashlib.sha256(original).hexdigest().encode()
    assert "h0" in found  # the original headers are kept when they fit
    assert key == b"run-1"


def test_a_huge_key_and_headers_are_cut_too() -> None:
    huge_key = b"k" * 200_000
    key, value, headers = fit(rejection(b"v" * 10, key=huge_key, headers=2_000))
    assert record_size(key, value, headers) <= BUDGET
    found = dict(headers)
    assert found[KEY_SHA256] == hashlib.sha256(huge_key).hexdigest().encode()
    assert key is not None
    assert huge_key.startswith(key)
    assert "h0" not in found  # the original headers went
    assert found["runwire-dlq-source-offset"] == b"42"  # the coordinates stay


def test_a_truncated_copy_reads_back_with_its_length_and_digest() -> None:
    original = b"y" * 300_000
    key, value, headers = fit(rejection(original))
    record = SimpleNamespace(
        partition=0, offset=7, timestamp=1, key=key, value=value, headers=headers
    )
    letter = DeadLetter.from_record(record)
    assert letter.truncated_from == len(original)
    assert letter.sha256 == hashlib.sha256(original).hexdigest()
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "t.run-events",
        3,
        42,
    )
    whole = DeadLetter.from_record(SimpleNamespace(**{**vars(record), "headers": []}))
    assert whole.truncated_from is None
    assert whole.sha256 is None


def test_too_large_is_not_transient_but_an_unreachable_broker_is() -> None:
    assert not is_transient(MessageSizeTooLargeError())
    assert is_transient(KafkaConnectionError())
