"""The one call an orchestrator makes per model call: history + transcript.

Contract of :func:`prepare_model_input` (no I/O of its own: the session
loader and the log reader are the caller's):

- A run whose log holds a ``context_seeded`` event (``seeded``: the first
  one the run's log holds) gets exactly the history it records, at every
  call: from ``cache`` when the cached window of the run has the recorded
  digest, else rebuilt from the log (:func:`rebuild_history_async`, which
  checks the digest) and cached. ``seed`` is ``None``: nothing to publish.
- Else, on the run's first model call (``first_call``) of a run in a session
  (``load_session`` given): the session's runs are loaded, the window is
  selected (:func:`select_history`, the current run and later ones left
  out, the session's clear honoured) and cached, and ``seed`` is the
  ``context_seeded`` payload the caller must publish *before* calling the
  model. It is given even for an empty window, so that a replay never
  decides again (a policy changed later does not change an old run).
- Else (no session, or a run whose first call was made before seeding
  existed): no history, no seed.
- Compaction (``compaction`` and ``summarizer`` given; first call only): a
  window with turns older than the policy keeps is cut
  (:func:`~runwire.context.compaction.plan_compaction`); a compaction the
  session's earlier runs recorded with the same fingerprint and span is
  reused, else ``summarizer`` makes the summary. ``compacted`` is then the
  ``context_compacted`` payload to publish with (before) ``seed``, and the
  window is the summary pair + the kept turns. A run whose log holds both
  (``seeded`` and ``compacted``) gets the recorded summary + the recorded
  runs, checked against the digest.
- ``messages`` is always :func:`assemble_model_input` of the history and the
  run's transcript; the caller validates it for its provider.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from runwire.context.assembly import assemble_model_input
from runwire.context.compaction import (
    CompactionPolicy,
    compacted_window,
    compaction_payload,
    plan_compaction,
    reusable,
    summary_messages,
    summary_request,
)
from runwire.context.history import RunHistory
from runwire.context.policy import ContextPolicy
from runwire.context.seeding import AsyncRunEventReader, rebuild_history_async
from runwire.context.tokens import TokenCounter
from runwire.context.window import ContextWindow, select_history
from runwire.contract.events import ContextCompacted, ContextSeeded, Event
from runwire.transcript.messages import Message

__all__ = ["PreparedInput", "SessionRuns", "Summarizer", "prepare_model_input"]


@dataclass(frozen=True)
class SessionRuns:
    """A session's runs, oldest first, and when it was last cleared (epoch ms);
    ``compactions``: the ``context_compacted`` events those runs recorded, oldest first."""

    runs: Sequence[RunHistory]
    cleared_at_ms: int | None = None
    compactions: Sequence[Event] = ()


class Summarizer(Protocol):
    """The model call that makes a summary (through the provider adapters)."""

    provider: str
    model: str

    async def summarize(self, messages: Sequence[Message], max_tokens: int) -> str: ...


@dataclass(frozen=True)
class PreparedInput:
    """What to call the model with, and what to record before the call."""

    messages: tuple[Message, ...]
    window: ContextWindow
    seed: ContextSeeded | None = None
    """Publish as the run's ``context_seeded`` event before the call (first call only)."""
    compacted: ContextCompacted | None = None
    """Publish as the run's ``context_compacted`` event, with and before ``seed``."""


async def prepare_model_input(
    run_messages: Sequence[Message],
    *,
    run_id: str,
    seeded: Event | None,
    first_call: bool,
    load_session: Callable[[], Awaitable[SessionRuns]] | None,
    read_run_events: AsyncRunEventReader,
    policy: ContextPolicy,
    provider: str,
    thinking_enabled: bool = False,
    count_tokens: TokenCounter | None = None,
    cache: MutableMapping[str, ContextWindow] | None = None,
    compaction: CompactionPolicy | None = None,
    summarizer: Summarizer | None = None,
    compacted: Event | None = None,
) -> PreparedInput:
    """The model input of one call of run ``run_id``; see the module contract."""
    seed: ContextSeeded | None = None
    compacted_payload: ContextCompacted | None = None
    if seeded is not None:
        recorded = seeded.payload
        cached = cache.get(run_id) if cache is not None else None
        if (
            cached is not None
            and isinstance(recorded, ContextSeeded)
            and cached.digest == recorded.digest
            and len(cached.messages) == recorded.message_count
        ):
            window = cached
        else:
            prefix: tuple[Message, ...] = ()
            if compacted is not None and isinstance(compacted.payload, ContextCompacted):
                prefix = summary_messages(compacted.payload.summary)
            window = await rebuild_history_async(seeded, read_run_events, prefix=prefix)
    elif first_call and load_session is not None:
        session = await load_session()
        window = select_history(
            session.runs,
            policy,
            provider=provider,
            thinking_enabled=thinking_enabled,
            count_tokens=count_tokens,
            cleared_at_ms=session.cleared_at_ms,
            current_run_id=run_id,
        )
        plan = None
        if compaction is not None and summarizer is not None:
            plan = plan_compaction(window, compaction)
        if plan is not None and compaction is not None and summarizer is not None:
            fingerprint = compaction.fingerprint(summarizer.provider, summarizer.model)
            found = reusable(session.compactions, plan, fingerprint)
            if found is not None and isinstance(found.payload, ContextCompacted):
                origin = found.payload.reused_from or found.event_id
                compacted_payload = compaction_payload(
                    plan, fingerprint, found.payload.summary, origin
                )
            else:
                summary = await summarizer.summarize(
                    summary_request(plan, compaction), compaction.max_tokens
                )
                compacted_payload = compaction_payload(plan, fingerprint, summary)
            window = compacted_window(window, plan, compacted_payload.summary)
        seed = window.seeded_payload()
    else:
        window = ContextWindow.empty(policy, provider)
    if cache is not None and (seeded is not None or seed is not None):
        cache[run_id] = window
    messages = assemble_model_input(window, run_messages, run_id=run_id)
    return PreparedInput(
        messages=tuple(messages), window=window, seed=seed, compacted=compacted_payload
    )
