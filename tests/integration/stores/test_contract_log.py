"""The Goa-AI store contracts on the log-backed stores (Kafka + projections)."""

from __future__ import annotations

import pytest

from runwire.stores.log_backend import LogStores
from tests.contract.stores import StoresContract


class TestLogStores(StoresContract):
    @pytest.fixture
    def stores(self, log_stores: LogStores) -> LogStores:
        return log_stores
