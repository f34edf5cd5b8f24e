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
    def backend(self, log_backend: LogBackend) -> LogBackend:
        return log_backend
