"""What a live reader shows of a run: its canonical events and the answer being streamed.

Contract (:class:`LiveView`, a pure fold over what a reader receives):
- ``canonical(event)`` takes a run event in log order; ``live(event)`` takes
  a live event (``live_chunk``, ``live_tool_*``) in the order the live topic
  gave it and says whether to show it.
- An answer in progress is keyed by its cause (the delta being answered, or
  for tool events the tool_use event). A canonical event that answers that
  cause (an assistant part, usage, a closing, a failure; the tool_result for
  a tool call) settles it: its live state is dropped and later live events
  for it are not shown. A terminal event settles everything.
- A chunk under a new ``stream_id`` for the cause starts that answer over (a
  retried call streams again); a repeated ``seq`` is not shown again; a skipped
  ``seq`` marks the answer ``gapped`` (pieces were lost: the text shown is
  incomplete until the canonical message replaces it).
- ``pending`` holds the answers being streamed; ``text(cause)`` their visible
  text so far. Once a run has ended, ``pending`` is empty and what is shown is
  exactly the canonical events, however many live events were lost or late.
- Bounded whatever the live topic holds (any producer may write to it): at
  most :data:`MAX_PENDING` answers (the oldest dropped), :data:`MAX_SETTLED`
  settled causes remembered (the oldest forgotten: a live event that late is
  shown as a new answer until the run's next settling or end), and per answer
  :data:`MAX_BLOCKS` blocks and :data:`MAX_ANSWER_CHARS` characters: what
  goes past them is not kept and the answer is marked ``gapped``. A chunk
  costs its own length (a block's pieces are joined when its text is asked for).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from runwire.contract.events import (
    TERMINAL_EVENTS,
    Event,
    EventType,
    LiveChunk,
    RunStatus,
    RunStatusChanged,
)

__all__ = [
    "MAX_ANSWER_CHARS",
    "MAX_BLOCKS",
    "MAX_PENDING",
    "MAX_SETTLED",
    "LiveAnswer",
    "LiveView",
]

MAX_PENDING = 256
"""Answers streamed at once that a view keeps (a turn streams one, or one per tool call)."""
MAX_SETTLED = 4096
"""Settled causes a view remembers, so that their late live events are not shown."""
MAX_BLOCKS = 64
"""Blocks of one answer a view keeps (thinking, text and tool blocks of one model call)."""
MAX_ANSWER_CHARS = 1_000_000
"""Characters of one answer a view keeps: a canonical event holds less
(``Settings.max_event_bytes``), so a real answer is never cut."""

_ANSWERING = frozenset(
    {
        EventType.THINKING,
        EventType.ASSISTANT_TEXT,
        EventType.TOOL_USE,
        EventType.USAGE,
        EventType.TOOL_RESULT,
        *TERMINAL_EVENTS,
    }
)


@dataclass
class LiveAnswer:
    """The streamed blocks of one answer in progress: block index -> (kind, its pieces)."""

    cause_id: str
    stream_id: str
    next_seq: int = 0
    gapped: bool = False
    blocks: dict[int, tuple[str, list[str]]] = field(default_factory=dict)
    chars: int = 0
    """Characters kept in all blocks."""

    def add(self, chunk: LiveChunk) -> None:
        if chunk.seq > self.next_seq:
            self.gapped = True
        self.next_seq = chunk.seq + 1
        for delta in chunk.deltas if isinstance(chunk.deltas, list) else ():
            if not isinstance(delta, dict):
                continue
            index, kind, text = delta.get("index"), delta.get("kind"), delta.get("text")
            if not isinstance(index, int) or not isinstance(kind, str) or not isinstance(text, str):
                continue
            block = self.blocks.get(index)
            if block is None:
                if len(self.blocks) >= MAX_BLOCKS:
                    self.gapped = True
                    continue
                block = self.blocks[index] = (kind, [])
            if self.chars + len(text) > MAX_ANSWER_CHARS:
                self.gapped = True
                continue
            block[1].append(text)
            self.chars += len(text)

    def text(self, kind: str = "text") -> str:
        return "".join(
            piece for _, (k, pieces) in sorted(self.blocks.items()) if k == kind for piece in pieces
        )


class LiveView:
    """See the module contract."""

    def __init__(self) -> None:
        # Oldest first. Not dicts: deleting a dict's first key leaves a hole
        # that every later next(iter(...)) walks over.
        self.settled: OrderedDict[str, None] = OrderedDict()
        """Settled causes (an ordered set)."""
        self.pending: OrderedDict[str, LiveAnswer] = OrderedDict()
        self.ended = False

    def canonical(self, event: Event) -> None:
        if event.type in TERMINAL_EVENTS:
            self.ended = True
            self.pending.clear()
        cause = event.causation_id
        if cause is None or (event.type not in _ANSWERING and not _closing(event)):
            return
        settled = self.settled
        if cause not in settled:
            settled[cause] = None
            if len(settled) > MAX_SETTLED:
                settled.popitem(last=False)
        self.pending.pop(cause, None)

    def live(self, event: Event) -> bool:
        """Whether to show ``event`` (a live event); folds it in."""
        cause = event.causation_id
        if self.ended or cause is None or cause in self.settled:
            return False
        payload = event.payload
        if not isinstance(payload, LiveChunk):
            return True
        pending = self.pending
        answer = pending.get(cause)
        if answer is None or answer.stream_id != payload.stream_id:
            pending.pop(cause, None)  # a new stream: the newest answer
            answer = pending[cause] = LiveAnswer(cause, payload.stream_id)
            if len(pending) > MAX_PENDING:
                pending.popitem(last=False)
        elif payload.seq < answer.next_seq:
            return False  # a repeat
        answer.add(payload)
        return True

    def text(self, cause_id: str) -> str:
        answer = self.pending.get(cause_id)
        return "" if answer is None else answer.text()


def _closing(event: Event) -> bool:
    payload = event.payload
    return isinstance(payload, RunStatusChanged) and payload.status is RunStatus.AWAITING_TOOLS
