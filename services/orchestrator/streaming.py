"""Live chunks: a model call's streamed deltas, published on the live topic.

Contract:
- :func:`streamed_call` makes one attempt at a model call with ``on_chunk``
  and publishes what streams as ``live_chunk`` events caused by the delta
  being answered, under a ``stream_id`` of its own: a retried attempt (or
  another orchestrator after a crash) streams under a new id, and readers
  start that answer over.
- Batching adapts to the rate: a delta goes out at once when no record of
  the stream is in flight; deltas that arrive meanwhile go out together in
  the next record when it returns (consecutive pieces of one block merged),
  at most ``max_chars`` characters per record. A slow model gets one record
  per token, with the latency of one send; a fast one gets one record per
  round trip, however many tokens it held.
- Best effort and never in the way: a live record that cannot be written is
  dropped (the run goes on), and the answer is published from the model's
  final response whatever streamed. Nothing here is ever part of the run's
  canonical events; a call that breaks mid-stream is retried or fails the
  run like any failed call, so no half answer reaches the run-events topic.
"""

from __future__ import annotations

from typing import Any, Protocol

from runwire.contract import ids
from runwire.contract.events import Event, LiveChunk
from runwire.log import EventWriter
from runwire.log.live import LiveEmitter
from runwire.providers.base import ChunkHandler, ModelRequest, ModelResponse, StreamDelta
from runwire.services.run_context import RunContext

__all__ = ["DEFAULT_MAX_CHARS", "ChunkStream", "streamed_call"]

DEFAULT_MAX_CHARS = 4096
"""Characters of deltas per live record at most (a record stays far below any size limit)."""


class _Completes(Protocol):
    async def complete(
        self, request: ModelRequest, *, on_chunk: ChunkHandler | None = None
    ) -> ModelResponse: ...


class _Pending:
    """The deltas not sent yet and how they become records.

    Apart from :class:`ChunkStream` so that the emitter's ``refill`` holds
    this and not the stream: stream -> emitter -> stream would be a
    reference cycle that only the garbage collector frees, once per model
    call, with the finished send task, its context and the call's span.
    """

    def __init__(self, context: RunContext, cause_id: str, producer: str, max_chars: int) -> None:
        self.context = context
        self.cause_id = cause_id
        self.producer = producer
        self.max_chars = max(1, max_chars)
        self.stream_id = ids.new_event_id()
        self.seq = 0
        self.items: list[dict[str, Any]] = []

    def take(self) -> Event | None:
        """The next record: what is pending, up to ``max_chars`` characters."""
        if not self.items:
            return None
        taken: list[dict[str, Any]] = []
        room = self.max_chars
        while self.items and room > 0:
            item = self.items[0]
            if len(item["text"]) <= room:
                taken.append(self.items.pop(0))
                room -= len(item["text"]) or 1
            else:  # cut a long piece: the rest opens the next record
                taken.append({**item, "text": item["text"][:room]})
                item["text"] = item["text"][room:]
                room = 0
        payload = LiveChunk(stream_id=self.stream_id, seq=self.seq, deltas=taken)
        self.seq += 1
        context = self.context
        return Event.create(
            payload,
            run_id=context.run_id,
            session_id=context.session_id,
            agent_id=context.agent_id,
            turn_id=context.turn_id,
            user_id=context.user_id,
            tenant=context.tenant,
            labels=dict(context.labels),
            producer=self.producer,
            causation_id=self.cause_id,
        )


class ChunkStream:
    """One model call attempt's deltas, as ``live_chunk`` events (see the module contract)."""

    def __init__(
        self,
        writer: EventWriter,
        context: RunContext,
        cause_id: str,
        *,
        producer: str,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        self._pending = _Pending(context, cause_id, producer, max_chars)
        self.stream_id = self._pending.stream_id
        self._emitter = LiveEmitter(writer, refill=self._pending.take)
        self.deltas = 0

    @property
    def records(self) -> int:
        """Live records written so far."""
        return self._emitter.sent

    async def on_chunk(self, delta: StreamDelta) -> None:
        """The provider's chunk handler: queue the delta, send if nothing is in flight."""
        if not delta.text and delta.kind != "tool_input":
            return  # nothing to show
        self.deltas += 1
        pending = self._pending.items
        last = pending[-1] if pending else None
        if last is not None and last["kind"] == delta.kind and last["index"] == delta.index:
            last["text"] += delta.text
        else:
            item: dict[str, Any] = {"kind": delta.kind, "index": delta.index, "text": delta.text}
            if delta.tool_use_id is not None:
                item["tool_use_id"] = delta.tool_use_id
            if delta.tool_name is not None:
                item["tool_name"] = delta.tool_name
            pending.append(item)
        if not self._emitter.busy:
            event = self._pending.take()
            if event is not None:
                self._emitter.emit(event)

    async def flush(self) -> None:
        """Wait until every delta queued so far was sent (or dropped)."""
        await self._emitter.flush()


async def streamed_call(
    provider: _Completes,
    request: ModelRequest,
    writer: EventWriter | None,
    context: RunContext,
    cause_id: str,
    *,
    producer: str,
) -> ModelResponse:
    """One attempt at the model call, its deltas published live (``writer`` None: not)."""
    if writer is None:
        return await provider.complete(request)
    stream = ChunkStream(writer, context, cause_id, producer=producer)
    return await provider.complete(request, on_chunk=stream.on_chunk)
