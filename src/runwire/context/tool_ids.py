"""Keeping tool_use ids unique when runs are put one after the other.

A tool_use id is unique within a run (the ledger refuses a repeat), but two
runs may use the same one: a deterministic model answering the same question
twice makes the same id, and a provider's ids are only meant to be unique in
one conversation. Every provider refuses a request that repeats one, so
joined runs get them made unique.

Contract (:func:`unique_tool_ids`):
- Runs are given oldest first, each as ``(run_id, messages)``. When an id
  occurs in more than one run (or in ``reserved``: the ids of the transcript
  that comes after them), the newest occurrence keeps it; each older one is
  replaced, in its tool_use and in the tool_result(s) of the same run that
  answer it, by ``rwh_`` + 28 hex digits of SHA-256 over (run id, id, n)
  with the smallest n that is used nowhere else. That fits every provider's
  id rules (``[A-Za-z0-9_-]``, at most 40 characters).
- Nothing else changes: same messages, same parts, same order. Pure and
  deterministic: the same input gives the same ids in every process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence

from runwire.transcript.messages import Message, Part, ToolResultPart, ToolUsePart

__all__ = ["tool_use_ids", "unique_tool_ids"]


def tool_use_ids(messages: Sequence[Message]) -> list[str]:
    return [u.id for m in messages for u in m.tool_uses()]


def _derived(run_id: str, original: str, taken: set[str]) -> str:
    n = 0
    while True:
        seed = f"{run_id}\x1f{original}\x1f{n}".encode()
        candidate = "rwh_" + hashlib.sha256(seed).hexdigest()[:28]
        if candidate not in taken:
            return candidate
        n += 1


def _renamed(messages: Sequence[Message], names: Mapping[str, str]) -> list[Message]:
    out: list[Message] = []
    for message in messages:
        parts: list[Part] = []
        changed = False
        for part in message.parts:
            if isinstance(part, ToolUsePart) and part.id in names:
                parts.append(part.model_copy(update={"id": names[part.id]}))
                changed = True
            elif isinstance(part, ToolResultPart) and part.tool_use_id in names:
                parts.append(part.model_copy(update={"tool_use_id": names[part.tool_use_id]}))
                changed = True
            else:
                parts.append(part)
        out.append(Message(role=message.role, parts=tuple(parts)) if changed else message)
    return out


def unique_tool_ids(
    runs: Sequence[tuple[str, Sequence[Message]]], reserved: Collection[str] = ()
) -> list[list[Message]]:
    """Each run's messages with tool_use ids unique; see the module contract."""
    taken = set(reserved)
    for _, messages in runs:
        taken.update(tool_use_ids(messages))
    seen = set(reserved)
    out: list[list[Message]] = []
    for run_id, messages in reversed(runs):
        names: dict[str, str] = {}
        for original in tool_use_ids(messages):
            if original in seen:
                names[original] = new = _derived(run_id, original, taken)
                taken.add(new)
            seen.add(names.get(original, original))
        out.append(_renamed(messages, names) if names else list(messages))
    out.reverse()
    return out
