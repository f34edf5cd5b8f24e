"""The in-memory key store against the key-store contract."""

from __future__ import annotations

import pytest

from runwire.contract.sealing.inmem import InMemoryKeyStore
from runwire.contract.sealing.kek import LocalKeys
from tests.contract.key_store import KeyStoreContract


class TestInMemoryKeyStore(KeyStoreContract):
    @pytest.fixture
    def store(self, kek: LocalKeys) -> InMemoryKeyStore:
        return InMemoryKeyStore(kek)
