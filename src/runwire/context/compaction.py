"""Compaction: older turns of a run's history replaced in the model's view by a summary.

Contract (pure; the summary itself is the caller's model call):
- :class:`CompactionPolicy` (per agent): of a selected window
  (:func:`~runwire.context.window.select_history`), the newest
  ``keep_turns`` turns stay verbatim; the older ones, rounded down to a
  multiple of ``chunk_turns`` (so the span moves only every ``chunk_turns``
  turns and a summary is reused meanwhile), are the *span* replaced by a
  summary. Its :meth:`~CompactionPolicy.fingerprint` names the policy and
  the model that summarizes.
- :func:`plan_compaction` cuts the window at a turn boundary: the span is
  whole turns (each from a person's message to the final answer), so a
  tool_use is never cut from its tool_result; the span and the rest are
  given as exact run slices (:class:`~runwire.context.window.SeededRun`,
  the same form ``context_seeded`` records) and the span's digest.
- :func:`summary_request` is what the model is asked: the span's messages
  and the policy's instructions as a last user message.
- :func:`compacted_window` is the window the model sees: the summary as a
  user / assistant pair, then the rest of the window; recorded by
  :meth:`~runwire.context.window.ContextWindow.seeded_payload` (the runs of
  the rest, the digest of the whole) and a ``context_compacted`` payload
  (:func:`compaction_payload`); :func:`summary_messages` turns a recorded
  payload back into the pair, so a replay rebuilds the same input.
- A recorded compaction is reused (no model call) when its fingerprint and
  span are the ones planned now (:func:`reusable`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from runwire.context.digest import model_input_digest
from runwire.context.window import ContextWindow, SeededRun, split_turns
from runwire.contract import jsonvalues
from runwire.contract.events import ContextCompacted, Event
from runwire.transcript.messages import Message, TextPart

__all__ = [
    "CompactionPlan",
    "CompactionPolicy",
    "compacted_window",
    "compaction_payload",
    "plan_compaction",
    "reusable",
    "summary_messages",
    "summary_request",
]

SUMMARY_PREFIX = "Summary of the earlier conversation:\n"
ACKNOWLEDGEMENT = "Understood."


class CompactionPolicy(BaseModel):
    """One agent's compaction policy; see the module contract."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keep_turns: int = Field(default=4, ge=1)
    """The newest turns always shown verbatim."""
    chunk_turns: int = Field(default=4, ge=1)
    """The span grows in steps of this many turns (a summary is reused in between)."""
    instructions: str = (
        "Summarize the conversation above for yourself: the facts, names, decisions "
        "and open questions needed to go on with it. Be brief."
    )
    max_tokens: int = Field(default=512, ge=1)

    def fingerprint(self, provider: str, model: str) -> str:
        """Names this policy and the model that summarizes (a change of either: a new summary)."""
        body = jsonvalues.dumps(
            {"policy": self.model_dump(mode="json"), "provider": provider, "model": model},
            sort_keys=True,
        )
        return hashlib.sha256(body).hexdigest()[:32]


@dataclass(frozen=True)
class CompactionPlan:
    """Where a window is cut: the span summarized and the rest kept, as run slices."""

    span: tuple[SeededRun, ...]
    kept: tuple[SeededRun, ...]
    span_messages: tuple[Message, ...]
    kept_messages: tuple[Message, ...]

    @property
    def span_digest(self) -> str:
        return model_input_digest(self.span_messages)

    def span_json(self) -> list[dict[str, int | str]]:
        return [run.model_dump(mode="json") for run in self.span]


def _slices(window: ContextWindow, start: int, end: int) -> tuple[SeededRun, ...]:
    """The window's run slices that cover its messages ``start..end-1``."""
    out: list[SeededRun] = []
    at = 0
    for run in window.runs:
        lo, hi = max(start, at), min(end, at + run.message_count)
        if lo < hi:
            out.append(
                run.model_copy(
                    update={
                        "first_message": run.first_message + lo - at,
                        "message_count": hi - lo,
                    }
                )
            )
        at += run.message_count
    return tuple(out)


def plan_compaction(window: ContextWindow, policy: CompactionPolicy) -> CompactionPlan | None:
    """The cut of ``window`` by ``policy``; None when nothing is old enough to summarize."""
    turns = split_turns(window.messages)
    older = len(turns) - policy.keep_turns
    span_turns = older // policy.chunk_turns * policy.chunk_turns
    if span_turns <= 0:
        return None
    cut = turns[span_turns][0]  # the first kept turn's start: a turn boundary
    total = len(window.messages)
    return CompactionPlan(
        span=_slices(window, 0, cut),
        kept=_slices(window, cut, total),
        span_messages=window.messages[:cut],
        kept_messages=window.messages[cut:],
    )


def summary_request(plan: CompactionPlan, policy: CompactionPolicy) -> list[Message]:
    """The messages the summarizing model is called with."""
    ask = Message(role="user", parts=(TextPart(text=policy.instructions),))
    return [*plan.span_messages, ask]


def summary_messages(summary: str) -> tuple[Message, Message]:
    """The summary as the model sees it: a user message and its acknowledgement."""
    return (
        Message(role="user", parts=(TextPart(text=SUMMARY_PREFIX + summary),)),
        Message(role="assistant", parts=(TextPart(text=ACKNOWLEDGEMENT),)),
    )


def compacted_window(window: ContextWindow, plan: CompactionPlan, summary: str) -> ContextWindow:
    """The window the model sees: the summary pair, then the kept turns."""
    return ContextWindow(
        messages=(*summary_messages(summary), *plan.kept_messages),
        runs=plan.kept,
        policy=window.policy,
        provider=window.provider,
        token_count=window.token_count,
    )


def compaction_payload(
    plan: CompactionPlan, fingerprint: str, summary: str, reused_from: str | None = None
) -> ContextCompacted:
    """The ``context_compacted`` payload that records a compaction."""
    return ContextCompacted(
        fingerprint=fingerprint,
        span=plan.span_json(),
        span_digest=plan.span_digest,
        summary=summary,
        reused_from=reused_from,
    )


def reusable(recorded: Sequence[Event], plan: CompactionPlan, fingerprint: str) -> Event | None:
    """The newest recorded compaction (``context_compacted`` events, oldest first)
    with this fingerprint and exactly this span, if any."""
    span, digest = plan.span_json(), plan.span_digest
    for event in reversed(recorded):
        p = event.payload
        if (
            isinstance(p, ContextCompacted)
            and p.fingerprint == fingerprint
            and p.span == span
            and p.span_digest == digest
        ):
            return event
    return None
