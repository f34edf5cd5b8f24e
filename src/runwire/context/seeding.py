"""Recording a window in the run's log, and rebuilding it exactly from there.

Contract:
- :meth:`ContextWindow.seeded_payload` gives the ``context_seeded`` payload a
  run publishes before its first model call: each run used with its log
  range and the slice of its messages taken, the policy, the provider, the
  message and token counts and the digest of the history.
- :func:`rebuild_history` reads each recorded run's events at exactly the
  recorded offsets (nothing a run or its session got later), folds them as
  the transcript projector does
  (:func:`~runwire.context.history.fold_run_events`), takes the recorded
  slices, makes tool_use ids unique as the window did, and checks message
  count and digest: the result equals the window that was recorded,
  byte for byte, or :class:`HistoryMismatchError` names what differs.
  :func:`rebuild_history_async` is the same with an async reader (e.g. over
  ``RunReader.read``).
- A reader is ``read(run_id, partition, first_offset, last_offset)`` returning
  the run's events with ``first_offset <= offset <= last_offset`` in log
  order; events of other runs among them are skipped.
- :func:`seeded_runs` parses the payload's ``runs``; a malformed one is a
  :class:`~runwire.context.errors.ContextError` naming the event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from pydantic import TypeAdapter, ValidationError

from runwire.context.digest import model_input_digest
from runwire.context.errors import ContextError, HistoryMismatchError
from runwire.context.history import fold_run_events
from runwire.context.policy import ContextPolicy
from runwire.context.tool_ids import unique_tool_ids
from runwire.context.window import ContextWindow, SeededRun
from runwire.contract.events import ContextSeeded, Event
from runwire.transcript.messages import Message

__all__ = [
    "AsyncRunEventReader",
    "RunEventReader",
    "rebuild_history",
    "rebuild_history_async",
    "seeded_runs",
]

RunEventReader = Callable[[str, int, int, int], Iterable[Event]]
"""``read(run_id, partition, first_offset, last_offset)`` -> the run's events in that range."""

AsyncRunEventReader = Callable[[str, int, int, int], Awaitable[Iterable[Event]]]

_RUNS = TypeAdapter(tuple[SeededRun, ...])


def _unpack(seeded: ContextSeeded | Event) -> tuple[ContextSeeded, str]:
    if isinstance(seeded, Event):
        if not isinstance(seeded.payload, ContextSeeded):
            raise ContextError(
                f"event {seeded.event_id} is a {seeded.type.value} event, not context_seeded"
            )
        return seeded.payload, f"run {seeded.run_id}, event {seeded.event_id}"
    return seeded, "context_seeded"


def seeded_runs(seeded: ContextSeeded | Event) -> tuple[SeededRun, ...]:
    """The runs recorded in a ``context_seeded`` payload (or event), oldest first."""
    payload, where = _unpack(seeded)
    try:
        return _RUNS.validate_python(payload.runs)
    except ValidationError as e:
        raise ContextError(f"{where}: runs is not a list of seeded runs: {e}") from e


def _rebuild(
    payload: ContextSeeded,
    where: str,
    runs: Sequence[SeededRun],
    folded: Mapping[SeededRun, Sequence[Message]],
    prefix: Sequence[Message] = (),
) -> ContextWindow:
    slices: list[tuple[str, list[Message]]] = []
    for run in runs:
        messages = folded[run]
        end = run.first_message + run.message_count
        if len(messages) < end:
            raise HistoryMismatchError(
                f"{where}: run {run.run_id} at {run.partition}:{run.first_offset}.."
                f"{run.last_offset} folds into {len(messages)} messages; the record took "
                f"messages {run.first_message}..{end - 1}"
            )
        slices.append((run.run_id, list(messages[run.first_message : end])))
    rebuilt = (*prefix, *(m for messages in unique_tool_ids(slices) for m in messages))
    digest = model_input_digest(rebuilt)
    if len(rebuilt) != payload.message_count or digest != payload.digest:
        raise HistoryMismatchError(
            f"{where}: the recorded runs rebuild {len(rebuilt)} messages with digest "
            f"{digest}, the record says {payload.message_count} with {payload.digest}"
        )
    return ContextWindow(
        messages=rebuilt,
        runs=tuple(runs),
        policy=ContextPolicy.from_record(payload.policy),
        provider=payload.provider,
        token_count=payload.token_count,
    )


def rebuild_history(
    seeded: ContextSeeded | Event, read_run_events: RunEventReader
) -> ContextWindow:
    """The recorded window, rebuilt from the log and checked; see the module contract."""
    payload, where = _unpack(seeded)
    runs = seeded_runs(seeded)
    folded = {
        run: fold_run_events(
            run.run_id,
            read_run_events(run.run_id, run.partition, run.first_offset, run.last_offset),
        )
        for run in runs
    }
    return _rebuild(payload, where, runs, folded)


async def rebuild_history_async(
    seeded: ContextSeeded | Event,
    read_run_events: AsyncRunEventReader,
    *,
    prefix: Sequence[Message] = (),
) -> ContextWindow:
    """:func:`rebuild_history` with an async reader; ``prefix`` (a recorded compaction's
    summary pair) comes before the recorded runs and is covered by the digest."""
    payload, where = _unpack(seeded)
    runs = seeded_runs(seeded)
    folded: dict[SeededRun, Sequence[Message]] = {}
    for run in runs:
        events = await read_run_events(run.run_id, run.partition, run.first_offset, run.last_offset)
        folded[run] = fold_run_events(run.run_id, events)
    return _rebuild(payload, where, runs, folded, prefix)
