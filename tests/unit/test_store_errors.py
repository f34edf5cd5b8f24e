"""Postgres driver errors become StoreErrors whose ``retriable`` says what to do (nothing running)."""

from __future__ import annotations

import psycopg
import psycopg.errors
import psycopg_pool
import pytest

from runwire.errors import StoreError, StoreUnavailableError
from runwire.projections.runtime.pg import store_error, store_errors

STORE = "the session index (Postgres)"


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError("consuming input failed: server closed the connection"),
        psycopg_pool.PoolTimeout("couldn't get a connection after 30.00 sec"),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.errors.CannotConnectNow("the database system is starting up"),
        psycopg.errors.SerializationFailure("could not serialize access"),
        psycopg.errors.DeadlockDetected("deadlock detected"),
        psycopg.errors.TooManyConnections("sorry, too many clients already"),
        psycopg.errors.ConnectionFailure("connection failure"),
        psycopg.errors.LockNotAvailable("could not obtain lock"),
    ],
)
def test_an_outage_or_a_conflict_is_retriable(error: psycopg.Error) -> None:
    translated = store_error(STORE, error)
    assert isinstance(translated, StoreUnavailableError)
    assert translated.retriable is True
    assert translated.kind == "store_unavailable"
    assert str(translated).startswith(f"{STORE} is unavailable: ")


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.UndefinedTable('relation "session_index" does not exist'),
        psycopg.errors.InsufficientPrivilege("permission denied for table session_index"),
        psycopg.errors.SyntaxError("syntax error at or near"),
        psycopg.errors.ProgramLimitExceeded("index row size exceeds maximum"),
        psycopg.DataError("invalid input syntax"),
        psycopg_pool.PoolClosed("the pool 'runwire' is already closed"),
    ],
)
def test_what_no_retry_can_fix_is_final(error: psycopg.Error) -> None:
    translated = store_error(STORE, error)
    assert type(translated) is StoreError
    assert translated.retriable is False
    assert translated.kind == "store_error"
    assert translated.store == STORE


def test_the_message_is_one_readable_line_naming_the_store_and_the_sqlstate() -> None:
    error = psycopg.errors.UndefinedTable(
        'relation "session_index" does not exist\nLINE 1: SELECT ... FROM session_index'
    )
    assert str(store_error(STORE, error)) == (
        f'{STORE} refused the request: relation "session_index" does not exist '
        "LINE 1: SELECT ... FROM session_index (SQLSTATE 42P01)"
    )


def test_the_boundary_raises_the_translation_from_the_driver_error() -> None:
    cause = psycopg.OperationalError("server closed the connection unexpectedly")
    with pytest.raises(StoreUnavailableError) as raised, store_errors(STORE):
        raise cause
    assert raised.value.__cause__ is cause
    with store_errors(STORE):
        pass  # nothing raised, nothing translated
    with pytest.raises(KeyError), store_errors(STORE):
        raise KeyError("not a driver error: passes untouched")
