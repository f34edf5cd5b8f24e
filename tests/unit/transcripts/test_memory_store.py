"""The store contract on the in-memory twin."""

from __future__ import annotations

import pytest

from runwire.projections.transcripts.inmem import InMemoryTranscriptStore
from runwire.projections.transcripts.store import TranscriptStore
from tests.contract.transcript_store import TranscriptStoreContract


class TestInMemoryTranscriptStore(TranscriptStoreContract):
    @pytest.fixture
    def store(self) -> InMemoryTranscriptStore:
        return InMemoryTranscriptStore()

    async def expire(self, store: TranscriptStore, generation: int, run_id: str) -> None:
        assert isinstance(store, InMemoryTranscriptStore)
        store.expire(generation, run_id)
