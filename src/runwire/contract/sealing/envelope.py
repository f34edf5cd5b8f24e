"""The sealed envelope: what a sealing payload codec writes after the frame header.

Contract (the bytes; ``schemas/README.md`` tells a foreign reader the same):
- ``0x00`` then the Avro body: a clear event (no session and no user-scope
  memory value, or an erasure receipt: ``session_deleted``, ``user_erased``).
- ``0x01``, the key id's length (2 bytes, big-endian), the key id (UTF-8),
  a 12-byte nonce, then AES-256-GCM of the Avro body (ciphertext and 16-byte
  tag) under the data key, with associated data
  ``b"runwire-seal-v1\\x00" + event type + b"\\x00" + key id`` (so a body
  cannot be moved to another type or key id without the tag failing).
- The key id is ``<session id>/<random>``: the session stays readable to
  routing and operators; the content does not. A ``memory_set`` of scope
  ``user`` (no session) is sealed with its user's key, ``user:<owner>/<random>``
  (the owner is the record key's already).
- A session's key, when made, remembers the user of the event it is made for
  (erasure by user finds the session by it).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from runwire.contract.events import EventType, MemorySet
from runwire.contract.sealing.errors import UnknownKeyError
from runwire.contract.sealing.protocol import session_subject, user_subject
from runwire.errors import DecodeError

if TYPE_CHECKING:
    from runwire.contract.events import Event
    from runwire.contract.sealing.protocol import KeyStore

CLEAR = 0
AES256GCM = 1
NONCE_BYTES = 12
_AAD_PREFIX = b"runwire-seal-v1\x00"
_MAX_CIPHERS = 10_000

UNSEALED = frozenset({EventType.SESSION_DELETED})
"""Types written clear even in a session: the erasure receipt must outlive the keys."""


def _key_for(keys: KeyStore, event: Event) -> tuple[str, bytes] | None:
    """The key ``event`` is sealed with; None: written clear."""
    if event.session_id is not None:
        if event.type in UNSEALED:
            return None
        user = None if event.user_id is None else user_subject(event.user_id, event.tenant)
        # The session's keys in the event's tenant: another tenant's records under the
        # same id never share them, so neither tenant's erasure reaches the other.
        return keys.key_for_writing(session_subject(event.session_id, event.tenant), user)
    payload = event.payload
    if isinstance(payload, MemorySet) and payload.scope == "user":
        return keys.key_for_user(payload.owner)
    return None


def associated_data(event_type: EventType, key_id: str) -> bytes:
    return _AAD_PREFIX + event_type.value.encode() + b"\x00" + key_id.encode()


class _Sealer(NamedTuple):
    head: bytes  # the marker, the key id's length and the key id
    aead: AESGCM
    aads: dict[EventType, bytes]  # the associated data of each event type


class SealingPayload:
    """The payload codec that seals every session's events (see the module contract)."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys
        self._aead: dict[bytes, AESGCM] = {}
        # What sealing with a key id needs besides its nonce, made once per key id.
        self._sealers: dict[str, _Sealer] = {}
        self._lock = threading.Lock()

    def _cipher(self, data_key: bytes) -> AESGCM:
        aead = self._aead.get(data_key)
        if aead is None:
            with self._lock:
                if len(self._aead) >= _MAX_CIPHERS:  # a long-lived process meets many sessions
                    self._aead.clear()
                    self._sealers.clear()
                aead = self._aead[data_key] = AESGCM(data_key)
        return aead

    def seal(self, event: Event, body: bytes) -> bytes:
        found = _key_for(self.keys, event)
        if found is None:
            return b"\x00" + body
        key_id, data_key = found
        sealer = self._sealers.get(key_id)
        if sealer is None:
            kid = key_id.encode()
            sealer = self._sealers[key_id] = _Sealer(
                b"\x01" + len(kid).to_bytes(2, "big") + kid, self._cipher(data_key), {}
            )
        aad = sealer.aads.get(event.type)
        if aad is None:
            aad = sealer.aads[event.type] = associated_data(event.type, key_id)
        nonce = os.urandom(NONCE_BYTES)
        return sealer.head + nonce + sealer.aead.encrypt(nonce, body, aad)

    def open(self, event_type: EventType, data: bytes) -> bytes:
        if not data:
            raise DecodeError("truncated", "sealed payload is empty")
        if data[0] == CLEAR:
            return data[1:]
        if data[0] != AES256GCM:
            raise DecodeError("unreadable_payload", f"unknown seal version {data[0]}")
        if len(data) < 3:
            raise DecodeError("truncated", "sealed payload ends inside its key id length")
        n = int.from_bytes(data[1:3], "big")
        start = 3 + n + NONCE_BYTES
        if len(data) < start + 16:
            raise DecodeError("truncated", "sealed payload ends before its tag")
        try:
            key_id = data[3 : 3 + n].decode()
        except UnicodeDecodeError as e:
            raise DecodeError("unreadable_payload", "the key id is not UTF-8") from e
        try:
            data_key = self.keys.key(key_id)  # ErasedError, retriable errors go up as they are
        except UnknownKeyError as e:
            raise DecodeError("unreadable_payload", f"{event_type.value}: {e}") from e
        try:
            return self._cipher(data_key).decrypt(
                data[3 + n : start], data[start:], associated_data(event_type, key_id)
            )
        except InvalidTag as e:
            raise DecodeError(
                "unreadable_payload",
                f"{event_type.value}: the seal of key {key_id!r} does not verify (tampered?)",
            ) from e
