"""The KMS adapter seam: a key-encryption key held by a key management service.

Contract:
- :class:`KmsClient` is the two calls runwire needs of a KMS, shaped as
  every cloud KMS offers them (AWS KMS ``Encrypt``/``Decrypt``, Google Cloud
  KMS ``encrypt``/``decrypt``, Azure Key Vault ``wrapKey``/``unwrapKey``):
  ``encrypt(key_name, plaintext, context)`` and ``decrypt(key_name,
  ciphertext, context)``, where ``context`` is authenticated data the
  ciphertext is bound to (AWS's encryption context, Google's additional
  authenticated data). A ciphertext that does not decrypt under the key and
  context raises :class:`KmsRefusedError`; a KMS that cannot be reached
  raises :class:`~runwire.contract.sealing.errors.KeyStoreUnavailableError`
  (retriable, as a key store that is down).
- :class:`KmsKeys` is the :class:`~runwire.contract.sealing.protocol.KeyEncryptionKey`
  over a client: ``current_id`` is the KMS key name, ``wrap`` encrypts the
  data key with the data key's id as context (so a wrapped key cannot be
  moved to another id), ``unwrap`` decrypts it; a refusal or another key
  name is ``UnknownKeyError``. Rotation is the KMS's own (a new key version
  behind the same name keeps decrypting old ciphertexts), or a new name: the
  old name must stay decryptable while keys are wrapped by it
  (``KeyStore.rewrap`` moves them).
- Only the twin (:class:`~runwire.contract.sealing.inmem.InMemoryKms`) is
  written here; a cloud adapter implements :class:`KmsClient` with its SDK
  and passes the same contract suite (``tests/contract/kek.py``).
"""

from __future__ import annotations

from typing import Protocol

from runwire.contract.sealing.errors import UnknownKeyError
from runwire.errors import RunwireError

__all__ = ["KmsClient", "KmsKeys", "KmsRefusedError"]

_CONTEXT = "runwire-data-key"


class KmsRefusedError(RunwireError):
    """The KMS would not decrypt: another key, another context, a changed ciphertext."""


class KmsClient(Protocol):
    """The two calls of a key management service (see the module contract)."""

    def encrypt(self, key_name: str, plaintext: bytes, context: dict[str, str]) -> bytes:
        """``plaintext`` encrypted under ``key_name``, bound to ``context``."""
        ...

    def decrypt(self, key_name: str, ciphertext: bytes, context: dict[str, str]) -> bytes:
        """The plaintext; :class:`KmsRefusedError` when it does not decrypt."""
        ...


class KmsKeys:
    """A key-encryption key in a KMS (see the module contract)."""

    def __init__(self, client: KmsClient, key_name: str) -> None:
        if not key_name:
            raise ValueError("a KMS key name is needed")
        self._client = client
        self._key_name = key_name

    @property
    def current_id(self) -> str:
        return self._key_name

    def wrap(self, key_id: str, data_key: bytes) -> tuple[str, bytes]:
        return self._key_name, self._client.encrypt(self._key_name, data_key, {_CONTEXT: key_id})

    def unwrap(self, kek_id: str, key_id: str, wrapped: bytes) -> bytes:
        try:
            return self._client.decrypt(kek_id, wrapped, {_CONTEXT: key_id})
        except KmsRefusedError as e:
            raise UnknownKeyError(
                f"data key {key_id!r} does not unwrap with {kek_id!r}: {e}"
            ) from e
