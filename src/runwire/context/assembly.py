"""The model input of a run: its session history, then its own transcript.

Contract of :func:`assemble_model_input` (pure, deterministic):
- The result is the window's messages followed by the run's messages, in
  order; with an empty window it is the run's messages unchanged.
- The run's messages are never changed. A history tool_use id that the run
  also uses is renamed in the history (:mod:`runwire.context.tool_ids`), so
  the run keeps the ids its tool calls are known by.
- The run must start with a user message without tool results (its first
  user turn): otherwise :class:`ContextError` (``run_not_turn_start``), since
  history could not be joined to it without breaking alternation.
- It does not validate: the caller validates the result for its provider,
  as it validates every model input.

:func:`model_input_digest` (re-exported from :mod:`runwire.context.digest`)
digests the result, e.g. for a log line or a test of byte-identical replay.
"""

from __future__ import annotations

from collections.abc import Sequence

from runwire.context.digest import model_input_digest
from runwire.context.errors import ContextError
from runwire.context.tool_ids import tool_use_ids, unique_tool_ids
from runwire.context.window import ContextWindow, is_turn_start
from runwire.transcript.messages import Message

__all__ = ["assemble_model_input", "model_input_digest"]


def assemble_model_input(
    history: ContextWindow, run_messages: Sequence[Message], *, run_id: str | None = None
) -> list[Message]:
    """History, then the run's transcript; see the module contract."""
    run = list(run_messages)
    if history.is_empty:
        return run
    if not run or not is_turn_start(run[0]):
        first = "nothing"
        if run:
            first = "an assistant message" if run[0].role == "assistant" else "tool results"
        where = f"run {run_id}: " if run_id else ""
        raise ContextError(
            f"{where}history cannot be put before a transcript that starts with {first}; "
            "a run's transcript must start with a user message without tool results "
            "(rule run_not_turn_start)"
        )
    reserved = set(tool_use_ids(run))
    if reserved.isdisjoint(tool_use_ids(history.messages)):
        return [*history.messages, *run]
    slices = unique_tool_ids(history.run_slices(), reserved)
    return [*(m for messages in slices for m in messages), *run]
