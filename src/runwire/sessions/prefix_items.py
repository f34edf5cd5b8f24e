"""A fork's shared prefix as framework items: what it begins with, read from the log.

Contract:
- ``PrefixItems.read(backend, info)``: the live framework items of the
  session's fork prefix (:func:`~runwire.sessions.forks.lineage`: the
  parent's runs the fork names, the last one cut at the fork's offset), in
  log order, each as the parent's run stored it (the same ``event_id`` and
  item, JSON-equal to what the framework handed over: the ledger's fold, as
  the transcript cache folds it). Empty for a session that is not a fork, or
  a fork cleared since (a clear hides the prefix too).
- Pops in the parent's runs before the cut are honoured (the item is not
  there); pops after it are not (the fork began before them).
- A prefix run erased with its session is left out (erasure reaches what was
  shared), as :meth:`~runwire.sessions.log_backend.LogBackend.prefix` does.
- A prefix never changes otherwise, so one object holds the last one read and
  only checks which of its runs are still there (one cache call) on later reads.
  It holds the items as JSON text and every read parses them anew: a caller
  that changes an item it was given (as a framework may) changes nothing
  another read returns, as with the SDK's own sessions.
"""

from __future__ import annotations

from runwire.contract import jsonvalues
from runwire.projections.transcripts.history import TranscriptHistory
from runwire.sessions.forks import lineage
from runwire.sessions.protocol import SessionInfo, SessionItem
from runwire.transcript.errors import LedgerError
from runwire.transcript.ledger import TranscriptBuilder

__all__ = ["PrefixItems"]


class PrefixItems:
    """Reads (and holds) one session's fork prefix as items; see the module contract."""

    def __init__(self) -> None:
        # (key, present runs, [(run id, event id, framework, the item's JSON)]).
        self._held: tuple[tuple[object, ...], list[str], list[tuple[str, str, str, bytes]]] | None
        self._held = None

    async def read(self, history: TranscriptHistory, info: SessionInfo) -> list[SessionItem]:
        line = lineage(info, [])
        if not line.run_ids:
            return []
        key = (tuple(line.run_ids), tuple(sorted(line.bounds.items())))
        present = await history.present(line.run_ids)
        if self._held is not None and self._held[:2] == (key, present):
            return _items(self._held[2])
        records = await history.records_now(present, line.bounds, skip_erased=True)
        items: list[tuple[str, str, str, bytes]] = []
        for run_id in present:
            builder = TranscriptBuilder(run_id)
            for record in records.get(run_id, []):
                try:
                    builder.apply(record.event)
                except LedgerError:
                    continue  # the projector dead-lettered it: it changed nothing
            items += [
                (run_id, kept.event_id, kept.framework, jsonvalues.dumps(kept.item))
                for kept in builder.items()
            ]
        self._held = (key, present, items)
        return _items(items)


def _items(held: list[tuple[str, str, str, bytes]]) -> list[SessionItem]:
    """Fresh items from the held JSON (numbers exact, key order kept)."""
    return [SessionItem(r, e, f, jsonvalues.loads(data)) for r, e, f, data in held]
