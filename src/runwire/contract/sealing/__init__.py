"""Sealing: per-session envelope encryption of event bodies, erasure by destroying keys.

Contract:
- :class:`SealingPayload` is the :class:`~runwire.contract.codec.PayloadCodec`
  that seals (AES-256-GCM) the Avro body of every event of a session with
  that session's data key (:mod:`runwire.contract.sealing.envelope` has the
  byte layout); events of no session, and ``session_deleted`` (the erasure
  receipt), are written clear behind a one-byte marker.
- Data keys live in a :class:`KeyStore` (Postgres in a deployment,
  :mod:`.postgres`; an in-memory twin, :mod:`.inmem`), wrapped by a
  :class:`KeyEncryptionKey` (a local key file, :mod:`.kek`; a KMS through the
  adapter of :mod:`.kms`). Rotating the key-encryption key re-wraps the data keys
  only; the log is never rewritten.
- Erasing a session destroys its data keys: its records on the log stay,
  unreadable by anyone; every reader gets :class:`ErasedError` (a
  ``DecodeError`` with reason ``erased`` that consumers skip, never
  dead-letter). Erasing twice is idempotent; writing to an erased session
  raises :class:`SessionErasedError`.
- Users have keys too: user-scope memory values are sealed with their user's
  key (subject :func:`user_subject`, the memory owner), and a session's key
  remembers the user who made it. ``KeyStore.erase_user`` destroys them all;
  writing for an erased user raises :class:`UserErasedError`.
- An unknown key id or a tag that does not verify is ``DecodeError``
  ``unreadable_payload`` (dead-lettered: tamper evidence); a key store that
  cannot be reached is :class:`KeyStoreUnavailableError` (retriable: read
  again, never skipped).
"""

from runwire.contract.sealing.envelope import SealingPayload
from runwire.contract.sealing.errors import (
    ErasedError,
    KeyStoreUnavailableError,
    SessionErasedError,
    UnknownKeyError,
    UserErasedError,
)
from runwire.contract.sealing.protocol import KeyEncryptionKey, KeyStore, UserKeys, user_subject

__all__ = [
    "ErasedError",
    "KeyEncryptionKey",
    "KeyStore",
    "KeyStoreUnavailableError",
    "SealingPayload",
    "SessionErasedError",
    "UnknownKeyError",
    "UserErasedError",
    "UserKeys",
    "user_subject",
]
