"""The payload-codec layer: bytes <-> bytes between the Avro body and its framing."""

from __future__ import annotations

import pytest

from runwire.contract.codec import Codec
from runwire.contract.events import Event, EventType, UserMessage
from runwire.contract.framing import SINGLE_OBJECT_HEADER_SIZE
from runwire.errors import DecodeError


class Reversing:
    """A stand-in for sealing: the body written backwards, refused when marked bad."""

    def __init__(self) -> None:
        self.sealed: list[EventType] = []

    def seal(self, event: Event, body: bytes) -> bytes:
        self.sealed.append(event.type)
        return body[::-1]

    def open(self, event_type: EventType, data: bytes) -> bytes:
        if data.startswith(b"BAD"):
            raise DecodeError("unreadable_payload", f"{event_type.value}: seal does not verify")
        return data[::-1]


EVENT = Event.create(UserMessage(parts=["a secret"]), run_id="r1", session_id="s1")


def test_the_identity_is_the_default_and_writes_the_body_as_it_is() -> None:
    plain = Codec().encode(EVENT)
    assert b"a secret" in plain
    assert Codec(payload=None).decode(plain) == EVENT


def test_a_payload_codec_sits_between_the_body_and_the_frame_header() -> None:
    layer = Reversing()
    codec = Codec(payload=layer)
    data = codec.encode(EVENT)
    plain = Codec().encode(EVENT)
    assert data[:SINGLE_OBJECT_HEADER_SIZE] == plain[:SINGLE_OBJECT_HEADER_SIZE]  # header clear
    assert data[SINGLE_OBJECT_HEADER_SIZE:] == plain[SINGLE_OBJECT_HEADER_SIZE:][::-1]
    assert b"a secret" not in data
    assert layer.sealed == [EventType.USER_MESSAGE]
    assert codec.decode(data) == EVENT


def test_a_body_the_payload_codec_cannot_open_is_a_decode_error_with_its_reason() -> None:
    codec = Codec(payload=Reversing())
    header = codec.encode(EVENT)[:SINGLE_OBJECT_HEADER_SIZE]
    with pytest.raises(DecodeError) as refused:
        codec.decode(header + b"BAD" + b"\x00" * 8)
    assert refused.value.reason == "unreadable_payload"
