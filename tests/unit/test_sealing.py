"""Sealing through the codec: session bodies sealed, erasure, tamper evidence, outages."""

from __future__ import annotations

import pytest

from runwire.contract.codec import REASONS, Codec
from runwire.contract.events import Event, MemorySet, SessionDeleted, UserMessage
from runwire.contract.framing import SINGLE_OBJECT_HEADER_SIZE
from runwire.contract.sealing import (
    ErasedError,
    KeyStoreUnavailableError,
    SealingPayload,
    SessionErasedError,
    UserErasedError,
)
from runwire.contract.sealing.inmem import InMemoryKeyStore
from runwire.contract.sealing.kek import KeyFile, LocalKeys
from runwire.errors import DecodeError

SECRET = "the launch code is 7-1-9"


def message(session_id: str = "s-1", text: str = SECRET) -> Event:
    return Event.create(UserMessage(parts=[text]), run_id="r-1", session_id=session_id)


@pytest.fixture
def keys() -> InMemoryKeyStore:
    return InMemoryKeyStore(LocalKeys())


@pytest.fixture
def codec(keys: InMemoryKeyStore) -> Codec:
    return Codec(payload=SealingPayload(keys))


def test_a_session_event_is_sealed_and_reads_back(codec: Codec) -> None:
    event = message()
    data = codec.encode(event)
    assert SECRET.encode() not in data
    assert data[SINGLE_OBJECT_HEADER_SIZE] == 1  # sealed, AES-256-GCM
    assert b"s-1/" in data  # the key id (with the session) stays clear
    assert codec.decode(data) == event


def test_events_of_no_session_and_the_erasure_receipt_stay_clear(codec: Codec) -> None:
    memory = Event.create(MemorySet(scope="agent", owner="a", key="k", value="plain"))
    shared = Event.create(MemorySet(scope="global", owner="global", key="k", value="plain"))
    receipt = Event.create(SessionDeleted(), session_id="s-1", labels={"erasure": "x"})
    for event in (memory, shared, receipt):
        data = codec.encode(event)
        assert data[SINGLE_OBJECT_HEADER_SIZE] == 0
        assert codec.decode(data) == event


def test_user_memory_is_sealed_with_its_users_key_until_the_user_is_erased(
    codec: Codec, keys: InMemoryKeyStore
) -> None:
    mine = Event.create(MemorySet(scope="user", owner="t::alice", key="k", value=SECRET))
    theirs = Event.create(MemorySet(scope="user", owner="t::bob", key="k", value=SECRET))
    data, kept = codec.encode(mine), codec.encode(theirs)
    assert SECRET.encode() not in data
    assert data[SINGLE_OBJECT_HEADER_SIZE] == 1
    assert b"user:t::alice/" in data
    assert codec.decode(data) == mine
    session = codec.encode(message().model_copy(update={"user_id": "alice", "tenant": "t"}))
    erased = keys.erase_user("t::alice")
    assert erased.session_ids == ("s-1",)
    for gone in (data, session):
        with pytest.raises(ErasedError):
            codec.decode(gone)
    assert codec.decode(kept) == theirs
    with pytest.raises(UserErasedError):
        codec.encode(mine)


def test_after_erasure_a_record_reads_as_erased_never_as_a_fault(
    codec: Codec, keys: InMemoryKeyStore
) -> None:
    data = codec.encode(message())
    keys.destroy("s-1")
    with pytest.raises(ErasedError) as erased:
        codec.decode(data)
    assert erased.value.reason == "erased"
    assert erased.value.reason not in REASONS  # not a dead-letter reason
    with pytest.raises(SessionErasedError, match="cannot be written to again"):
        codec.encode(message())
    assert codec.decode(codec.encode(message("s-2"))).session_id == "s-2"


def test_a_tampered_body_does_not_verify_and_is_a_dead_letter_reason(codec: Codec) -> None:
    data = bytearray(codec.encode(message()))
    data[-20] ^= 0x01
    with pytest.raises(DecodeError) as refused:
        codec.decode(bytes(data))
    assert refused.value.reason == "unreadable_payload"
    assert "does not verify" in str(refused.value)


def test_a_body_moved_to_another_event_type_does_not_verify(codec: Codec) -> None:
    sealed = codec.encode(message())
    other = codec.encode(Event.create(SessionDeleted(), session_id="s-1"))
    moved = other[:SINGLE_OBJECT_HEADER_SIZE] + sealed[SINGLE_OBJECT_HEADER_SIZE:]
    with pytest.raises(DecodeError) as refused:
        codec.decode(moved)
    assert refused.value.reason == "unreadable_payload"


def test_an_unknown_key_id_is_a_dead_letter_reason(keys: InMemoryKeyStore) -> None:
    data = Codec(payload=SealingPayload(keys)).encode(message())
    stranger = Codec(payload=SealingPayload(InMemoryKeyStore(LocalKeys())))
    with pytest.raises(DecodeError) as refused:
        stranger.decode(data)
    assert refused.value.reason == "unreadable_payload"
    assert "s-1/" in str(refused.value)


def test_a_key_store_that_is_down_is_retriable_for_readers_and_writers(
    codec: Codec, keys: InMemoryKeyStore
) -> None:
    data = codec.encode(message())
    keys.down = True
    with pytest.raises(KeyStoreUnavailableError) as down:
        codec.decode(data)
    assert down.value.retriable
    assert not isinstance(down.value, DecodeError)
    with pytest.raises(KeyStoreUnavailableError):
        codec.encode(message("s-9"))
    keys.down = False
    assert codec.decode(data) == Codec(payload=SealingPayload(keys)).decode(data)


@pytest.mark.parametrize(("cut", "reason"), [(1, "truncated"), (3, "truncated"), (40, "truncated")])
def test_a_cut_sealed_body_is_truncated(codec: Codec, cut: int, reason: str) -> None:
    data = codec.encode(message())
    with pytest.raises(DecodeError) as refused:
        codec.decode(data[: SINGLE_OBJECT_HEADER_SIZE + cut])
    assert refused.value.reason == reason


def test_an_unknown_seal_version_is_unreadable(codec: Codec) -> None:
    data = bytearray(codec.encode(message()))
    data[SINGLE_OBJECT_HEADER_SIZE] = 9
    with pytest.raises(DecodeError) as refused:
        codec.decode(bytes(data))
    assert refused.value.reason == "unreadable_payload"


def test_the_key_file_keeps_its_keys_across_processes_and_rotations(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "keys.json"
    first = KeyFile(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    kek_id, wrapped = first.wrap("s-1/k", b"k" * 32)
    first.rotate()
    again = KeyFile(path)
    assert again.current_id == first.current_id != kek_id
    assert again.unwrap(kek_id, "s-1/k", wrapped) == b"k" * 32


def test_a_broken_key_file_is_a_clear_configuration_error(tmp_path: object) -> None:
    from pathlib import Path

    from runwire.errors import ConfigurationError

    path = Path(str(tmp_path)) / "keys.json"
    path.write_text("{not json")
    with pytest.raises(ConfigurationError, match=r"keys\.json.*not a key file"):
        KeyFile(path)
