"""Provider validation: can this transcript be sent to that provider as it is?

Contract — ``validate(messages, provider, thinking_enabled)`` raises a
:class:`TranscriptValidationError` naming the run, the message index and the
rule for the first message that breaks one of these (``find_violations``
returns them all, in message order):

- ``empty_transcript``: there is no message at all.
- ``first_message_not_user``: the first message is not a user message.
- ``roles_not_alternating``: two messages in a row have the same role.
- ``empty_message``: a message has no parts.
- ``part_not_allowed``: thinking or tool_use in a user message, tool_result in
  an assistant message.
- ``assistant_part_order``: an assistant message is not thinking part(s), then
  text part(s), then tool_use part(s).
- ``user_part_order``: a user message has text before a tool_result.
- ``incomplete_thinking``: a thinking part has neither redacted bytes nor
  text with its signature.
- ``thinking_not_first`` (Anthropic and Bedrock with thinking enabled): an
  assistant message with tool_use does not start with thinking.
- ``empty_tool_use_id``, ``empty_tool_name``, ``duplicate_tool_use_id``: every
  tool_use has a name and an id, unique in the run.
- After an assistant message with tool_use, the next message is a user
  message holding exactly the results for those ids:
  ``missing_tool_results`` (no next message, or no result at all),
  ``partial_tool_results`` (some ids have no result), ``orphan_tool_result``
  (a result for an id that message did not declare — also any result after a
  message without tool_use), ``duplicate_tool_result`` (two results for one
  id), ``empty_tool_result_id``.

Nothing here changes the messages; the rules hold for every provider except
``thinking_not_first``, which only Anthropic and Bedrock enforce.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Literal, get_args

from runwire.errors import ConfigurationError
from runwire.transcript.errors import TranscriptValidationError
from runwire.transcript.messages import (
    Message,
    Part,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
)

__all__ = ["PROVIDERS", "Provider", "find_violations", "validate"]

Provider = Literal["openai", "anthropic", "bedrock", "local"]
PROVIDERS: tuple[Provider, ...] = get_args(Provider)
_THINKING_FIRST: frozenset[str] = frozenset({"anthropic", "bedrock"})

# Rank of each assistant part kind: an assistant message's ranks never go down.
_ASSISTANT_RANK: dict[type[Part], int] = {ThinkingPart: 0, TextPart: 1, ToolUsePart: 2}

_Fail = Callable[[str, int | None, str], None]
"""Records a violation: rule, message index, detail."""


def validate(
    messages: Sequence[Message],
    provider: str,
    thinking_enabled: bool,
    run_id: str | None = None,
) -> None:
    """Raise the first rule ``messages`` break for ``provider``; see the module doc."""
    violations = find_violations(messages, provider, thinking_enabled, run_id=run_id)
    if violations:
        raise violations[0]


def find_violations(
    messages: Sequence[Message],
    provider: str,
    thinking_enabled: bool,
    run_id: str | None = None,
) -> list[TranscriptValidationError]:
    """Every rule ``messages`` break for ``provider``, in message order."""
    if provider not in PROVIDERS:
        raise ConfigurationError(f"unknown provider {provider!r}; expected one of {PROVIDERS}")
    found: list[TranscriptValidationError] = []

    def fail(rule: str, index: int | None, detail: str) -> None:
        found.append(TranscriptValidationError(rule, detail, run_id=run_id, index=index))

    if not messages:
        fail("empty_transcript", None, "there are no messages to send")
        return found
    if messages[0].role != "user":
        fail("first_message_not_user", 0, f"the first message is {messages[0].role!r}")
    thinking_first = thinking_enabled and provider in _THINKING_FIRST
    seen_ids: set[str] = set()
    for i, message in enumerate(messages):
        if i > 0 and message.role == messages[i - 1].role:
            fail("roles_not_alternating", i, f"two {message.role} messages in a row")
        if not message.parts:
            fail("empty_message", i, f"the {message.role} message has no parts")
        for part in message.parts:
            if isinstance(part, ThinkingPart) and not part.complete:
                fail(
                    "incomplete_thinking",
                    i,
                    "a thinking part needs redacted bytes, or text and its signature",
                )
        if message.role == "assistant":
            _check_assistant(message, i, thinking_first, seen_ids, fail)
            _check_results(messages, i, fail)
        else:
            _check_user(message, i, fail)
            previous = messages[i - 1] if i > 0 else None
            if message.tool_results() and (
                previous is None or previous.role != "assistant" or not previous.tool_uses()
            ):
                fail(
                    "orphan_tool_result",
                    i,
                    "tool_result(s) "
                    f"{[r.tool_use_id for r in message.tool_results()]} follow no tool_use",
                )
    return found


def _check_assistant(
    message: Message, i: int, thinking_first: bool, seen_ids: set[str], fail: _Fail
) -> None:
    rank = 0
    for part in message.parts:
        if isinstance(part, ToolResultPart):
            fail("part_not_allowed", i, "an assistant message holds a tool_result")
            continue
        part_rank = _ASSISTANT_RANK[type(part)]
        if part_rank < rank:
            fail(
                "assistant_part_order",
                i,
                f"a {part.kind} part comes after a later kind; "
                "the order is thinking, text, tool_use",
            )
        rank = max(rank, part_rank)
    uses = message.tool_uses()
    if uses and thinking_first and not isinstance(message.parts[0], ThinkingPart):
        fail(
            "thinking_not_first",
            i,
            "with thinking enabled, an assistant message with tool_use must start with "
            f"thinking (it starts with {message.parts[0].kind})",
        )
    for use in uses:
        if not use.id:
            fail("empty_tool_use_id", i, f"a tool_use of {use.name!r} has an empty id")
            continue
        if not use.name:
            fail("empty_tool_name", i, f"tool_use {use.id!r} has an empty name")
        if use.id in seen_ids:
            fail("duplicate_tool_use_id", i, f"tool_use id {use.id!r} is used twice in the run")
        seen_ids.add(use.id)


def _check_user(message: Message, i: int, fail: _Fail) -> None:
    text_seen = False
    for part in message.parts:
        if isinstance(part, ThinkingPart | ToolUsePart):
            fail("part_not_allowed", i, f"a user message holds a {part.kind} part")
        elif isinstance(part, TextPart):
            text_seen = True
        elif text_seen:
            fail("user_part_order", i, "a tool_result comes after text in a user message")


def _check_results(messages: Sequence[Message], i: int, fail: _Fail) -> None:
    """The message after assistant message ``i`` answers exactly its tool_uses."""
    declared = [u.id for u in messages[i].tool_uses() if u.id]
    if not messages[i].tool_uses():
        return
    nxt = messages[i + 1] if i + 1 < len(messages) else None
    results = nxt.tool_results() if nxt is not None and nxt.role == "user" else []
    if not results:
        fail(
            "missing_tool_results",
            i + 1 if nxt is not None else i,
            f"the tool_use(s) {declared} of message {i} get no tool_result in the next message",
        )
        return
    j = i + 1
    ids = [r.tool_use_id for r in results]
    if any(not rid for rid in ids):
        fail("empty_tool_result_id", j, "a tool_result has an empty tool_use_id")
    counts = Counter(rid for rid in ids if rid)
    for rid, n in counts.items():
        if n > 1:
            fail("duplicate_tool_result", j, f"tool_use {rid!r} has {n} results")
    declared_set = set(declared)
    for rid in counts:
        if rid not in declared_set:
            fail(
                "orphan_tool_result",
                j,
                f"tool_result for {rid!r} answers no tool_use of message {i} (declared: {declared})",
            )
    missing = [d for d in declared if d not in counts]
    if missing:
        fail(
            "partial_tool_results",
            j,
            f"tool_use(s) {missing} of message {i} have no tool_result",
        )
