"""The key-encryption-key contract: data keys wrap and unwrap, bound to their ids.

Subclasses provide ``kek`` (a fresh :class:`KeyEncryptionKey`); the suite runs
against the local keys, the key file and the KMS adapter over its twin.
"""

from __future__ import annotations

import secrets

import pytest

from runwire.contract.sealing import KeyEncryptionKey, UnknownKeyError
from runwire.contract.sealing.inmem import InMemoryKeyStore


class KeyEncryptionKeyContract:
    @pytest.fixture
    def kek(self) -> KeyEncryptionKey:
        raise NotImplementedError("each implementation provides a fresh key-encryption key")

    def test_a_wrapped_key_unwraps_to_itself_with_the_current_id(
        self, kek: KeyEncryptionKey
    ) -> None:
        data_key = secrets.token_bytes(32)
        kek_id, wrapped = kek.wrap("s-1/k1", data_key)
        assert kek_id == kek.current_id
        assert data_key not in wrapped
        assert kek.unwrap(kek_id, "s-1/k1", wrapped) == data_key
        # Wrapping twice gives another ciphertext of the same key.
        again = kek.wrap("s-1/k1", data_key)[1]
        assert again != wrapped
        assert kek.unwrap(kek_id, "s-1/k1", again) == data_key

    def test_a_wrapped_key_is_bound_to_its_key_id(self, kek: KeyEncryptionKey) -> None:
        kek_id, wrapped = kek.wrap("s-1/k1", secrets.token_bytes(32))
        with pytest.raises(UnknownKeyError):
            kek.unwrap(kek_id, "s-2/k1", wrapped)

    def test_a_changed_wrapped_key_or_an_unknown_kek_is_unknown(
        self, kek: KeyEncryptionKey
    ) -> None:
        kek_id, wrapped = kek.wrap("s-1/k1", secrets.token_bytes(32))
        changed = wrapped[:-1] + bytes([wrapped[-1] ^ 1])
        with pytest.raises(UnknownKeyError):
            kek.unwrap(kek_id, "s-1/k1", changed)
        with pytest.raises(UnknownKeyError):
            kek.unwrap(kek_id + "-other", "s-1/k1", wrapped)

    def test_a_key_store_over_it_keeps_sessions_apart(self, kek: KeyEncryptionKey) -> None:
        store = InMemoryKeyStore(kek)
        key_id, data_key = store.key_for_writing("s-1")
        assert store.key(key_id) == data_key
        assert store.destroy("s-1") == [key_id]
