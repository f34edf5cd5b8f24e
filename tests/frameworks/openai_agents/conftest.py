"""The OpenAI Agents SDK's own session tests, run against ``RunwireSession``.

The files under this folder are the SDK's (openai-agents 0.24.0, from its
sdist), byte for byte: ``test_responses.py`` (their helper),
``memory/test_session.py``, ``memory/test_session_limit.py`` and
``extensions/memory/test_{sqlalchemy,async_sqlite,redis}_session.py``. This
conftest only:

- lets their imports find each other (``tests.test_responses``,
  ``tests.memory.test_session``: the SDK's own test package layout);
- swaps the session class each file tests (``SQLiteSession``,
  ``AsyncSQLiteSession``, ``SQLAlchemySession``, ``RedisSession``) for a
  ``RunwireSession`` taking the same constructor arguments (same name, since
  the SDK's messages carry it), on a deployment of the test stack of its own
  per test (fresh topics, Redis prefix, Postgres schema) with the four
  projectors running (:func:`deployment`). A database path, URL, engine or
  key prefix names a store, so the same session id in two stores is two
  sessions, as in the SDK's backends;
- leaves out the tests listed in :data:`EXCLUDED`, each with why: only those
  that inspect the SDK backends' own internals (SQLite connections, locks and
  tables, SQLAlchemy engines and statements, Redis keys, pipelines, pools
  and clients);
- turns every skip in these files into a failure: the SDK skips a file or a
  test when a library (aiosqlite, redis, fakeredis) or a Redis server is
  missing, and here all of them are (pinned in the lock; the store behind
  ``RunwireSession`` is real), so a skip would only hide a test that proves
  nothing.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

import pytest
from agents import set_tracing_disabled

from runwire.infra.isolation import isolated_deployment
from runwire.sessions.blocking import session_loop
from runwire.sessions.embedded import projectors_running
from runwire.sessions.openai_agents import RunwireSession, close_shared_backends
from runwire.settings import Settings

_HERE = __name__.rsplit(".", 1)[0]
# The SDK's tests import their helpers as the SDK's test package lays them out.
sys.modules["tests.test_responses"] = importlib.import_module(f"{_HERE}.test_responses")
sys.modules["tests.memory"] = importlib.import_module(f"{_HERE}.memory")

_SQLITE = "inspects SQLiteSession's own SQLite connections, locks or tables"
_ASYNC_SQLITE = "inspects AsyncSQLiteSession's own aiosqlite connection, rows or tables"
_CORRUPT = "writes corrupt rows into the backend's own storage, which runwire has not"
_SQLALCHEMY = "inspects SQLAlchemySession's own engine, statements, tables or locks"
_TIES = "rewrites the backend's row timestamps to tie them (runwire orders by log position)"
_REDIS = "inspects RedisSession's own Redis keys, pipelines, pools or client"
_COMPACTION = "drives RedisSession's own atomic history replacement (compaction) internals"


def _excluded(path: str, why: dict[str, list[str]]) -> dict[str, str]:
    return {f"{path}::{name}": reason for reason, names in why.items() for name in names}


EXCLUDED: dict[str, str] = {
    **_excluded(
        "memory/test_session.py",
        {
            _SQLITE: [
                "test_sqlite_session_close_closes_worker_thread_connections",
                "test_sqlite_session_reaps_connections_from_exited_worker_threads",
                "test_sqlite_session_closes_retired_connections_before_the_next_allocation",
                "test_sqlite_session_keeps_connections_of_live_worker_threads",
                "test_sqlite_session_file_lock_is_shared_across_instances",
                "test_sqlite_session_failed_add_items_releases_write_lock",
                "test_sqlite_session_failed_clear_session_rolls_back",
                "test_sqlite_session_failed_pop_item_releases_write_lock",
                "test_sqlite_session_rollback_failure_evicts_connection",
                "test_sqlite_session_close_retries_quarantined_connection",
                "test_sqlite_session_post_commit_cancellation_propagates_after_known_outcome",
            ],
            _CORRUPT: [
                "test_sqlite_session_pop_item_skips_corrupt_most_recent",
                "test_sqlite_session_pop_item_returns_none_after_dropping_only_corrupt_rows",
                "test_sqlite_session_get_items_limit_skips_corrupt_newest_rows",
                "test_sqlite_session_get_items_session_settings_limit_skips_corrupt_rows",
            ],
        },
    ),
    **_excluded(
        "extensions/memory/test_async_sqlite_session.py",
        {
            _ASYNC_SQLITE: [
                "test_cancelled_close_finishes_cleanup_and_propagates_cancellation",
                "test_post_commit_cancellation_propagates_after_known_mutation_outcome",
                "test_failed_add_items_rolls_back_and_reuses_connection",
                "test_failed_clear_session_rolls_back",
                "test_failed_pop_item_releases_write_lock",
                "test_failed_initialization_closes_candidate_connection",
                "test_initialization_retries_transient_wal_lock",
                "test_initialization_releases_wal_cursor_before_schema_write",
                "test_initialization_does_not_retry_unrecoverable_wal_errors",
                "test_cancelled_wal_retry_closes_startup_connection",
                "test_cancelled_add_items_rolls_back_write_transaction",
                "test_operation_failure_then_cancellation_during_rollback",
                "test_rollback_failure_closes_and_evicts_connection",
                "test_close_retries_connection_quarantined_after_rollback_failure",
                "test_close_retries_quarantined_failed_initialization_candidate",
                "test_cancelled_initialization_finishes_candidate_close",
                "test_initialization_failure_then_cancellation_during_candidate_close",
                "test_cancelled_connect_closes_eventually_acquired_connection",
            ],
            _CORRUPT: [
                "test_async_sqlite_session_pop_item_skips_corrupt_most_recent",
                "test_async_sqlite_session_pop_item_returns_none_after_dropping_only_corrupt_rows",
                "test_async_sqlite_session_get_items_limit_skips_corrupt_newest_rows",
            ],
            _TIES: [
                "test_async_sqlite_session_get_items_same_timestamp_consistent_order",
                "test_async_sqlite_session_pop_item_same_timestamp_returns_latest",
            ],
        },
    ),
    **_excluded(
        "extensions/memory/test_sqlalchemy_session.py",
        {
            _SQLALCHEMY: [
                "test_sqlalchemy_session_defaults_to_escaped_non_ascii_storage",
                "test_sqlalchemy_session_can_store_non_ascii_without_escaping",
                "test_sqlite_fallback_reserves_writer_before_tail_claim",
                "test_pop_item_supports_unknown_delete_rowcount",
                "test_pop_item_retries_returning_claim_lost_to_concurrent_delete",
                "test_mutation_cancellation_waits_for_transaction_exit",
                "test_add_items_waits_for_transient_sqlite_write_lock",
                "test_add_items_cancelled_waiter_does_not_strand_table_init_lock",
                "test_create_tables_false_does_not_allocate_shared_init_lock",
                "test_get_items_orders_by_id_for_ties",
                "test_engine_property_from_url",
                "test_engine_property_from_external_engine",
                "test_engine_property_is_read_only",
                "test_sqlite_configuration_registry_releases_collected_engines",
                "test_sqlite_configuration_registry_does_not_grow_unbounded",
            ],
            _CORRUPT: [
                "test_pop_item_skips_corrupt_most_recent",
                "test_get_items_limit_skips_corrupt_newest_rows",
                "test_pop_item_returns_none_after_dropping_only_corrupt_rows",
            ],
            _TIES: [
                "test_get_items_same_timestamp_consistent_order",
                "test_pop_item_same_timestamp_returns_latest",
            ],
        },
    ),
    **_excluded(
        "extensions/memory/test_redis_session.py",
        {
            _REDIS: [
                "test_redis_session_rejects_cluster_transactions_before_pipeline",
                "test_redis_cluster_reads_and_subclass_writes",
                "test_colliding_session_clear_preserves_existing_session",
                "test_colliding_counter_rejects_ttl_write_before_side_effects",
                "test_clear_rechecks_key_types_after_concurrent_replacement",
                "test_released_redis_layout_remains_usable",
                "test_mutation_cancellation_waits_for_authoritative_outcome",
                "test_external_client_not_closed",
                "test_internal_client_ownership",
                "test_decode_responses_client_compatibility",
                "test_real_redis_decode_responses_compatibility",
                "test_get_next_id_method",
                "test_add_items_preserves_created_at_metadata",
                "test_ping_connection_failure",
                "test_close_method_coverage",
                "test_redis_session_closed_operations_raise_runtime_error",
                "test_redis_session_failed_cleanup_is_terminal_and_retried",
                "test_redis_session_cancelled_cleanup_is_terminal_and_retried",
                "test_redis_session_close_is_noop_for_injected_client",
                "test_add_items_applies_ttl_in_the_write_transaction",
                "test_add_items_rejects_unrepresentable_ttl_before_writing",
                "test_add_items_rejects_wrong_metadata_key_type_before_writing",
                "test_add_items_uses_server_absolute_expiration_after_serialization",
                "test_add_items_refreshes_server_timestamps_after_watch_retry",
                "test_ambiguous_exec_watch_error_is_not_retried",
                "test_redis81_standard_pool_checkout_records_native_observability",
                "test_redis8_blocking_pool_checkout_preserves_native_timing",
                "test_add_items_with_ttl_supports_single_connection_pool",
                "test_cancelled_watch_releases_single_connection_pool",
                "test_cancelled_in_flight_watch_command_reconnects_before_pool_reuse",
                "test_cancelled_connection_acquisition_is_discarded_before_release",
                "test_post_commit_cancellation_propagates_after_cleanup",
                "test_post_commit_response_callback_failure_does_not_retry",
                "test_successful_batch_response_with_sibling_error_does_not_retry",
                "test_post_commit_reset_self_cancellation_does_not_cancel_caller",
                "test_post_commit_reset_failure_detaches_without_release_listener",
                "test_reconnect_required_release_detaches_without_listener_reborrow",
                "test_reconnect_marked_inside_release_failure_is_detached",
                "test_post_commit_release_listener_failure_does_not_retry",
                "test_pre_exec_close_failure_is_quarantined",
                "test_pre_exec_cancellation_skips_pipeline_reset",
                "test_blocking_pool_cancellation_completion_owns_release",
                "test_ordinary_pool_cancellation_completion_owns_release",
                "test_transparent_overridden_pool_release_is_supported",
                "test_release_failure_after_reborrow_preserves_new_borrower",
                "test_post_commit_disconnect_failure_is_not_retryable",
                "test_post_commit_detached_close_failure_is_quarantined",
                "test_blocking_pool_listener_failure_notifies_waiter",
                "test_blocking_pool_detached_disconnect_notifies_waiter",
                "test_post_commit_internal_reset_failure_does_not_report_write_failure",
                "test_redis_session_operation_waiting_behind_close_raises",
            ],
            _COMPACTION: [
                "test_compaction_replaces_redis_history_atomically",
                "test_atomic_replacement_preserves_clear_add_metadata",
                "test_atomic_replacement_serializes_before_deleting_history",
                "test_compaction_subclass_retains_overridden_storage_methods",
                "test_compaction_cancel_after_redis_commit_invalidates_cached_history",
                "test_atomic_replacement_rejects_colliding_counter_key",
                "test_cancelled_redis_compaction_handoff_remains_resumable",
                "test_redis_compaction_preserves_encryption_wrapper",
            ],
            _CORRUPT: [
                "test_get_items_limit_skips_corrupt_newest_messages",
                "test_corrupted_data_handling",
            ],
        },
    ),
}
"""Every SDK test left out, and why."""

_REAL_REDIS_MODE = {"test_from_url_constructor", "test_session_settings_from_url"}
"""Redis tests the SDK runs only against a real server (it skips them when fakeredis
is installed): run in that mode, since the store behind them is a real one."""


def pytest_configure(config: pytest.Config) -> None:
    # A marker of the SDK's own test set-up (tests that must not run in parallel).
    config.addinivalue_line("markers", "serial: the Agents SDK's tests that run alone")


_NO_SKIP = (
    "a test of the Agents SDK's own suite skipped ({}): every library and server "
    "it asks for is there, so it must run, not skip"
)


def _ours(path: object) -> bool:
    return str(path).startswith(__file__.rsplit("/", 1)[0] + "/")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()
    if report.skipped and _ours(collector.path):
        report.outcome = "failed"
        report.longrepr = _NO_SKIP.format(report.longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.skipped and _ours(item.path) and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = _NO_SKIP.format(report.longrepr)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = __file__.rsplit("/", 1)[0] + "/"
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        path = str(item.path)
        original = getattr(item, "originalname", item.name)
        name = f"{path.removeprefix(here)}::{original}" if path.startswith(here) else ""
        (dropped if name in EXCLUDED else kept).append(item)
        if path.startswith(here):
            item.add_marker(pytest.mark.integration)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


class _Current:
    settings: Settings | None = None


@contextlib.asynccontextmanager
async def _deployment(stack: Settings) -> AsyncIterator[Settings]:
    async with isolated_deployment(stack, "t") as mine, projectors_running(mine):
        yield mine


@pytest.fixture(autouse=True)
def deployment(stack_settings: Settings, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """This test's own deployment, its projectors running on the sessions loop (the
    SDK's tests run on loops of their own, and in threads)."""
    loop = session_loop()
    stack = contextlib.AsyncExitStack()

    async def enter() -> Settings:
        return await stack.enter_async_context(_deployment(stack_settings))

    settings = loop.run_sync(enter())
    _Current.settings = settings
    set_tracing_disabled(True)
    module = request.module
    patch = request.getfixturevalue("monkeypatch")
    if hasattr(module, "USE_FAKE_REDIS") and request.function.__name__ in _REAL_REDIS_MODE:
        patch.setattr(module, "USE_FAKE_REDIS", False)
        patch.setattr(module, "REDIS_URL", settings.redis_url, raising=False)
    for shim in (SQLiteSession, AsyncSQLiteSession, SQLAlchemySession, RedisSession):
        if hasattr(module, shim.__name__):
            patch.setattr(module, shim.__name__, shim)
    try:
        yield settings
    finally:
        _Current.settings = None
        close_shared_backends()  # before its servers' topics and schema go
        loop.run_sync(stack.aclose())


def _runwire(shim: RunwireSession, store: str, session_id: str, session_settings: Any) -> None:
    """Open ``shim`` as the runwire session for ``session_id`` in ``store``."""
    assert _Current.settings is not None, "no deployment for this test"
    RunwireSession.__init__(
        shim,
        f"{store}|{session_id}",
        user_id="sdk-tests",
        settings=_Current.settings,
        session_settings=session_settings,
    )
    shim.session_id = session_id


class SQLiteSession(RunwireSession):
    """``RunwireSession`` with ``SQLiteSession``'s constructor (and its name, which
    the SDK's error messages carry)."""

    def __init__(
        self,
        session_id: str,
        db_path: Any = ":memory:",
        sessions_table: str = "agent_sessions",
        messages_table: str = "agent_messages",
        session_settings: Any = None,
    ) -> None:
        _runwire(self, str(db_path), session_id, session_settings)


class AsyncSQLiteSession(SQLiteSession):
    """``RunwireSession`` with ``AsyncSQLiteSession``'s constructor."""


class _Engine:
    """What the SDK's tests do with a ``SQLAlchemySession``'s engine: dispose it."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def dispose(self) -> None:
        return None


class SQLAlchemySession(RunwireSession):
    """``RunwireSession`` with ``SQLAlchemySession``'s constructors."""

    def __init__(
        self,
        session_id: str,
        *,
        engine: Any,
        create_tables: bool = False,
        sessions_table: str = "agent_sessions",
        messages_table: str = "agent_messages",
        session_settings: Any = None,
        **_: Any,
    ) -> None:
        _runwire(self, str(engine.url), session_id, session_settings)
        self.engine = engine

    @classmethod
    def from_url(
        cls,
        session_id: str,
        *,
        url: str,
        engine_kwargs: dict[str, Any] | None = None,
        session_settings: Any = None,
        **kwargs: Any,
    ) -> SQLAlchemySession:
        return cls(session_id, engine=_Engine(url), session_settings=session_settings, **kwargs)


class RedisSession(RunwireSession):
    """``RunwireSession`` with ``RedisSession``'s constructors; a key prefix names a
    store."""

    def __init__(
        self,
        session_id: str,
        *,
        redis_client: Any = None,
        key_prefix: str = "agents:session",
        ttl: int | None = None,
        session_settings: Any = None,
    ) -> None:
        _runwire(self, f"redis:{key_prefix}", session_id, session_settings)

    @classmethod
    def from_url(
        cls,
        session_id: str,
        *,
        url: str,
        redis_kwargs: dict[str, Any] | None = None,
        session_settings: Any = None,
        **kwargs: Any,
    ) -> RedisSession:
        return cls(session_id, session_settings=session_settings, **kwargs)

    async def ping(self) -> bool:
        self._check_open()
        return True
