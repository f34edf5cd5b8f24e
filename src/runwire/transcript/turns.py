"""Cutting a transcript to its last turns without breaking it apart.

A turn starts at a user message that carries no tool results: that is where
a person (or a task) speaks, as opposed to a user message that only answers
the tool calls of the assistant message before it. Cutting only there means
a tool_use is never separated from its results, and what is left starts
with a user message, as every provider wants.
"""

from __future__ import annotations

from collections.abc import Sequence

from runwire.transcript.messages import Message, ToolResultPart


def starts_turn(message: Message) -> bool:
    if message.role != "user":
        return False
    # A loop, not any(<generator>): it runs for every message of every read,
    # and making the generator cost more than the check.
    for part in message.parts:  # noqa: SIM110
        if isinstance(part, ToolResultPart):
            return False
    return True


def last_turns(messages: Sequence[Message], n: int | None) -> list[Message]:
    """The messages of the last ``n`` turns (all of them when ``n`` is None or
    there are fewer turns); ``n <= 0`` gives nothing."""
    if n is None:
        return list(messages)
    if n <= 0:
        return []
    starts = [i for i, m in enumerate(messages) if starts_turn(m)]
    if len(starts) <= n:
        return list(messages)
    return list(messages[starts[-n] :])
