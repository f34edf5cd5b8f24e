"""The session and memory contracts on the log-backed backend (Kafka + projections)."""

from __future__ import annotations

import pytest

from runwire.sessions.log_backend import LogBackend
from tests.contract.memory_store import MemoryContract
from tests.contract.sessions import SessionContract


class TestLogSessions(SessionContract):
    @pytest.fixture
    def backend(self, log_backend: LogBackend) -> LogBackend:
        return log_backend


class TestLogMemory(MemoryContract):
    @pytest.fixture
    def backend(self, admin_log_backend: LogBackend) -> LogBackend:
        # One process serving callers of several tenants (the Memory API checks
        # each caller's tenant itself): its readers read every tenant's rows,
        # which a process without a tenant does only as the admin.
        return admin_log_backend
