"""The orchestrator: answers run deltas by calling a model, on the log.

Contract:
- Follows the run-events topic in its own consumer group
  (:mod:`runwire.services.follower`) and folds every run's events into a
  :class:`~runwire.services.orchestrator.run_state.RunState`, tracking runs
  from their ``run_started``.
- Acts only on caught-up partitions, and only on what
  :meth:`RunState.next_action` says: a delta whose answer is already in the
  log is never answered again, so a restart or a rebalance at any instant
  gives at most one answer per delta (a crash between the publish and the
  commit is seen during catch-up). Every answer is published as one atomic
  batch with deterministic ids: a retried publish writes the same events.
- One asyncio task per run with work: a slow model call holds up only its
  own run; a run's actions are taken one after the other, in log order. At
  most ``max_concurrent_calls`` model calls are in flight.
- Lifecycle: ``running`` (acknowledged) -> the model's answer ->
  ``awaiting_tools`` or ``run_completed``; ``run_failed`` with a readable
  kind and message when the provider fails finally (after the retry policy
  of :mod:`runwire.providers.retry`: retriable errors with backoff,
  ``retry_after`` honoured, a timeout per attempt), when the transcript
  breaks a ledger or provider rule (checked before any call; the message
  names the rule), or when the turn limit is reached.
- Acting never strands a run. A failure while acting that is ``retriable``
  (a store the history is read from is unavailable, a publish that may
  succeed later: adapters translate driver errors into
  :class:`~runwire.errors.RunwireError` with that flag) is retried with the
  backoff of :class:`~runwire.providers.retry.RetryPolicy`, bounded by
  ``acting_retry`` (:data:`ACTING_RETRY` by default), re-reading the run's
  state before every attempt; when the attempts are exhausted the run fails
  with the error's kind and message (``retryable`` set). Any other failure
  fails the run at once with its kind and message (``internal_error`` for
  an exception that is not a RunwireError: a bug).
- The model's deltas are published live as they stream
  (:mod:`~runwire.services.orchestrator.streaming`, the live topic; off with
  ``live=False`` or ``settings.live_events``; through ``live_writer`` when
  given, else the publisher); the answer is always the
  call's final response.
- Before a run's first model call its agent's ``concurrent_runs`` policy is
  applied through the session gate
  (:mod:`runwire.services.orchestrator.concurrency`): a run refused there
  fails with kind ``session_busy``; when a run ends, the gate lets its
  session go.
- Approvals: tool calls the agent's policy holds are announced by
  ``approval_requested`` events in the answer's batch (see
  :mod:`~runwire.services.orchestrator.answers`); a denial is answered with
  an error ``tool_result`` the model reads (:class:`Deny`).
- ``run_canceled`` (or any terminal event from elsewhere) cancels the run's
  task: an in-flight model call is aborted and nothing more is published
  for the run.
- Committed offsets are safe points: never past the first event of a run in
  progress, so a restarted instance rebuilds every such run from the log.
- ``start()`` / ``stop()`` (idempotent) or ``async with``; the provider and
  publisher are the caller's (see :mod:`runwire.services.orchestrator.wiring`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from runwire.contract.codec import Codec
from runwire.contract.events import Event, EventType, RunPhase
from runwire.contract.run_lifecycle import foreign_to_run
from runwire.errors import ProviderError, RunwireError
from runwire.log import EventWriter, Position, QueueingWriter, publish_retrying
from runwire.providers.base import ModelProvider, ModelRequest
from runwire.providers.retry import RetryPolicy, call_with_retries
from runwire.services.follower import (
    Follower,
    FollowerOptions,
    FollowingService,
    consumer_group,
)
from runwire.services.orchestrator.agents import AgentDirectory, AgentProfile
from runwire.services.orchestrator.answers import (
    PRODUCER,
    acknowledgement,
    answer_events,
    closing_events,
    context_compacted,
    context_seeded,
    denial_result,
    failure_events,
)
from runwire.services.orchestrator.concurrency import NoGate, SessionGate
from runwire.services.orchestrator.context import ContextSource, NoHistory
from runwire.services.orchestrator.notes import with_planner_note
from runwire.services.orchestrator.observed import ObservedProvider
from runwire.services.orchestrator.run_state import (
    Action,
    Answer,
    Close,
    Deny,
    RunState,
)
from runwire.services.orchestrator.streaming import streamed_call
from runwire.services.run_context import RunContext
from runwire.settings import Settings
from runwire.telemetry import tracing
from runwire.telemetry.metrics import HANDLER_SECONDS, MODEL_RETRIES, TURNS
from runwire.transcript.errors import TranscriptValidationError
from runwire.transcript.validation import PROVIDERS, validate

__all__ = ["ACTING_RETRY", "Orchestrator", "OrchestratorStats", "rules_of"]

log = logging.getLogger(__name__)

ACTING_RETRY = RetryPolicy(
    max_attempts=8, timeout=None, base_delay=0.5, multiplier=2.0, max_delay=15.0
)
"""How a retriable failure of acting is retried: up to 8 attempts with waits of
0.5 s doubling to 15 s (about 23-46 s of waiting in all, jittered), each
attempt as long as it takes (a store read waits up to its pool's timeout for a
connection; a model call has its own policy). Well inside the watchdog's
stall limit, so the run fails with the real reason, not ``owner_lost``."""

_FINISHED_MEMORY = 50_000
"""Finished run ids remembered per partition, so a late copy of their
``run_started`` does not start them again."""


def rules_of(provider: ModelProvider) -> str:
    """Whose transcript rules a provider's input is validated (and cut) for.

    Validation knows the four real providers; anything else (a test double)
    is held to the strictest common rules.
    """
    return provider.name if provider.name in PROVIDERS else "anthropic"


@dataclass
class OrchestratorStats:
    """What the orchestrator did since it started (for status, tests and the benchmark).

    ``overhead`` holds, per answered turn, the seconds from reading the delta
    to the broker's ack of the answer, minus the model call's own seconds.
    """

    answers: int = 0
    failures: int = 0
    closings: int = 0
    retries: int = 0
    acting_retries: int = 0
    """Retries of acting after a retriable failure (a store unavailable, ...)."""
    canceled: int = 0
    model_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))
    overhead: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))


class _Partition:
    """The runs of one owned partition and their tasks."""

    def __init__(self) -> None:
        self.runs: dict[str, RunState] = {}
        self.finished: OrderedDict[str, None] = OrderedDict()
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.touched: set[str] = set()
        self.live = False

    def finish(self, run_id: str) -> None:
        self.runs.pop(run_id, None)
        self.touched.discard(run_id)
        self.finished[run_id] = None
        if len(self.finished) > _FINISHED_MEMORY:
            self.finished.popitem(last=False)


class Orchestrator(FollowingService):
    """Reacts to run deltas; see the module contract."""

    def __init__(
        self,
        settings: Settings,
        *,
        provider: ModelProvider,
        publisher: EventWriter,
        agents: AgentDirectory | None = None,
        context: ContextSource | None = None,
        gate: SessionGate | None = None,
        retry_policy: RetryPolicy | None = None,
        acting_retry: RetryPolicy = ACTING_RETRY,
        max_concurrent_calls: int = 512,
        follower_options: FollowerOptions | None = None,
        codec: Codec | None = None,
        clock: Callable[[], float] = time.monotonic,
        live: bool | None = None,
        live_writer: EventWriter | None = None,
    ) -> None:
        self._settings = settings
        # Streamed deltas go to the live topic (settings.live_events unless given),
        # through live_writer when given: a producer of their own keeps them from
        # queueing in front of the answers.
        live_on = settings.live_events if live is None else live
        self._live = (live_writer or publisher) if live_on else None
        # Wrapped here, at the call site: every call is measured and traced.
        self._provider = (
            provider if isinstance(provider, ObservedProvider) else ObservedProvider(provider)
        )
        self._agent_providers: dict[int, ObservedProvider] = {}
        self._publisher = publisher
        self._agents = agents or AgentDirectory()
        self._context: ContextSource = context or NoHistory()
        self._gate: SessionGate = gate or NoGate()
        self._policy = retry_policy or RetryPolicy.from_settings(settings)
        self._acting_retry = acting_retry
        self._slots = asyncio.Semaphore(max_concurrent_calls)
        self._clock = clock
        self._rules_of = rules_of(provider)
        self._partitions: dict[int, _Partition] = {}
        self._read_at: dict[str, float] = {}
        self.stats = OrchestratorStats()
        self._follower = Follower(
            settings,
            self,
            group_id=consumer_group(settings, "orchestrator"),
            codec=codec,
            options=follower_options,
        )

    # -- lifecycle ---------------------------------------------------------------

    def runs_in_progress(self) -> int:
        return sum(len(p.runs) for p in self._partitions.values())

    # -- the fold (FollowHandler) ------------------------------------------------

    def assigned(self, partitions: Collection[int]) -> None:
        for p in partitions:
            self._partitions[p] = _Partition()

    async def revoked(self, partitions: Collection[int]) -> None:
        tasks: list[asyncio.Task[None]] = []
        for p in partitions:
            part = self._partitions.pop(p, None)
            if part is None:
                continue
            for task in part.tasks.values():
                task.cancel()
                tasks.append(task)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def apply(self, partition: int, offset: int, event: Event) -> None:
        part = self._partitions.get(partition)
        run_id = event.run_id
        if part is None or run_id is None:
            return
        state = part.runs.get(run_id)
        if state is None:
            if event.type is not EventType.RUN_STARTED or run_id in part.finished:
                return  # a run that ended (or began) before where this instance started reading
            context = RunContext.of(event)
            max_turns = self._agents.profile(context.agent_id).max_turns
            state = RunState(context, offset, max_turns=max_turns or self._settings.max_turns)
            part.runs[run_id] = state
        elif foreign_to_run(event, state.context.tenant):
            # Another tenant wrote on this run's id: not the run's (no prompt,
            # no cancel); the run-status store dead-letters it (tenant_mismatch).
            log.warning(
                "run %s: ignoring event %s of tenant %r (the run is tenant %r's)",
                run_id,
                event.event_id,
                event.tenant,
                state.context.tenant,
            )
            return
        if part.live and event.type in (EventType.USER_MESSAGE, EventType.TOOL_RESULT):
            if len(self._read_at) > _FINISHED_MEMORY:
                self._read_at.clear()  # deltas covered by a later one are never popped
            self._read_at[event.event_id] = self._clock()
        state.apply(event, offset)
        if state.terminal:
            policy = self._agents.profile(state.context.agent_id).concurrent_runs
            at = Position(self._settings.run_events, partition, offset)
            self._gate.ended(state.context, policy, at, state.first_offset)
            part.finish(run_id)
            task = part.tasks.pop(run_id, None)
            if task is not None and not task.done() and event.producer != PRODUCER:
                task.cancel()  # canceled (or ended) from elsewhere: abort the call
                self.stats.canceled += 1
            return
        part.touched.add(run_id)

    def batch_done(self) -> None:
        for part in self._partitions.values():
            if not part.live or not part.touched:
                continue
            for run_id in part.touched:
                state = part.runs.get(run_id)
                if state is not None:
                    self._schedule(part, state)
            part.touched.clear()

    def caught_up(self, partition: int) -> None:
        part = self._partitions.get(partition)
        if part is None:
            return
        part.live = True
        part.touched.clear()
        for state in list(part.runs.values()):
            self._schedule(part, state)

    def safe_offset(self, partition: int, position: int) -> int:
        held = self._gate.holding_back(partition)  # a run whose session is not released yet
        if held is not None:
            position = min(position, held)
        part = self._partitions.get(partition)
        if part is None or not part.runs:
            return position
        return min(position, min(s.first_offset for s in part.runs.values()))

    # -- acting ------------------------------------------------------------------

    def _schedule(self, part: _Partition, state: RunState) -> None:
        task = part.tasks.get(state.run_id)
        if task is not None and not task.done():
            return  # it re-reads the state after every step
        if not state.wants_action():
            part.tasks.pop(state.run_id, None)
            return
        part.tasks[state.run_id] = asyncio.create_task(
            self._work(part, state), name=f"run {state.run_id}"
        )

    async def _work(self, part: _Partition, state: RunState) -> None:
        while True:
            attempts = 1
            started = self._clock()

            async def retrying(attempt: int, error: ProviderError, delay: float) -> None:
                nonlocal attempts
                attempts = attempt + 1
                self.stats.acting_retries += 1
                log.warning(
                    "run %s: acting failed (attempt %d of %d), retrying in %.2fs: %s",
                    state.run_id,
                    attempt,
                    self._acting_retry.max_attempts,
                    delay,
                    error,
                )

            try:
                acted = await call_with_retries(
                    lambda: self._act(part, state), self._acting_retry, on_retry=retrying
                )
            except asyncio.CancelledError:
                raise
            except Exception as e:
                await self._give_up(state, e, attempts, self._clock() - started)
                return
            if not acted:
                return

    async def _act(self, part: _Partition, state: RunState) -> bool:
        """Take the run's next action, read afresh (a retry sees what changed); False: none."""
        action = state.next_action()
        if action is None:
            return False
        await self._perform(part, state, action)
        return True

    async def _give_up(
        self, state: RunState, error: Exception, attempts: int, seconds: float
    ) -> None:
        """Acting failed finally: fail the run with the reason, never leave it unattended."""
        action = state.next_action()
        if action is None:
            log.warning("run %s: acting failed, nothing left to do: %s", state.run_id, error)
            return
        cause = action.delta.event_id if isinstance(action, Answer) else action.cause_id
        if isinstance(error, RunwireError):
            kind = _kind_of(error)
            message, retryable = str(error), error.retriable
            if retryable:
                message = f"{message} (still failing after {attempts} attempts in {seconds:.0f}s)"
            log.warning("run %s: failing it: %s", state.run_id, message)
        else:
            # A bug: the run fails with what is known rather than wait for nobody.
            log.error("run %s: acting on %s failed", state.run_id, action, exc_info=error)
            kind, message, retryable = "internal_error", f"{type(error).__name__}: {error}", False
        try:
            await self._fail(state, cause, kind, message, retryable=retryable)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Kafka refuses even the failure: the watchdog fails the run as stalled.
            log.exception("run %s: its failure could not be published", state.run_id)

    async def _perform(self, part: _Partition, state: RunState, action: Action) -> None:
        cause = action.delta.event_id if isinstance(action, Answer) else action.cause_id
        operation = type(action).__name__.lower()
        started = time.perf_counter()
        with tracing.handling(
            cause,
            f"orchestrator {operation}",
            {"runwire.run.id": state.run_id},
        ):
            try:
                await self._perform_traced(part, state, action)
            finally:
                HANDLER_SECONDS.labels("orchestrator", operation).observe(
                    time.perf_counter() - started
                )

    async def _perform_traced(self, part: _Partition, state: RunState, action: Action) -> None:
        if isinstance(action, Answer):
            await self._answer(part, state, action)
        elif isinstance(action, Close):
            state.expect(action.cause_id)
            await self._publish_answer(
                part,
                state,
                action.cause_id,
                closing_events(state.context, action.cause_id, calls_tools=action.calls_tools),
            )
            self.stats.closings += 1
            TURNS.labels("closed").inc()
        elif isinstance(action, Deny):
            state.expect(action.cause_id)
            result = denial_result(
                state.context, action.cause_id, action.tool_use_id, action.message
            )
            await self._publish_answer(part, state, action.cause_id, [result])
        else:
            await self._fail(state, action.cause_id, action.error_kind, action.message)

    async def _answer(self, part: _Partition, state: RunState, action: Answer) -> None:
        policy = self._agents.profile(state.context.agent_id).concurrent_runs
        refusal = await self._gate.admit(state.context, policy)
        if refusal is not None:  # another run holds the session (the agent's policy)
            await self._fail(state, action.delta.event_id, "session_busy", refusal)
            return
        # The acknowledgement goes out while the model works. Whatever follows
        # it (answer or failure) must land after it: a queueing publisher keeps
        # the order it was given, any other one is awaited first.
        ack: Awaitable[Any] | None = None
        if action.acknowledge:
            phase = (
                RunPhase.PLANNING if action.delta.kind == "user_message" else RunPhase.SYNTHESIZING
            )
            event = acknowledgement(state.context, action.delta.event_id, phase)
            if isinstance(self._publisher, QueueingWriter):
                queued = asyncio.ensure_future(self._publisher.enqueue_message([event]))
                queued.add_done_callback(_log_failed_acknowledgement)
            else:
                ack = asyncio.ensure_future(publish_retrying(self._publisher, [event]))
        try:
            await self._call_and_publish(part, state, action, ack)
        finally:
            if isinstance(ack, asyncio.Future) and not ack.done():
                ack.cancel()

    async def _call_and_publish(
        self, part: _Partition, state: RunState, action: Answer, ack: Awaitable[Any] | None
    ) -> None:
        cause = action.delta.event_id
        try:
            model_input = await self._context.prepare(state, action)
        except RunwireError as e:
            if e.retriable:
                raise  # retried by _work (a repeated acknowledgement has the same id)
            await _acknowledged(ack)
            await self._fail(state, cause, _kind_of(e), str(e))
            return
        messages = model_input.messages
        profile = self._agents.profile(state.context.agent_id)
        provider = self._provider_of(profile)
        try:
            validate(
                messages,
                rules_of(profile.provider) if profile.provider is not None else self._rules_of,
                self._settings.thinking_enabled,
                run_id=state.run_id,
            )
        except TranscriptValidationError as e:
            await _acknowledged(ack)
            await self._fail(state, cause, "transcript_rule", str(e))
            return
        if model_input.seed is not None:
            # Recorded before the call: a restart rebuilds this input from it.
            await _acknowledged(ack)
            seed = context_seeded(state.context, cause, model_input.seed)
            recorded = [seed]
            if model_input.compacted is not None:  # one batch, the summary first
                summary = context_compacted(state.context, cause, model_input.compacted)
                recorded.insert(0, summary)
            await publish_retrying(self._publisher, recorded)
        request = ModelRequest(
            messages=messages,
            system=_joined(profile.system, model_input.system),
            tools=profile.tools,
            model=profile.model,
            max_tokens=profile.max_tokens,
            thinking=self._settings.thinking_enabled,
            timeout=self._policy.timeout,
        )
        failure: tuple[str, str, bool] | None = None
        try:
            async with self._slots:
                started = self._clock()
                response = await call_with_retries(
                    lambda: streamed_call(
                        provider, request, self._live, state.context, cause, producer=PRODUCER
                    ),
                    self._policy,
                    on_retry=self._on_retry,
                )
                model_seconds = self._clock() - started
        except ProviderError as e:
            failure = (e.kind, str(e), e.retriable)
        except RunwireError as e:
            failure = (_kind_of(e), str(e), False)
        except Exception as e:  # an adapter bug must not leave the run running forever
            log.exception("run %s: the model call raised", state.run_id)
            failure = ("internal_error", f"{type(e).__name__}: {e}", False)
        await _acknowledged(ack)
        if failure is not None:
            kind, message, retryable = failure
            await self._fail(state, cause, kind, message, retryable=retryable)
            return
        state.expect(cause)
        answer = answer_events(state.context, cause, response, profile.needs_approval)
        answer = with_planner_note(
            state.context, cause, response, answer, answers=action.delta.kind
        )
        await self._publish_answer(part, state, cause, answer)
        read_at = self._read_at.pop(cause, None)
        self.stats.answers += 1
        TURNS.labels("answered").inc()
        self.stats.model_seconds.append(model_seconds)
        if read_at is not None:
            self.stats.overhead.append(self._clock() - read_at - model_seconds)

    def _provider_of(self, profile: AgentProfile) -> ObservedProvider:
        """The agent's own provider (measured and traced like the default one), else ours."""
        if profile.provider is None:
            return self._provider
        observed = self._agent_providers.get(id(profile.provider))
        if observed is None:
            observed = ObservedProvider(profile.provider)
            self._agent_providers[id(profile.provider)] = observed
        return observed

    async def _on_retry(self, attempt: int, error: ProviderError, delay: float) -> None:
        self.stats.retries += 1
        MODEL_RETRIES.labels(self._provider.name, self._provider.default_model).inc()
        log.info("model call attempt %d failed (%s), retrying in %.2fs", attempt, error, delay)

    async def _publish_answer(
        self, part: _Partition, state: RunState, cause: str, events: list[Event]
    ) -> None:
        try:
            await publish_retrying(self._publisher, events)
        except RunwireError as e:
            # The answer can never be written (e.g. too large): say so in the log.
            state.unexpect(cause)
            await self._fail(state, cause, "answer_not_publishable", str(e))
        except BaseException:
            state.unexpect(cause)  # not written: the run still needs an answer
            raise

    async def _fail(
        self, state: RunState, cause: str, kind: str, message: str, *, retryable: bool = False
    ) -> None:
        state.expect(cause)
        self.stats.failures += 1
        TURNS.labels("failed").inc()
        self._read_at.pop(cause, None)
        events = failure_events(state.context, cause, kind, message, retryable=retryable)
        try:
            await publish_retrying(self._publisher, events)
        except BaseException:
            state.unexpect(cause)  # not written: the run still needs its ending
            raise


def _kind_of(error: RunwireError) -> str:
    """The error kind a run failed by ``error`` carries: its ``kind``, else its class."""
    kind = getattr(error, "kind", None)
    if isinstance(kind, str) and kind:
        return kind
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).lower()


def _joined(agent: str | None, session: str | None) -> str | None:
    """The system prompt: the agent's instructions, then the session's own."""
    return "\n\n".join(s for s in (agent, session) if s) or None


async def _acknowledged(ack: Awaitable[Any] | None) -> None:
    """Wait until the acknowledgement is in the log (nothing of the answer may precede it)."""
    if ack is not None:
        await ack


def _log_failed_acknowledgement(future: asyncio.Future[Any]) -> None:
    # The acknowledgement only says "running"; the answer does not depend on it.
    if not future.cancelled() and future.exception() is not None:
        log.warning("an acknowledgement could not be written: %s", future.exception())
