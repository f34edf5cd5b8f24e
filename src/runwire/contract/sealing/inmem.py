"""The in-memory twins of sealing: the key store (same contract as Postgres) and a KMS."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from runwire.contract.sealing.errors import (
    ErasedError,
    KeyStoreUnavailableError,
    SessionErasedError,
    UnknownKeyError,
    UserErasedError,
)
from runwire.contract.sealing.kms import KmsRefusedError
from runwire.contract.sealing.protocol import KeyEncryptionKey, UserKeys, session_of

SESSION = "session"
USER = "user"
USER_KEY_PREFIX = "user:"


def new_key_id(session_id: str) -> str:
    """A data key's id: the session (clear, as the record's ids are; not its tenant,
    given a :func:`~runwire.contract.sealing.protocol.session_subject`) and a random part."""
    return f"{session_of(session_id)}/{secrets.token_hex(6)}"


def new_user_key_id(subject: str) -> str:
    """A user key's id: ``user:<subject>/<random>`` (the subject is clear on the memory topic)."""
    return new_key_id(USER_KEY_PREFIX + subject)


def erased_user_marker(subject: str) -> str:
    """The id of the row that keeps a user erased before it had a key (never a key itself)."""
    return f"{USER_KEY_PREFIX}{subject}/erased"


@dataclass
class _Row:
    session_id: str  # the subject: a session id, or a user subject (scope user)
    kek_id: str
    wrapped: bytes | None  # None: destroyed
    scope: str = SESSION
    user: str | None = None  # a session key's user subject


class InMemoryKeyStore:
    """A :class:`~runwire.contract.sealing.protocol.KeyStore` in this process."""

    def __init__(self, kek: KeyEncryptionKey) -> None:
        self._kek = kek
        self._lock = threading.Lock()
        self._rows: dict[str, _Row] = {}
        self._writing: dict[str, str] = {}
        self.down = False
        """Set to make every call fail as an unreachable store does (fault tests)."""

    def _check_up(self) -> None:
        if self.down:
            from runwire.contract.sealing.errors import KeyStoreUnavailableError

            raise KeyStoreUnavailableError("the in-memory key store is down")

    def _erased_user(self, subject: str) -> bool:
        return any(
            r.scope == USER and r.session_id == subject and r.wrapped is None
            for r in self._rows.values()
        )

    def key_for_writing(self, session_id: str, user: str | None = None) -> tuple[str, bytes]:
        self._check_up()
        with self._lock:
            key_id = self._writing.get(session_id)
            if key_id is not None:
                row = self._rows[key_id]
                if row.wrapped is None:
                    raise SessionErasedError(session_of(session_id))
                return key_id, self._kek.unwrap(row.kek_id, key_id, row.wrapped)
            if any(r.scope == SESSION and r.session_id == session_id for r in self._rows.values()):
                raise SessionErasedError(session_of(session_id))
            if user is not None and self._erased_user(user):
                raise UserErasedError(user)
            key_id = new_key_id(session_id)
            data_key = AESGCM.generate_key(bit_length=256)
            kek_id, wrapped = self._kek.wrap(key_id, data_key)
            self._rows[key_id] = _Row(session_id, kek_id, wrapped, SESSION, user)
            self._writing[session_id] = key_id
            return key_id, data_key

    def key_for_user(self, subject: str) -> tuple[str, bytes]:
        self._check_up()
        with self._lock:
            if self._erased_user(subject):
                raise UserErasedError(subject)
            for key_id, row in self._rows.items():
                if row.scope == USER and row.session_id == subject and row.wrapped is not None:
                    return key_id, self._kek.unwrap(row.kek_id, key_id, row.wrapped)
            key_id = new_user_key_id(subject)
            data_key = AESGCM.generate_key(bit_length=256)
            kek_id, wrapped = self._kek.wrap(key_id, data_key)
            self._rows[key_id] = _Row(subject, kek_id, wrapped, USER)
            return key_id, data_key

    def key(self, key_id: str) -> bytes:
        self._check_up()
        row = self._rows.get(key_id)
        if row is None:
            raise UnknownKeyError(f"no key store has data key {key_id!r}")
        if row.wrapped is None:
            raise ErasedError(key_id)
        return self._kek.unwrap(row.kek_id, key_id, row.wrapped)

    def destroy(self, session_id: str) -> list[str]:
        self._check_up()
        with self._lock:
            destroyed = []
            # A tenant's subject, and the bare id: keys made before sessions' keys were
            # their tenant's, or by a writer without a tenant, hold the session's records too.
            subjects = {session_id, session_of(session_id)}
            for key_id, row in self._rows.items():
                if row.scope == SESSION and row.session_id in subjects and row.wrapped is not None:
                    row.wrapped = None
                    destroyed.append(key_id)
            if not any(
                r.scope == SESSION and r.session_id == session_id for r in self._rows.values()
            ):
                # Never written: remember the erasure so the session stays unwritable.
                key_id = new_key_id(session_id)
                self._rows[key_id] = _Row(session_id, self._kek.current_id, None)
            return destroyed

    def erase_user(self, subject: str) -> UserKeys:
        self._check_up()
        with self._lock:
            mine = {
                key_id: row
                for key_id, row in self._rows.items()
                if (row.scope == USER and row.session_id == subject)
                or (row.scope == SESSION and row.user == subject)
            }
            for row in mine.values():
                row.wrapped = None
            if not any(r.scope == USER for r in mine.values()):
                # No memory yet: remember the erasure so the user stays unwritable.
                marker = erased_user_marker(subject)
                self._rows[marker] = _Row(subject, self._kek.current_id, None, USER)
            sessions = {r.session_id for r in mine.values() if r.scope == SESSION}
            for session_id in sessions:
                self._writing.pop(session_id, None)
            keys = sorted(k for k in mine if k != erased_user_marker(subject))
            return UserKeys(tuple(keys), tuple(sorted({session_of(s) for s in sessions})))

    def rewrap(self) -> int:
        self._check_up()
        n = 0
        with self._lock:
            for key_id, row in self._rows.items():
                if row.wrapped is not None and row.kek_id != self._kek.current_id:
                    data_key = self._kek.unwrap(row.kek_id, key_id, row.wrapped)
                    row.kek_id, row.wrapped = self._kek.wrap(key_id, data_key)
                    n += 1
        return n


class InMemoryKms:
    """A :class:`~runwire.contract.sealing.kms.KmsClient` in this process (the KMS twin).

    Keys are made on first use of a name; ``context`` is AES-GCM associated
    data, so a ciphertext decrypts only with the context it was made with.
    """

    def __init__(self) -> None:
        self._keys: dict[str, AESGCM] = {}
        self._lock = threading.Lock()
        self.down = False
        """Set to make every call fail as an unreachable KMS does."""

    def _key(self, key_name: str, *, make: bool) -> AESGCM:
        if self.down:
            raise KeyStoreUnavailableError("the KMS (in memory) is down")
        with self._lock:
            aead = self._keys.get(key_name)
            if aead is None:
                if not make:
                    raise KmsRefusedError(f"no KMS key {key_name!r}")
                aead = self._keys[key_name] = AESGCM(AESGCM.generate_key(bit_length=256))
        return aead

    @staticmethod
    def _aad(context: dict[str, str]) -> bytes:
        return "\x00".join(f"{k}={v}" for k, v in sorted(context.items())).encode()

    def encrypt(self, key_name: str, plaintext: bytes, context: dict[str, str]) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._key(key_name, make=True).encrypt(nonce, plaintext, self._aad(context))

    def decrypt(self, key_name: str, ciphertext: bytes, context: dict[str, str]) -> bytes:
        aead = self._key(key_name, make=False)
        try:
            return aead.decrypt(ciphertext[:12], ciphertext[12:], self._aad(context))
        except InvalidTag as e:
            raise KmsRefusedError(f"the ciphertext does not decrypt under {key_name!r}") from e
