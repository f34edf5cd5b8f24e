"""The seams of sealing: where data keys live and what wraps them.

Contract:
- :class:`KeyEncryptionKey` wraps and unwraps 32-byte data keys; ``wrap``
  uses the current key-encryption key and says its id, ``unwrap`` takes the id
  a key was wrapped with (old ids keep working after a rotation).
- :class:`KeyStore` hands out the data key a session writes with (made on
  first use), finds a key by id for reading, and destroys a session's keys.
  ``key`` raises ``ErasedError`` for a destroyed key, ``UnknownKeyError``
  for an id it never had, ``KeyStoreUnavailableError`` when it cannot answer.
  ``destroy`` returns the ids destroyed (empty the second time).
"""

from __future__ import annotations

from typing import Protocol

DATA_KEY_BYTES = 32


class KeyEncryptionKey(Protocol):
    """Wraps data keys (a local key file, a KMS)."""

    @property
    def current_id(self) -> str:
        """The id of the key ``wrap`` uses now."""
        ...

    def wrap(self, key_id: str, data_key: bytes) -> tuple[str, bytes]:
        """``(kek_id, wrapped)`` of ``data_key`` (bound to ``key_id``)."""
        ...

    def unwrap(self, kek_id: str, key_id: str, wrapped: bytes) -> bytes:
        """The data key ``wrapped`` holds; ``UnknownKeyError`` when it does not unwrap."""
        ...


class KeyStore(Protocol):
    """Where the data keys of sessions live and are destroyed."""

    def key_for_writing(self, session_id: str) -> tuple[str, bytes]:
        """``(key_id, data_key)`` to seal the session's next event with."""
        ...

    def key(self, key_id: str) -> bytes:
        """The data key ``key_id`` names (see the module contract for its errors)."""
        ...

    def destroy(self, session_id: str) -> list[str]:
        """Destroy every key of the session; the ids destroyed now."""
        ...

    def rewrap(self) -> int:
        """Re-wrap every live key with the current key-encryption key; how many."""
        ...
