"""Hypothesis strategies for canonical transcripts (shared by the ledger,
validation and encoder tests)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from runwire.contract.events import Event
from runwire.transcript.ledger import payloads_for_messages
from runwire.transcript.messages import (
    Message,
    Part,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
)

# Surrogates have no UTF-8 form, so no store could keep them.
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
nonempty_texts = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=20)

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)
json_objects = st.dictionaries(texts, json_values, max_size=3)

signed_thinking = st.builds(
    lambda text, sig: ThinkingPart(text=text, signature=sig), texts, nonempty_texts
)
redacted_thinking = st.builds(
    lambda data: ThinkingPart(redacted=data), st.binary(min_size=1, max_size=24)
)
thinking_parts = signed_thinking | redacted_thinking


@st.composite
def transcripts(draw: st.DrawFn, *, thinking: bool = False, max_turns: int = 4) -> list[Message]:
    """A valid canonical transcript: user first, alternating, every tool_use
    answered in the next message in declaration order, results before text.

    With ``thinking`` every assistant message that uses tools starts with
    thinking (what Anthropic and Bedrock need when thinking is on).
    """
    messages: list[Message] = []
    pending: list[ToolUsePart] = []
    next_id = draw(st.integers(0, 1000))
    turns = draw(st.integers(1, max_turns))
    for turn in range(turns):
        # user message: results for the pending tool_uses, then text
        results: list[Part] = [
            ToolResultPart(
                tool_use_id=use.id, content=draw(json_values), is_error=draw(st.booleans())
            )
            for use in pending
        ]
        user_texts = draw(st.lists(nonempty_texts, min_size=0 if results else 1, max_size=2))
        messages.append(
            Message(role="user", parts=(*results, *(TextPart(text=t) for t in user_texts)))
        )
        # assistant message: thinking, text, tool_use
        uses: list[ToolUsePart] = []
        for _ in range(draw(st.integers(0, 3))):
            uses.append(
                ToolUsePart(
                    id=f"tu_{next_id}",
                    name=draw(st.sampled_from(["search", "calc", "svc.lookup"])),
                    input=draw(json_objects),
                )
            )
            next_id += 1
        min_thinking = 1 if thinking and uses else 0
        parts: list[Part] = list(draw(st.lists(thinking_parts, min_size=min_thinking, max_size=2)))
        text = draw(st.one_of(st.none(), nonempty_texts))
        if text is not None:
            parts.append(TextPart(text=text))
        parts.extend(uses)
        if not parts:
            parts.append(TextPart(text=f"answer {turn}"))
        messages.append(Message(role="assistant", parts=tuple(parts)))
        pending = uses
    if pending:
        messages.append(
            Message(
                role="user",
                parts=tuple(ToolResultPart(tool_use_id=u.id, content="done") for u in pending),
            )
        )
    return messages


def events_for(messages: list[Message], run_id: str = "run-1") -> list[Event]:
    """The run events that carry ``messages`` (fresh event ids)."""
    return [
        Event.create(p, run_id=run_id, producer="test") for p in payloads_for_messages(messages)
    ]
