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
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runwire.contract.events import (
    TERMINAL_EVENTS,
    Event,
    EventType,
    LiveChunk,
    RunStatus,
    RunStatusChanged,
)

__all__ = ["LiveAnswer", "LiveView"]

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
    """The streamed blocks of one answer in progress: block index -> (kind, text)."""

    cause_id: str
    stream_id: str
    next_seq: int = 0
    gapped: bool = False
    blocks: dict[int, tuple[str, str]] = field(default_factory=dict)

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
            _, before = self.blocks.get(index, (kind, ""))
            self.blocks[index] = (kind, before + text)

    def text(self, kind: str = "text") -> str:
        return "".join(t for i, (k, t) in sorted(self.blocks.items()) if k == kind)


class LiveView:
    """See the module contract."""

    def __init__(self) -> None:
        self.settled: set[str] = set()
        self.pending: dict[str, LiveAnswer] = {}
        self.ended = False

    def canonical(self, event: Event) -> None:
        if event.type in TERMINAL_EVENTS:
            self.ended = True
            self.pending.clear()
        cause = event.causation_id
        if cause is None or (event.type not in _ANSWERING and not _closing(event)):
            return
        self.settled.add(cause)
        self.pending.pop(cause, None)

    def live(self, event: Event) -> bool:
        """Whether to show ``event`` (a live event); folds it in."""
        cause = event.causation_id
        if self.ended or cause is None or cause in self.settled:
            return False
        payload = event.payload
        if not isinstance(payload, LiveChunk):
            return True
        answer = self.pending.get(cause)
        if answer is None or answer.stream_id != payload.stream_id:
            answer = self.pending[cause] = LiveAnswer(cause, payload.stream_id)
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
