"""AWS event-stream framing (application/vnd.amazon.eventstream), encoder side.

botocore only ships the decoder; the fake Bedrock server needs to write what
botocore reads. Frame layout (all integers big-endian):

    total length u32 | headers length u32 | prelude CRC32 u32 |
    headers | payload | message CRC32 u32

Each header: name length u8, name, value type u8 (7 = string), value length
u16, value.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping
from typing import Any

_STRING = 7


def encode_headers(headers: Mapping[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack("!B", len(raw_name)) + raw_name
        out += struct.pack("!BH", _STRING, len(raw_value)) + raw_value
    return bytes(out)


def encode_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    raw_headers = encode_headers(headers)
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack("!II", total, len(raw_headers))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    body = prelude + raw_headers + payload
    return body + struct.pack("!I", zlib.crc32(body))


def event(event_type: str, payload: Mapping[str, Any]) -> bytes:
    """One ``:message-type: event`` frame with a JSON payload."""
    return encode_message(
        {
            ":event-type": event_type,
            ":content-type": "application/json",
            ":message-type": "event",
        },
        json.dumps(payload).encode(),
    )


def exception(exception_type: str, message: str) -> bytes:
    """One ``:message-type: exception`` frame, as Bedrock sends mid-stream errors."""
    return encode_message(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        json.dumps({"message": message}).encode(),
    )
