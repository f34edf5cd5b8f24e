"""The key-store contract: keys per session, destroyed for good, unknown ids told apart.

Subclasses provide ``store`` (a key store over ``kek``, a ``LocalKeys``).
"""

from __future__ import annotations

import pytest

from runwire.contract.sealing import (
    ErasedError,
    KeyStore,
    SessionErasedError,
    UnknownKeyError,
    UserErasedError,
    user_subject,
)
from runwire.contract.sealing.kek import LocalKeys


class KeyStoreContract:
    @pytest.fixture
    def kek(self) -> LocalKeys:
        return LocalKeys()

    @pytest.fixture
    def store(self, kek: LocalKeys) -> KeyStore:
        raise NotImplementedError("each implementation provides its store over kek")

    def test_a_session_writes_with_one_key_that_reads_back(self, store: KeyStore) -> None:
        key_id, data_key = store.key_for_writing("s-1")
        assert len(data_key) == 32
        assert key_id.startswith("s-1/")
        assert store.key_for_writing("s-1") == (key_id, data_key)
        assert store.key(key_id) == data_key
        other_id, other_key = store.key_for_writing("s-2")
        assert other_id != key_id
        assert other_key != data_key

    def test_destroying_makes_the_key_erased_and_is_idempotent(self, store: KeyStore) -> None:
        key_id, _ = store.key_for_writing("s-1")
        kept_id, kept = store.key_for_writing("s-2")
        assert store.destroy("s-1") == [key_id]
        with pytest.raises(ErasedError) as erased:
            store.key(key_id)
        assert erased.value.reason == "erased"
        assert store.destroy("s-1") == []  # the second time: nothing left, no error
        assert store.key(kept_id) == kept  # another session keeps its key

    def test_an_erased_session_cannot_be_written_again(self, store: KeyStore) -> None:
        store.key_for_writing("s-1")
        store.destroy("s-1")
        with pytest.raises(SessionErasedError, match=r"s-1.*cannot be written"):
            store.key_for_writing("s-1")

    def test_a_session_erased_before_any_write_stays_unwritable(self, store: KeyStore) -> None:
        assert store.destroy("never") == []
        with pytest.raises(SessionErasedError):
            store.key_for_writing("never")

    def test_an_unknown_key_id_is_not_erased_but_unknown(self, store: KeyStore) -> None:
        with pytest.raises(UnknownKeyError):
            store.key("nobody/000000000000")

    def test_rotating_the_kek_rewraps_keys_without_changing_them(
        self, store: KeyStore, kek: LocalKeys
    ) -> None:
        key_id, data_key = store.key_for_writing("s-1")
        old = kek.current_id
        new = kek.rotate()
        assert new != old
        assert store.rewrap() == 1
        assert store.rewrap() == 0  # all under the current KEK now
        assert store.key(key_id) == data_key

    def test_a_user_has_its_own_key_apart_from_its_sessions(self, store: KeyStore) -> None:
        key_id, data_key = store.key_for_user("t::alice")
        assert key_id.startswith("user:t::alice/")
        assert store.key_for_user("t::alice") == (key_id, data_key)
        assert store.key(key_id) == data_key
        assert store.key_for_user("t::bob")[0] != key_id
        assert store.key_for_writing("t::alice")[0] != key_id  # a session of that name

    def test_erasing_a_user_destroys_its_keys_and_its_sessions_keys(self, store: KeyStore) -> None:
        alice, bob = user_subject("alice", "t"), user_subject("bob", "t")
        user_key, _ = store.key_for_user(alice)
        s1, _ = store.key_for_writing("s-1", alice)
        s2, _ = store.key_for_writing("s-2", alice)
        kept_id, kept = store.key_for_writing("s-3", bob)
        bobs_id, bobs = store.key_for_user(bob)
        first = store.erase_user(alice)
        assert set(first.key_ids) == {user_key, s1, s2}
        assert first.session_ids == ("s-1", "s-2")
        for key_id in (user_key, s1, s2):
            with pytest.raises(ErasedError):
                store.key(key_id)
        assert store.erase_user(alice) == first  # the same answer, no error
        assert store.key(kept_id) == kept
        assert store.key(bobs_id) == bobs

    def test_an_erased_user_cannot_write_memory_nor_start_a_session(self, store: KeyStore) -> None:
        store.key_for_user("alice")
        store.key_for_writing("s-1", "alice")
        store.erase_user("alice")
        with pytest.raises(UserErasedError, match=r"alice.*can be written again"):
            store.key_for_user("alice")
        with pytest.raises(SessionErasedError):
            store.key_for_writing("s-1", "alice")
        with pytest.raises(UserErasedError):
            store.key_for_writing("s-new", "alice")
        assert store.key_for_writing("s-other", "bob")[0].startswith("s-other/")

    def test_a_user_erased_before_any_write_stays_unwritable(self, store: KeyStore) -> None:
        assert store.erase_user("never").key_ids == ()
        with pytest.raises(UserErasedError):
            store.key_for_user("never")
