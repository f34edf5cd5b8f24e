"""The Postgres key store against the key-store contract, and what only it has."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from runwire.contract.sealing import ErasedError, KeyStoreUnavailableError, UserErasedError
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


def test_no_session_key_of_a_user_outlives_its_erasure_made_at_the_same_time(
    settings: Settings,
) -> None:
    kek = LocalKeys()
    maker = PostgresKeyStore(settings.postgres_dsn, kek, cache_seconds=0)
    eraser = PostgresKeyStore(settings.postgres_dsn, kek, cache_seconds=0)
    made: list[str] = []
    refused: list[Exception] = []

    def make() -> None:
        for i in range(200):
            try:
                made.append(maker.key_for_writing(f"race-{i}", "racer")[0])
            except UserErasedError as e:
                refused.append(e)

    try:
        thread = threading.Thread(target=make)
        thread.start()
        while len(made) < 20:
            time.sleep(0.001)
        eraser.erase_user("racer")
        thread.join()
        assert refused, "sessions made after the erasure are refused"
        # Every key made, before the erasure or racing it, is in the (cumulative) answer.
        assert set(made) <= set(eraser.erase_user("racer").key_ids)
        for key_id in made:
            with pytest.raises(ErasedError):
                eraser.key(key_id)
    finally:
        maker.close()
        eraser.close()
