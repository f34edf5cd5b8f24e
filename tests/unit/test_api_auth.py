"""API keys: parsing RUNWIRE_API_KEYS, finding a key's user, and errors that never echo a key."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from runwire.errors import ConfigurationError
from runwire.services.api.auth import KeyRing, Principal
from runwire.settings import Settings

KEY_A = "a" * 16
KEY_B = "b-key-0123456789"


def test_entries_map_keys_to_users_and_access() -> None:
    ring = KeyRing.parse(f" {KEY_A}:alice , {KEY_B}:bob:read,")
    assert len(ring) == 2
    assert ring.find(KEY_A) == Principal("alice", "write")
    assert ring.find(KEY_B) == Principal("bob", "read")
    assert not Principal("bob", "read").can_write
    assert ring.find(KEY_A + "x") is None
    assert ring.find(KEY_A[:-1]) is None
    assert ring.find("") is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (f"{KEY_A}", "entry 1 is not KEY:USER_ID"),
        (f"{KEY_A}:alice,{KEY_B}", "entry 2 is not KEY:USER_ID"),
        (f"{KEY_A}:", "entry 1 is not KEY:USER_ID"),
        (f"{KEY_A}:alice:admin", "entry 1 ends in 'admin'"),
        (f"{KEY_A}:alice:read:acme:x", "entry 1 is not KEY:USER_ID"),
        (f"{KEY_A}:alice:read: ", "entry 1 is not KEY:USER_ID"),
        (f"{KEY_A}:alice:read:a\x01b", "the tenant of entry 1 is not an id"),
        (f"{KEY_A}:alice:reed:acme", "entry 1 gives the access 'reed'"),
        ("short-key:alice", "entry 1 (user 'alice') is shorter than 16"),
        (f"{KEY_A}:alice,{KEY_A}:bob", "entry 2 repeats the key"),
    ],
)
def test_a_bad_entry_is_named_by_position_without_its_key(text: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match="RUNWIRE_API_KEYS") as caught:
        KeyRing.parse(text)
    assert says in str(caught.value)
    assert KEY_A not in str(caught.value)
    assert "short-key" not in str(caught.value)


def test_a_key_of_a_tenant_speaks_for_the_tenant_and_user() -> None:
    ring = KeyRing.parse(f"{KEY_A}:alice:write:acme, {KEY_B}:alice:read:globex")
    assert ring.find(KEY_A) == Principal("alice", "write", "acme")
    assert ring.find(KEY_B) == Principal("alice", "read", "globex")
    assert ring.tenants == {"acme", "globex"}
    assert KeyRing.parse(f"{KEY_A}:alice").tenants == set()


def test_settings_without_keys_are_refused_with_the_setting_named() -> None:
    with pytest.raises(ConfigurationError, match="no API keys: set RUNWIRE_API_KEYS"):
        KeyRing.from_settings(Settings(api_keys=None))
    with pytest.raises(ConfigurationError, match="no API keys"):
        KeyRing.from_settings(Settings(api_keys=SecretStr(" , ")))


def test_keys_in_settings_stay_secret() -> None:
    settings = Settings(api_keys=SecretStr(f"{KEY_A}:alice"))
    assert KEY_A not in repr(settings)
    assert KEY_A not in str(settings.model_dump())
    assert KeyRing.from_settings(settings).find(KEY_A) == Principal("alice")


def test_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNWIRE_API_KEYS", f"{KEY_A}:alice,{KEY_B}:bob:read")
    monkeypatch.setenv("RUNWIRE_API_PORT", "9999")
    settings = Settings()
    assert KeyRing.from_settings(settings).find(KEY_B) == Principal("bob", "read")
    assert settings.api_port == 9999
