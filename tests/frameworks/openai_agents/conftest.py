"""The OpenAI Agents SDK's own session tests, run against ``RunwireSession``.

The files under this folder are the SDK's (openai-agents 0.24.0, from its
sdist), byte for byte: ``test_responses.py`` (their helper),
``memory/test_session.py`` and ``memory/test_session_limit.py``. This
conftest only:

- lets their imports find each other (``tests.test_responses``,
  ``tests.memory.test_session``: the SDK's own test package layout);
- swaps the session class they use (``SQLiteSession``) for a
  ``RunwireSession`` taking the same arguments, on a deployment of the test
  stack of its own per test (fresh topics, Redis prefix, Postgres schema) with
  the four projectors running (:func:`deployment`); a ``db_path`` names a
  database, so the same session id in two paths is two sessions, as in SQLite;
- leaves out the tests listed in :data:`EXCLUDED`, each with why: only those
  that inspect SQLite's own internals (its connections, locks, tables).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from agents import set_tracing_disabled

from runwire.infra.isolation import isolated_deployment
from runwire.sessions.blocking import BackgroundLoop
from runwire.sessions.embedded import projectors_running
from runwire.sessions.openai_agents import RunwireSession
from runwire.settings import Settings

_HERE = __name__.rsplit(".", 1)[0]
# The SDK's tests import their helpers as the SDK's test package lays them out.
sys.modules["tests.test_responses"] = importlib.import_module(f"{_HERE}.test_responses")
sys.modules["tests.memory"] = importlib.import_module(f"{_HERE}.memory")

_SQLITE_INTERNALS = "inspects SQLiteSession's own SQLite connections, locks or tables"
EXCLUDED: dict[str, str] = {
    f"memory/test_session.py::{name}": _SQLITE_INTERNALS
    for name in [
        "test_sqlite_session_close_closes_worker_thread_connections",
        "test_sqlite_session_reaps_connections_from_exited_worker_threads",
        "test_sqlite_session_closes_retired_connections_before_the_next_allocation",
        "test_sqlite_session_keeps_connections_of_live_worker_threads",
        "test_sqlite_session_pop_item_skips_corrupt_most_recent",
        "test_sqlite_session_pop_item_returns_none_after_dropping_only_corrupt_rows",
        "test_sqlite_session_get_items_limit_skips_corrupt_newest_rows",
        "test_sqlite_session_get_items_session_settings_limit_skips_corrupt_rows",
        "test_sqlite_session_file_lock_is_shared_across_instances",
        "test_sqlite_session_failed_add_items_releases_write_lock",
        "test_sqlite_session_failed_clear_session_rolls_back",
        "test_sqlite_session_failed_pop_item_releases_write_lock",
        "test_sqlite_session_rollback_failure_evicts_connection",
        "test_sqlite_session_close_retries_quarantined_connection",
        "test_sqlite_session_post_commit_cancellation_propagates_after_known_outcome",
    ]
}
"""Every SDK test left out, and why."""


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
    loop = BackgroundLoop.shared()
    stack = contextlib.AsyncExitStack()

    async def enter() -> Settings:
        return await stack.enter_async_context(_deployment(stack_settings))

    settings = loop.run(enter())
    _Current.settings = settings
    set_tracing_disabled(True)
    module = request.module
    if hasattr(module, "SQLiteSession"):
        request.getfixturevalue("monkeypatch").setattr(module, "SQLiteSession", SQLiteSession)
    try:
        yield settings
    finally:
        _Current.settings = None
        loop.run(stack.aclose())


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
        assert _Current.settings is not None, "no deployment for this test"
        super().__init__(
            f"{db_path}|{session_id}",
            user_id="sdk-tests",
            settings=_Current.settings,
            session_settings=session_settings,
        )
        self.session_id = session_id
