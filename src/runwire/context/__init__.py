"""Conversation continuity: what a run is shown of its session's history.

A chat is one session, many runs (one per user turn). The model of a new run
must see the earlier runs, cut by a per-agent :class:`ContextPolicy`, and
what it was shown is recorded in the run's own log (``context_seeded``), so
a replay gives the same model input however much the session grew since.
Everything here is pure: callers do the I/O.

- :func:`select_history` - the window: earlier runs' complete turns, newest
  first, within the policy, valid for the provider (:mod:`.window`).
- :meth:`ContextWindow.seeded_payload` - the ``context_seeded`` payload that
  records it; :func:`rebuild_history` / :func:`rebuild_history_async` - the
  same window again, read back from the recorded positions and checked
  against the recorded digest (:mod:`.seeding`).
- :func:`assemble_model_input` - history + the run's transcript, the list
  the model is called with; :func:`model_input_digest` - its SHA-256
  (:mod:`.assembly`, :mod:`.digest`).

How an orchestrator uses it, per run of a session, when it is about to call
the model (any delta of the run):

1. If the run's log holds a ``context_seeded`` event (the first one counts),
   ``history = await rebuild_history_async(that_event, read)`` (cache it per
   run). A replay, a restart or a later delta of the run takes this path, so
   every model call of the run sees the same history.
2. Else, if this is the run's first model call: read the session's runs
   (``RunHistory`` per run: its messages and the log range they were folded
   from), ``history = select_history(runs, policy, provider=...,
   thinking_enabled=..., cleared_at_ms=..., current_run_id=run_id)``, and
   publish ``history.seeded_payload()`` as the run's event (caused by the
   delta, with a deterministic id) *before* calling the model.
3. Else (a run that started before seeding existed): no history.
4. ``messages = assemble_model_input(history, run_transcript)``; validate
   them for the provider and call the model with them.
"""

from runwire.context.assembly import assemble_model_input
from runwire.context.digest import canonical_json, model_input_digest
from runwire.context.errors import ContextError, HistoryMismatchError
from runwire.context.history import RunHistory, fold_run_events
from runwire.context.policy import ContextPolicy
from runwire.context.seeding import (
    AsyncRunEventReader,
    RunEventReader,
    rebuild_history,
    rebuild_history_async,
    seeded_runs,
)
from runwire.context.tokens import TokenCounter, estimate_tokens, message_tokens
from runwire.context.window import ContextWindow, SeededRun, select_history

__all__ = [
    "AsyncRunEventReader",
    "ContextError",
    "ContextPolicy",
    "ContextWindow",
    "HistoryMismatchError",
    "RunEventReader",
    "RunHistory",
    "SeededRun",
    "TokenCounter",
    "assemble_model_input",
    "canonical_json",
    "estimate_tokens",
    "fold_run_events",
    "message_tokens",
    "model_input_digest",
    "rebuild_history",
    "rebuild_history_async",
    "seeded_runs",
    "select_history",
]
