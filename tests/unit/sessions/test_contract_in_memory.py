"""The session and memory contracts on the in-memory twin."""

from __future__ import annotations

import pytest

from runwire.sessions import InMemoryBackend
from tests.contract.memory_store import MemoryContract
from tests.contract.sessions import SessionContract


class TestInMemorySessions(SessionContract):
    @pytest.fixture
    def backend(self) -> InMemoryBackend:
        return InMemoryBackend()


class TestInMemoryMemory(MemoryContract):
    @pytest.fixture
    def backend(self) -> InMemoryBackend:
        return InMemoryBackend()
