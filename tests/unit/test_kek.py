"""Every key-encryption key runwire has passes one contract: local, key file, KMS twin."""

from __future__ import annotations

from pathlib import Path

import pytest

from runwire.contract.sealing import KeyEncryptionKey, KeyStoreUnavailableError
from runwire.contract.sealing.inmem import InMemoryKms
from runwire.contract.sealing.kek import KeyFile, LocalKeys
from runwire.contract.sealing.kms import KmsKeys
from tests.contract.kek import KeyEncryptionKeyContract


class TestLocalKeys(KeyEncryptionKeyContract):
    @pytest.fixture
    def kek(self) -> KeyEncryptionKey:
        return LocalKeys()


class TestKeyFile(KeyEncryptionKeyContract):
    @pytest.fixture
    def kek(self, tmp_path: Path) -> KeyEncryptionKey:
        return KeyFile(tmp_path / "keys.json")


class TestKmsKeys(KeyEncryptionKeyContract):
    @pytest.fixture
    def kek(self) -> KeyEncryptionKey:
        return KmsKeys(InMemoryKms(), "alias/runwire")


def test_a_kms_that_is_down_is_retriable_not_unknown() -> None:
    kms = InMemoryKms()
    keys = KmsKeys(kms, "alias/runwire")
    kek_id, wrapped = keys.wrap("s-1/k1", b"k" * 32)
    kms.down = True
    with pytest.raises(KeyStoreUnavailableError) as down:
        keys.unwrap(kek_id, "s-1/k1", wrapped)
    assert down.value.retriable


def test_a_kms_key_name_is_needed() -> None:
    with pytest.raises(ValueError, match="KMS key name"):
        KmsKeys(InMemoryKms(), "")
