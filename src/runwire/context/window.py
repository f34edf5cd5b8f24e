"""Choosing a run's context window from its session's earlier runs.

Contract of :func:`select_history` (pure, no I/O, deterministic):

- Input: the session's earlier runs as :class:`RunHistory`, oldest first (the
  session's order: by first event time, then run id). ``session_cleared`` is
  honoured here: pass the session's last ``cleared_at`` (epoch ms) and every
  run that started at or before it - and every run listed before such a run -
  is left out, the rule the session API's ``history(after_ms)`` uses. (A
  caller that already dropped those runs passes ``cleared_at_ms=None``.)
  With ``current_run_id``, that run and every run listed after it are left
  out too, so the whole session list can be passed as it is.
- A *turn* starts at a user message without tool results (where a person
  speaks) and runs to the next such message. A turn is *complete* when it
  ends with an assistant message that calls no tool: its final answer.
  Messages before a run's first turn start are never shown.
- Each run contributes a stretch of its complete turns ending with its last
  complete turn. Its unanswered tail (a failed, canceled or still running
  run's last question, tool calls without results, text sent after the run
  ended) is left out; so is a run with no complete turn. That is the seam
  rule: the window always ends with a final assistant answer, so the next
  run's first user message follows it, and the model is shown what was
  answered, never half a tool exchange.
- The window is filled from the newest complete turn backwards and stops at
  the first turn that would break a policy bound (``history_runs``,
  ``history_turns``, ``token_budget``) or that the provider would refuse on
  its own (e.g. a tool_use without thinking when Anthropic or Bedrock
  thinking is on). So it is one contiguous stretch of the conversation, and
  what is dropped is always the oldest whole turns.
- tool_use ids repeated across runs are made unique
  (:mod:`runwire.context.tool_ids`); nothing else in a message is changed.
- The result passes :func:`~runwire.transcript.validation.validate` for
  ``provider`` with ``thinking_enabled`` (checked; an empty window is fine),
  starts with a user message, and ends with an assistant message, so
  history + a run transcript that starts with a user message alternates.
- ``policy.enabled=False`` gives an empty window.

:class:`ContextWindow` is the result: the messages, which slice of which run
each came from (:class:`SeededRun`), the policy, provider and token count,
and :meth:`ContextWindow.seeded_payload`, the ``context_seeded`` event
payload that records it (see :mod:`runwire.context.seeding`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field

from runwire.context.digest import model_input_digest
from runwire.context.errors import ContextError
from runwire.context.history import RunHistory
from runwire.context.policy import ContextPolicy
from runwire.context.tokens import TokenCounter, estimate_tokens, messages_tokens
from runwire.context.tool_ids import unique_tool_ids
from runwire.contract.events import ContextSeeded
from runwire.errors import ConfigurationError
from runwire.transcript.messages import Message, ToolResultPart
from runwire.transcript.validation import PROVIDERS, find_violations, validate

__all__ = [
    "ContextWindow",
    "SeededRun",
    "answered_turns",
    "is_turn_start",
    "select_history",
    "split_turns",
]


class SeededRun(BaseModel):
    """What one run gave a window: ``message_count`` of its canonical messages,
    from index ``first_message`` on, as folded from its events at offsets
    ``first_offset..last_offset`` of ``partition``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str = Field(min_length=1)
    partition: int = Field(ge=0)
    first_offset: int = Field(ge=0)
    last_offset: int = Field(ge=0)
    first_message: int = Field(ge=0)
    message_count: int = Field(ge=1)


@dataclass(frozen=True)
class ContextWindow:
    """The history a run is shown, and where every message of it came from."""

    messages: tuple[Message, ...]
    runs: tuple[SeededRun, ...]
    policy: ContextPolicy
    provider: str
    token_count: int = 0

    @classmethod
    def empty(cls, policy: ContextPolicy, provider: str) -> ContextWindow:
        return cls(messages=(), runs=(), policy=policy, provider=provider)

    @property
    def is_empty(self) -> bool:
        return not self.messages

    @cached_property
    def digest(self) -> str:
        """SHA-256 hex of the canonical JSON of :attr:`messages`."""
        return model_input_digest(self.messages)

    def run_slices(self) -> list[tuple[str, list[Message]]]:
        """The messages, cut back into ``(run_id, messages)`` per run, oldest first."""
        out: list[tuple[str, list[Message]]] = []
        at = 0
        for run in self.runs:
            out.append((run.run_id, list(self.messages[at : at + run.message_count])))
            at += run.message_count
        return out

    def seeded_payload(self) -> ContextSeeded:
        """The ``context_seeded`` payload that records this window."""
        return ContextSeeded(
            runs=[run.model_dump(mode="json") for run in self.runs],
            message_count=len(self.messages),
            token_count=self.token_count,
            digest=self.digest,
            policy=self.policy.model_dump(mode="json"),
            provider=self.provider,
        )


def is_turn_start(message: Message) -> bool:
    """A user message without tool results: where a person (or a task) speaks."""
    return message.role == "user" and not any(isinstance(p, ToolResultPart) for p in message.parts)


def split_turns(messages: Sequence[Message]) -> list[tuple[int, int]]:
    """``(start, end)`` index ranges of the turns of ``messages``; messages
    before the first turn start belong to no turn."""
    starts = [i for i, m in enumerate(messages) if is_turn_start(m)]
    return list(zip(starts, [*starts[1:], len(messages)][: len(starts)], strict=True))


def _complete(turn: Sequence[Message]) -> bool:
    last = turn[-1]
    return last.role == "assistant" and not last.tool_uses()


def answered_turns(messages: Sequence[Message]) -> list[tuple[int, int]]:
    """The turns of ``messages`` up to its last complete one (the unanswered tail cut)."""
    turns = split_turns(messages)
    while turns and not _complete(messages[turns[-1][0] : turns[-1][1]]):
        turns.pop()
    return turns


@dataclass
class _Fill:
    """The policy's bounds, and how much of them the window has used."""

    policy: ContextPolicy
    provider: str
    thinking_enabled: bool
    count: TokenCounter
    turns: int = 0
    tokens: int = 0
    full: bool = False

    def room_for_run(self, runs_taken: int) -> bool:
        bound = self.policy.history_runs
        return not self.full and (bound is None or runs_taken < bound)

    def admit(self, turn: Sequence[Message]) -> bool:
        """Take ``turn`` (the next older one) if every bound allows it; once
        one is refused the window is full: nothing older may follow."""
        policy = self.policy
        # A turn the provider would refuse on its own (e.g. tool_use without
        # thinking while thinking is on) ends the window like a bound does.
        refused = (
            (policy.history_turns is not None and self.turns >= policy.history_turns)
            or not _complete(turn)
            or bool(find_violations(turn, self.provider, self.thinking_enabled))
        )
        size = 0 if refused else messages_tokens(turn, self.count)
        if refused or (
            policy.token_budget is not None and self.tokens + size > policy.token_budget
        ):
            self.full = True
        else:
            self.tokens += size
            self.turns += 1
        return not self.full


def _before_clear(
    runs: Sequence[RunHistory], cleared_at_ms: int | None, current_run_id: str | None
) -> list[RunHistory]:
    kept = list(runs)
    if current_run_id is not None:
        for i, run in enumerate(kept):
            if run.run_id == current_run_id:
                kept = kept[:i]
                break
    if cleared_at_ms is None:
        return kept
    cut = 0
    for i, run in enumerate(kept):
        if run.first_ms is None:
            raise ContextError(
                f"run {run.run_id} has no first_ms, so session_cleared at {cleared_at_ms} "
                "cannot be honoured; give every RunHistory its first event time"
            )
        if run.first_ms <= cleared_at_ms:
            cut = i + 1
    return kept[cut:]


def select_history(
    session_runs: Sequence[RunHistory],
    policy: ContextPolicy,
    *,
    provider: str,
    thinking_enabled: bool = False,
    count_tokens: TokenCounter | None = None,
    cleared_at_ms: int | None = None,
    current_run_id: str | None = None,
) -> ContextWindow:
    """The window of history a new run is shown; see the module contract."""
    if provider not in PROVIDERS:
        raise ConfigurationError(f"unknown provider {provider!r}; expected one of {PROVIDERS}")
    if not policy.enabled:
        return ContextWindow.empty(policy, provider)
    runs = _before_clear(session_runs, cleared_at_ms, current_run_id)
    fill = _Fill(policy, provider, thinking_enabled, count_tokens or estimate_tokens)
    chosen: list[tuple[RunHistory, int, int]] = []  # run, first message, end; newest first
    for run in reversed(runs):
        if not fill.room_for_run(len(chosen)):
            break
        turns = answered_turns(run.messages)
        first: int | None = None
        for start, end in reversed(turns):
            if not fill.admit(run.messages[start:end]):
                break
            first = start
        if first is not None:
            chosen.append((run, first, turns[-1][1]))
    chosen.reverse()
    slices = [(run.run_id, run.messages[first:end]) for run, first, end in chosen]
    messages = tuple(m for run in unique_tool_ids(slices) for m in run)
    window = ContextWindow(
        messages=messages,
        runs=tuple(
            SeededRun(
                run_id=run.run_id,
                partition=run.partition,
                first_offset=run.first_offset,
                last_offset=run.last_offset,
                first_message=first,
                message_count=end - first,
            )
            for run, first, end in chosen
        ),
        policy=policy,
        provider=provider,
        token_count=fill.tokens,
    )
    if messages:
        validate(messages, provider, thinking_enabled)
    return window
