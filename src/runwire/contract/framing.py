"""Layer 3 of the codec: the header that tells a reader which schema wrote the body.

Contract:
- Avro single-object encoding (the default): ``C3 01`` + the writer schema's
  8-byte little-endian CRC-64-AVRO fingerprint + the Avro body.
- Confluent wire format: ``00`` + the 4-byte big-endian schema-registry id + the
  Avro body.
- ``read_header`` never guesses: anything else is a ``DecodeError`` with
  reason ``bad_magic``, a header cut short is ``truncated``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import StrEnum

from runwire.errors import DecodeError

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
SINGLE_OBJECT_HEADER_SIZE = 10
CONFLUENT_MAGIC = 0
CONFLUENT_HEADER_SIZE = 5
_SCHEMA_ID = struct.Struct(">I")


class Framing(StrEnum):
    SINGLE_OBJECT = "single_object"
    CONFLUENT = "confluent"


@dataclass(frozen=True, slots=True)
class Header:
    """What a framed value says about its writer schema."""

    framing: Framing
    fingerprint: bytes | None
    """The 8 fingerprint bytes (single-object encoding)."""
    schema_id: int | None
    """The schema-registry id (Confluent wire format)."""
    body_offset: int


def single_object_header(fingerprint: bytes) -> bytes:
    if len(fingerprint) != 8:
        raise ValueError(f"a CRC-64-AVRO fingerprint has 8 bytes, got {len(fingerprint)}")
    return SINGLE_OBJECT_MAGIC + fingerprint


def confluent_header(schema_id: int) -> bytes:
    return bytes([CONFLUENT_MAGIC]) + _SCHEMA_ID.pack(schema_id)


def read_header(data: bytes) -> Header:
    """The header of a framed value; raises ``DecodeError`` when there is none."""
    if data[:2] == SINGLE_OBJECT_MAGIC:
        if len(data) < SINGLE_OBJECT_HEADER_SIZE:
            raise DecodeError("truncated", f"single-object header needs 10 bytes, got {len(data)}")
        return Header(Framing.SINGLE_OBJECT, data[2:10], None, SINGLE_OBJECT_HEADER_SIZE)
    if data[:1] == bytes([CONFLUENT_MAGIC]):
        if len(data) < CONFLUENT_HEADER_SIZE:
            raise DecodeError("truncated", f"Confluent header needs 5 bytes, got {len(data)}")
        (schema_id,) = _SCHEMA_ID.unpack_from(data, 1)
        return Header(Framing.CONFLUENT, None, schema_id, CONFLUENT_HEADER_SIZE)
    if not data:
        raise DecodeError("truncated", "empty value")
    if data[:1] == SINGLE_OBJECT_MAGIC[:1] and len(data) == 1:
        raise DecodeError("truncated", "value ends inside the single-object magic")
    raise DecodeError(
        "bad_magic",
        f"value starts with {data[:2].hex()}; expected c301 (Avro single-object) "
        "or 00 (Confluent wire format)",
    )
