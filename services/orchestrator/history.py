"""Session history in the model input: :class:`SessionHistory`.

Contract (a :class:`~runwire.services.orchestrator.context.ContextSource`):
- A run whose log holds a ``context_seeded`` event gets exactly the history
  it records, at every model call: the recorded runs are re-read from the
  log at the recorded offsets and checked against the recorded digest
  (:func:`runwire.context.rebuild_history_async`), so a restart, a replay or
  a later delta of the run sees the same input however much the session
  grew since. Rebuilt windows are cached per run.
- Otherwise, on a run's first model call, when the run belongs to a session
  and its agent's :class:`~runwire.context.ContextPolicy` is enabled: the
  session's earlier runs (from the run-status projection, waited for until
  it has read the log as far as it reached when the call began, then read
  from the log at the positions it gives) are cut to a window by
  :func:`runwire.context.select_history` (``session_cleared`` honoured,
  never half a tool exchange, valid for the provider) and the window's
  ``context_seeded`` payload is returned to be recorded before the call.
- Only runs of the run's own (user, tenant) are ever read into its history,
  and a run in a session the session index knows as someone else's is
  refused (:class:`~runwire.projections.sessions.owner.ForeignSessionError`:
  the run fails, nothing of the session reaches the model).
- Later calls of a run that was never seeded (it began before seeding
  existed, or its first call failed before recording) get no history.
- Compaction (an agent with a :class:`~runwire.context.CompactionPolicy` in
  ``compactions``, and a ``summarizer``: :class:`ProviderSummarizer`, a
  model call through the provider adapters): on a run's first call, turns
  of the window older than the policy keeps are replaced by a summary,
  reused from an earlier run of the session when its fingerprint and span
  are the same; the ``context_compacted`` payload is returned to be recorded
  with the seed, and a run whose log holds one gets that summary again at
  every call (:mod:`runwire.context.compaction`). The log and the
  transcript cache keep every original event.
- The session's ``system`` metadata (its instructions), read at every call
  of a run of a session of the same owner, is returned as
  ``ModelInput.system``.
- The model input is ``history + the run's transcript``
  (:func:`runwire.context.prepare_model_input` does the deciding; this
  class does the reading).
- ``start()`` / ``stop()`` or ``async with`` (a consumer for end offsets).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from runwire.context import (
    CompactionPolicy,
    ContextError,
    ContextPolicy,
    ContextWindow,
    RunHistory,
    SessionRuns,
    Summarizer,
    fold_run_events,
    prepare_model_input,
)
from runwire.contract.events import ContextCompacted, Event
from runwire.errors import NotFoundError, NotStartedError, StoreUnavailableError
from runwire.log import Position, clients
from runwire.log.clients import topic_partitions
from runwire.projections.runtime.waiting import NotCaughtUpError
from runwire.projections.sessions.owner import ForeignSessionError, Owner, owner_of
from runwire.providers.base import ModelProvider, ModelRequest
from runwire.services.lifecycle import AsyncService
from runwire.services.orchestrator.context import ModelInput
from runwire.services.orchestrator.run_state import Answer, RunState
from runwire.settings import Settings
from runwire.transcript.messages import Message

if TYPE_CHECKING:
    from runwire.log.runs import RunReader
    from runwire.projections.runs.fold import Run
    from runwire.projections.runs.reader import RunStore
    from runwire.projections.sessions.fold import Session
    from runwire.projections.sessions.reader import SessionIndex

__all__ = [
    "DEFAULT_POLICY",
    "MAX_WINDOWS",
    "MAX_WINDOW_TOKENS",
    "ProviderSummarizer",
    "SessionHistory",
]

log = logging.getLogger(__name__)

DEFAULT_POLICY = ContextPolicy(history_runs=20, history_turns=40)
"""What an agent without a policy of its own is shown."""

SYSTEM_KEY = "system"
"""The session metadata key of its instructions (``runwire.sessions.names.SYSTEM_KEY``,
a floor above this one; a unit test keeps the two equal)."""

_MAX_RUNS_READ = 200
"""Earlier runs read at most when no policy bound says fewer."""

MAX_WINDOWS = 10_000
"""Runs whose history window is kept for their later calls."""

MAX_WINDOW_TOKENS = 2_000_000
"""Tokens the kept windows may hold together. A bound on their number alone
would let 10,000 windows of a large context each (tool results of
megabytes, a model's whole context) take gigabytes of a long-lived
orchestrator; a forgotten window is read from the log again when its run
needs it."""


class _Windows(OrderedDict[str, ContextWindow]):
    """The windows kept, by run id, least recently stored first, with their tokens summed."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = 0

    def __setitem__(self, run_id: str, window: ContextWindow) -> None:
        old = self.get(run_id)
        if old is not None:
            self.tokens -= old.token_count
        super().__setitem__(run_id, window)
        self.move_to_end(run_id)
        self.tokens += window.token_count

    def trim(self, max_windows: int, max_tokens: int) -> None:
        """Forget the least recently stored until within both bounds; the last one
        stored is always kept."""
        while len(self) > 1 and (len(self) > max_windows or self.tokens > max_tokens):
            _, window = self.popitem(last=False)
            self.tokens -= window.token_count


class ProviderSummarizer:
    """A :class:`~runwire.context.Summarizer` that asks a model through its adapter
    (the local model gives a deterministic summary)."""

    def __init__(self, model: ModelProvider) -> None:
        self._model = model
        self.provider = model.name
        self.model = model.default_model

    async def summarize(self, messages: Sequence[Message], max_tokens: int) -> str:
        response = await self._model.complete(
            ModelRequest(messages=tuple(messages), max_tokens=max_tokens)
        )
        text = response.message().text()
        if not text:
            raise ContextError(f"the summarizing model ({self.model}) answered without text")
        return text


class SessionHistory(AsyncService):
    """History from the session's earlier runs; see the module contract.

    ``provider`` and ``thinking_enabled`` are the rules the window is cut for
    (the orchestrator's provider). The readers are the caller's to open and
    close.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        runs: RunStore,
        sessions: SessionIndex | None,
        run_log: RunReader,
        provider: str,
        thinking_enabled: bool,
        policies: Mapping[str, ContextPolicy] | None = None,
        default_policy: ContextPolicy = DEFAULT_POLICY,
        catch_up_timeout: float = 5.0,
        owned: Iterable[Any] = (),
        compactions: Mapping[str | None, CompactionPolicy | None] | None = None,
        summarizer: Summarizer | None = None,
        max_window_tokens: int = MAX_WINDOW_TOKENS,
    ) -> None:
        if max_window_tokens < 0:
            raise ValueError(f"max_window_tokens must be 0 or more, not {max_window_tokens}")
        self._settings = settings
        self._runs = runs
        self._sessions = sessions
        self._log = run_log
        self._provider = provider
        self._thinking = thinking_enabled
        self._policies = dict(policies or {})
        self._default = default_policy
        self._catch_up_timeout = catch_up_timeout
        self._compactions = dict(compactions or {})
        """Per agent id the compaction policy (or None); under None, every other agent's."""
        self._summarizer = summarizer
        self._windows = _Windows()
        self._max_window_tokens = max_window_tokens
        self._consumer: Any = None
        self._owned = list(owned)
        """Readers this object closes when it stops (given by the wiring)."""

    async def start(self) -> None:
        """Open the consumer that asks for the log's end offsets. Idempotent."""
        if self._consumer is not None:
            return
        consumer = clients.consumer(
            self._settings,
            "history",
        )
        await consumer.start()
        try:
            partitions = await topic_partitions(consumer, self._settings.run_events)
        except BaseException:
            await consumer.stop()
            raise
        self._partitions = [TopicPartition(self._settings.run_events, p) for p in partitions]
        self._consumer = consumer

    async def stop(self) -> None:
        """Close the consumer and the readers it owns. Idempotent."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
        owned, self._owned = self._owned, []
        for reader in owned:
            await (reader.stop() if hasattr(reader, "stop") else reader.close())

    def policy(self, agent_id: str | None) -> ContextPolicy:
        if agent_id is None:
            return self._default
        return self._policies.get(agent_id, self._default)

    async def prepare(self, state: RunState, action: Answer) -> ModelInput:
        context = state.context
        session_id = context.session_id
        policy = self.policy(context.agent_id)

        async def load_session() -> SessionRuns:
            assert session_id is not None
            who = Owner(context.user_id, context.tenant)
            cleared_at = await self._owned_session(session_id, who)
            await self._projection_caught_up()
            compacted: list[Event] = []
            runs = await self._earlier_runs(session_id, state.run_id, who, policy, compacted)
            return SessionRuns(runs, cleared_at, compacted)

        prepared = await prepare_model_input(
            action.messages,
            run_id=state.run_id,
            seeded=state.seeded,
            first_call=action.turn == 1 and policy.enabled,
            load_session=load_session if session_id is not None else None,
            read_run_events=self._read,
            policy=policy,
            provider=self._provider,
            thinking_enabled=self._thinking,
            cache=self._windows,
            compaction=self._compactions.get(context.agent_id, self._compactions.get(None)),
            summarizer=self._summarizer,
            compacted=state.compacted,
        )
        self._trim()
        system = None
        if session_id is not None:
            system = await self._session_system(session_id, Owner(context.user_id, context.tenant))
        return ModelInput(prepared.messages, prepared.seed, prepared.compacted, system)

    async def _session_system(self, session_id: str, who: Owner) -> str | None:
        """The session's ``system`` metadata (its instructions), if it is ``who``'s."""
        session = await self._indexed_session(session_id)
        if session is None:
            return None
        value = session.metadata.get(SYSTEM_KEY)
        if owner_of(session) != who or not isinstance(value, str) or not value.strip():
            return None
        return value

    async def _earlier_runs(
        self,
        session_id: str,
        run_id: str,
        who: Owner,
        policy: ContextPolicy,
        compacted: list[Event],
    ) -> list[RunHistory]:
        """The session's earlier runs of ``who`` (never another user's), oldest first;
        the ``context_compacted`` events they hold are added to ``compacted``."""
        wanted = min(
            _MAX_RUNS_READ,
            policy.history_runs + 1 if policy.history_runs is not None else _MAX_RUNS_READ,
        )
        rows: list[Run] = []
        page: str | None = None
        while True:  # newest first, then put back in the session's order
            batch = await self._runs.list(session_id=session_id, page=page, limit=100)
            rows.extend(
                r for r in batch.items if r.run_id != run_id and Owner(r.user_id, r.tenant) == who
            )
            page = batch.next_page
            if page is None or len(rows) >= wanted:
                break
        rows = sorted(rows[:wanted], key=lambda r: (r.started_at, r.run_id))
        out: list[RunHistory] = []
        for row in rows:
            events = await self._read(
                row.run_id, row.log_partition, row.first_offset, row.last_offset
            )
            compacted.extend(e for e in events if isinstance(e.payload, ContextCompacted))
            out.append(
                RunHistory(
                    run_id=row.run_id,
                    partition=row.log_partition,
                    first_offset=row.first_offset,
                    last_offset=row.last_offset,
                    messages=tuple(fold_run_events(row.run_id, events)),
                    first_ms=int(row.started_at.timestamp() * 1000),
                )
            )
        return out

    async def _owned_session(self, session_id: str, who: Owner) -> int | None:
        """The session's clear point (ms); :class:`ForeignSessionError` when the session
        index knows an owner other than ``who`` (the run is refused, never answered).

        A session the index does not hold yet is not refused: only ``who``'s runs
        are read into the history anyway.
        """
        session = await self._indexed_session(session_id)
        if session is None:
            return None
        if owner_of(session) != who:
            raise ForeignSessionError(session_id, who=who)
        if session.cleared_at is None:
            return None
        return int(session.cleared_at.timestamp() * 1000)

    async def _indexed_session(self, session_id: str) -> Session | None:
        """The session index's row of the session (None: no index, or not there yet)."""
        if self._sessions is None:
            return None
        try:
            return await self._sessions.get(session_id)
        except NotFoundError:
            return None

    async def _read(self, run_id: str, partition: int, first: int, last: int) -> Iterable[Event]:
        records = await self._log.read(run_id, partition, first, last)
        return [r.event for r in records]

    async def _projection_caught_up(self) -> None:
        """Wait (bounded) until the run-status store has read the log as far as it is now.

        An earlier run of the session that ended a moment ago must be seen
        whole, or its last turn would be left out of the window.
        """
        if self._consumer is None:
            raise NotStartedError("SessionHistory is not started: use `async with`")
        try:
            found: dict[TopicPartition, int] = await self._consumer.end_offsets(self._partitions)
        except KafkaError as e:  # only ever the broker's trouble, never the run's
            store = "the run-events log (Kafka)"
            raise StoreUnavailableError(
                f"{store} did not give its end offsets: {type(e).__name__}: {e}", store=store
            ) from e
        ends = {tp.partition: end for tp, end in found.items()}
        try:
            async with asyncio.timeout(self._catch_up_timeout):
                for partition, end in ends.items():
                    if end > 0:
                        at = Position(self._settings.run_events, partition, end - 1)
                        await self._runs.wait_for(at, timeout=self._catch_up_timeout)
        except (TimeoutError, NotCaughtUpError):
            log.warning(
                "the run-status projection is behind the log; history may miss the newest turns"
            )

    def _trim(self) -> None:
        self._windows.trim(MAX_WINDOWS, self._max_window_tokens)
