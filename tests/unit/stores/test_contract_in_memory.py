"""The Goa-AI store contracts on the in-memory twin."""

from __future__ import annotations

import pytest

from runwire.stores import Stores
from runwire.stores.inmem import in_memory_stores
from tests.contract.stores import StoresContract


class TestInMemoryStores(StoresContract):
    @pytest.fixture
    def stores(self) -> Stores:
        return in_memory_stores()
