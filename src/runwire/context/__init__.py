"""Conversation continuity: what a run is shown of its session's history.

A chat is one session, many runs (one per user turn). The model of a new run
must see the earlier runs, cut by a per-agent :class:`ContextPolicy`, and
what it was shown is recorded in the run's own log (``context_seeded``), so
a replay gives the same model input however much the session grew since.
Everything here is pure: callers do the I/O (a session loader, a log reader).

- :func:`select_history` - the window: earlier runs' complete turns, newest
  first, within the policy, valid for the provider (:mod:`.window`).
- :meth:`ContextWindow.seeded_payload` - the ``context_seeded`` payload that
  records it; :func:`rebuild_history` / :func:`rebuild_history_async` - the
  same window again, read back from the recorded positions and checked
  against the recorded digest (:mod:`.seeding`).
- :func:`assemble_model_input` - history + the run's transcript, the list
  the model is called with; :func:`model_input_digest` - its SHA-256
  (:mod:`.assembly`, :mod:`.digest`).
- :class:`CompactionPolicy` - older turns of the window replaced by a summary,
  recorded as ``context_compacted`` and reused (:mod:`.compaction`).
- :func:`prepare_model_input` - all of the above as the one call an
  orchestrator makes before each model call of a run (:mod:`.prepare`).

How an orchestrator uses it (e.g. in a ``ContextSource.prepare``)::

    prepared = await prepare_model_input(
        action.messages,
        run_id=state.run_id,
        seeded=state.seeded,              # the run's first context_seeded event
        first_call=action.turn == 1,
        load_session=load if session_id else None,  # -> SessionRuns
        read_run_events=read,             # async (run, partition, first, last) -> events
        policy=profile.context,           # the agent's ContextPolicy
        provider=rules_of, thinking_enabled=thinking, cache=windows,
    )
    # publish prepared.seed (if any) as context_seeded, caused by the delta,
    # BEFORE the call; validate prepared.messages; call the model with them.

1. A run whose log holds a ``context_seeded`` event gets the history it
   records at every call (cached, else rebuilt from the log and checked):
   replays, restarts and later calls of the run see the same input.
2. Else, on a run's first model call in a session, the window is selected
   from the session's runs and ``prepared.seed`` records it.
3. Else (no session, or a run whose first call predates seeding): no history.
"""

from runwire.context.assembly import assemble_model_input
from runwire.context.compaction import CompactionPolicy
from runwire.context.digest import canonical_json, model_input_digest
from runwire.context.errors import ContextError, HistoryMismatchError
from runwire.context.history import RunHistory, fold_run_events
from runwire.context.policy import ContextPolicy
from runwire.context.prepare import PreparedInput, SessionRuns, Summarizer, prepare_model_input
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
    "CompactionPolicy",
    "ContextError",
    "ContextPolicy",
    "ContextWindow",
    "HistoryMismatchError",
    "PreparedInput",
    "RunEventReader",
    "RunHistory",
    "SeededRun",
    "SessionRuns",
    "Summarizer",
    "TokenCounter",
    "assemble_model_input",
    "canonical_json",
    "estimate_tokens",
    "fold_run_events",
    "message_tokens",
    "model_input_digest",
    "prepare_model_input",
    "rebuild_history",
    "rebuild_history_async",
    "seeded_runs",
    "select_history",
]
