"""Key-encryption keys held locally: in memory, or in a key file (the stack and tests).

Contract:
- :class:`LocalKeys` wraps data keys with AES-256-GCM under its current key
  (the data key's id is the associated data, so a wrapped key cannot be moved
  to another id). ``rotate()`` adds a new current key; old ones still unwrap.
- :class:`KeyFile` is ``LocalKeys`` kept in a JSON file (mode 0600), made on
  first use: ``{"current": id, "keys": {id: base64 key}}``. Back it up: without
  it no data key unwraps. A key id it does not know makes it read the file
  again (another process rotated it).
- A KMS adapter implements :class:`~runwire.contract.sealing.protocol.KeyEncryptionKey`
  the same way (wrap/unwrap are its encrypt/decrypt calls).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from runwire.contract.sealing.errors import UnknownKeyError
from runwire.errors import ConfigurationError

_NONCE = 12


class LocalKeys:
    """Key-encryption keys in this process (the in-memory twin of a KMS)."""

    def __init__(self, keys: dict[str, bytes] | None = None, current: str | None = None) -> None:
        self._lock = threading.Lock()
        self._keys = dict(keys or {})
        if not self._keys:
            current = secrets.token_hex(4)
            self._keys[current] = AESGCM.generate_key(bit_length=256)
        self._current = current if current is not None else next(reversed(self._keys))
        self._aead = {k: AESGCM(v) for k, v in self._keys.items()}

    @property
    def current_id(self) -> str:
        return self._current

    def rotate(self) -> str:
        """Make a new key current; returns its id."""
        with self._lock:
            kek_id = secrets.token_hex(4)
            self._keys[kek_id] = AESGCM.generate_key(bit_length=256)
            self._aead[kek_id] = AESGCM(self._keys[kek_id])
            self._current = kek_id
        self._saved()
        return kek_id

    def _saved(self) -> None:
        """Where a subclass keeps its keys."""

    def wrap(self, key_id: str, data_key: bytes) -> tuple[str, bytes]:
        kek_id = self._current
        nonce = os.urandom(_NONCE)
        return kek_id, nonce + self._aead[kek_id].encrypt(nonce, data_key, key_id.encode())

    def unwrap(self, kek_id: str, key_id: str, wrapped: bytes) -> bytes:
        aead = self._aead.get(kek_id)
        if aead is None:
            raise UnknownKeyError(f"data key {key_id!r} is wrapped by unknown KEK {kek_id!r}")
        try:
            return aead.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], key_id.encode())
        except InvalidTag as e:
            raise UnknownKeyError(f"data key {key_id!r} does not unwrap with {kek_id!r}") from e


class KeyFile(LocalKeys):
    """``LocalKeys`` kept in a JSON file (see the module contract)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        if path.exists():
            super().__init__(*self._read())
        else:
            super().__init__()
            self._saved()

    def _read(self) -> tuple[dict[str, bytes], str]:
        path = self._path
        try:
            doc = json.loads(path.read_text())
            keys = {k: base64.b64decode(v) for k, v in doc["keys"].items()}
            current = str(doc["current"])
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigurationError(
                f"the key file {path} (RUNWIRE_SEALING_KEY_FILE) is not a key file: {e}"
            ) from e
        if current not in keys or any(len(v) != 32 for v in keys.values()):
            raise ConfigurationError(f"the key file {path} has a missing or short key")
        return keys, current

    def unwrap(self, kek_id: str, key_id: str, wrapped: bytes) -> bytes:
        if kek_id not in self._aead:
            # Rotated by another process (``runwire sessions rotate-kek``): read the file again.
            keys, current = self._read()
            with self._lock:
                self._keys, self._current = keys, current
                self._aead = {k: AESGCM(v) for k, v in keys.items()}
        return super().unwrap(kek_id, key_id, wrapped)

    def _saved(self) -> None:
        doc = {
            "current": self._current,
            "keys": {k: base64.b64encode(v).decode() for k, v in self._keys.items()},
        }
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
        tmp.replace(self._path)
