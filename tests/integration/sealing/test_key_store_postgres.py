"""The Postgres key store against the key-store contract, and what only it has."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runwire.contract.sealing import KeyStoreUnavailableError
from runwire.contract.sealing.kek import LocalKeys
from runwire.contract.sealing.postgres import PostgresKeyStore
from runwire.settings import Settings
from tests.contract.key_store import KeyStoreContract


class TestPostgresKeyStore(KeyStoreContract):
    @pytest.fixture
    def store(self, settings: Settings, kek: LocalKeys) -> Iterator[PostgresKeyStore]:
        store = PostgresKeyStore(settings.postgres_dsn, kek, cache_seconds=0)
        yield store
        store.close()


def test_another_process_sees_an_erasure_once_its_cache_expires(settings: Settings) -> None:
    kek = LocalKeys()
    writer = PostgresKeyStore(settings.postgres_dsn, kek, cache_seconds=0)
    reader = PostgresKeyStore(settings.postgres_dsn, kek, cache_seconds=0)
    try:
        key_id, data_key = writer.key_for_writing("s-1")
        assert reader.key(key_id) == data_key
        writer.destroy("s-1")
        with pytest.raises(Exception, match="destroyed"):
            reader.key(key_id)
    finally:
        writer.close()
        reader.close()


def test_a_key_store_that_cannot_be_reached_is_retriable() -> None:
    store = PostgresKeyStore("postgresql://nobody@127.0.0.1:1/none", LocalKeys())
    with pytest.raises(KeyStoreUnavailableError) as down:
        store.key("s-1/000000000000")
    assert down.value.retriable
