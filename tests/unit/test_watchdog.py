"""The watchdog's verdict on a stalled run: kind and readable message (nothing running)."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

from runwire.contract.codec import default_codec
from runwire.contract.events import ApprovalRequested, Event, RunFailed, RunStarted, UserMessage
from runwire.contract.limits import MAX_ID_CHARS
from runwire.log.inmem import InMemoryLog
from runwire.log.records import SourceRecord
from runwire.log.runs import RunReader, RunScan
from runwire.projections.runs.fold import RunRow
from runwire.projections.runs.reader import RunStore
from runwire.projections.runtime.paging import Page
from runwire.providers.base import ModelResponse, TokenUsage
from runwire.services.orchestrator.answers import answer_events
from runwire.services.orchestrator.run_state import RunState
from runwire.services.orchestrator.watchdog import Watchdog, failure_for
from runwire.services.run_context import RunContext
from runwire.settings import Settings
from runwire.transcript.messages import ToolUsePart

RUN = "run-w"
CTX = RunContext(run_id=RUN, session_id="s")


def _fold(events: list[Event], status: str) -> tuple[RunRow, RunState]:
    row = RunRow.new(events[0], 0, 0)
    row.status = status
    row.updated_at = events[-1].occurred_at
    row.last_offset = len(events) - 1
    state = RunState(RunContext.of(events[0]), 0, max_turns=8)
    for offset, event in enumerate(events):
        state.apply(event, offset)
    return row, state


def _asked() -> list[Event]:
    return [
        Event.create(RunStarted(agent_id="a"), run_id=RUN, session_id="s"),
        Event.create(UserMessage(parts=["hello?"]), run_id=RUN, session_id="s"),
    ]


def test_an_unanswered_delta_is_owner_lost_saying_how_long_and_since_what() -> None:
    events = _asked()
    row, state = _fold(events, "pending")
    stall = failure_for(row, state, events[-1], row.updated_at + timedelta(seconds=930))
    assert stall.error_kind == "owner_lost"
    assert RUN in stall.message
    assert "no event for 930s" in stall.message
    assert f"user_message {events[-1].event_id}" in stall.message
    assert "no orchestrator answered" in stall.message


def test_a_run_with_nothing_to_answer_is_stalled() -> None:
    events = _asked()[:1]  # started, never given a message
    row, state = _fold(events, "pending")
    stall = failure_for(row, state, events[-1], row.updated_at + timedelta(seconds=60))
    assert stall.error_kind == "stalled"
    assert "made no progress while pending" in stall.message


def test_a_tool_wait_names_the_pending_calls() -> None:
    events = _asked()
    tool = ToolUsePart(id="tu-1", name="calculator", input={"expression": "1+1"})
    answer = ModelResponse(
        parts=(tool,), usage=TokenUsage(input_tokens=1, output_tokens=1), provider="p", model="m"
    )
    events += answer_events(CTX, events[-1].event_id, answer)
    row, state = _fold(events, "awaiting_tools")
    row.pending_tool_uses = ["tu-1"]
    stall = failure_for(row, state, events[-1], row.updated_at + timedelta(seconds=5))
    assert stall.error_kind == "awaiting_tools_timeout"
    assert "pending tool calls tu-1" in stall.message


def _awaiting_hostile_calls() -> tuple[RunRow, RunState, Event]:
    """A run awaiting tools whose log a hostile producer filled: 5,000 calls with
    the longest ids and twelve held ones named with 100,000 characters each."""
    events = _asked()
    tool = ToolUsePart(id="tu-1", name="calculator", input={"expression": "1+1"})
    answer = ModelResponse(
        parts=(tool,), usage=TokenUsage(input_tokens=1, output_tokens=1), provider="p", model="m"
    )
    events += answer_events(CTX, events[-1].event_id, answer, lambda name: True)
    events += [
        Event.create(
            ApprovalRequested(tool_use_id=f"held-{i}", tool_name=str(i % 10) * 100_000),
            run_id=RUN,
            session_id="s",
        )
        for i in range(12)
    ]
    row, state = _fold(events, "awaiting_tools")
    row.pending_tool_uses = [f"{i:05d}" + "x" * (MAX_ID_CHARS - 5) for i in range(5000)]
    return row, state, events[-1]


def test_a_failure_names_a_few_calls_and_counts_the_rest_whatever_the_log_holds() -> None:
    # Every call named would make a failure over max_event_bytes: never
    # publishable, it stopped each sweep at this run, and no run after it failed.
    row, state, last = _awaiting_hostile_calls()
    now = row.updated_at + timedelta(seconds=5)
    held = failure_for(row, state, last, now)
    assert held.error_kind == "approval_timeout"
    assert "tu-1 (calculator)" in held.message
    assert "held-0 (0000" in held.message
    assert "and 3 more" in held.message
    state.awaiting_approval.clear()
    waiting = failure_for(row, state, last, now)
    assert waiting.error_kind == "awaiting_tools_timeout"
    assert f"pending tool calls 00000{'x' * 195}, 00001" in waiting.message
    assert "and 4990 more" in waiting.message
    for stall in (held, waiting):
        assert len(stall.message) < 4000
        event = RunContext.of(last).event(
            RunFailed(error_kind=stall.error_kind, message=stall.message, retryable=True),
            producer="runwire-watchdog",
            causation_id=last.event_id,
            index=5,
        )
        assert len(default_codec().encode(event)) < Settings().max_event_bytes


class _Runs:
    """The run-status store as the watchdog lists it: the rows given."""

    def __init__(self, rows: list[RunRow]) -> None:
        self.rows = rows

    async def list(self, *, status: str, page: str | None, limit: int) -> Page[RunRow]:
        return Page([r for r in self.rows if r.status == status], None)


class _Log:
    """The run reader: each run's records, one of them not decodable; counts scans."""

    def __init__(self, runs: dict[str, list[Event]], poisoned: set[str]) -> None:
        self.runs = runs
        self.poisoned = poisoned
        self.scans: list[str] = []

    async def scan(self, run_id: str, partition: int, first: int) -> RunScan:
        self.scans.append(run_id)
        records = [
            SourceRecord("run-events", 0, i, 0, run_id.encode(), b"", (), e)
            for i, e in enumerate(self.runs[run_id])
        ]
        undecodable = [len(records)] if run_id in self.poisoned else []
        return RunScan(records, undecodable, len(records) + 1)


async def test_a_run_left_alone_is_not_read_again_until_its_row_moves() -> None:
    # A run the watchdog cannot judge (a record of it does not decode, or the
    # store dead-lettered its last records) stays a candidate: each sweep read
    # its partition from the run's start to the log's end again, for good.
    poisoned = [Event.create(RunStarted(agent_id="a"), run_id="run-p", session_id="s")]
    stalled = [Event.create(RunStarted(agent_id="a"), run_id="run-s", session_id="s")]
    rows = [_fold(poisoned, "pending")[0], _fold(stalled, "pending")[0]]
    log = _Log({"run-p": poisoned, "run-s": stalled}, poisoned={"run-p"})
    dog = Watchdog(
        Settings(),
        runs=cast(RunStore, _Runs(rows)),
        publisher=InMemoryLog(),
        reader=cast(RunReader, log),
        now=lambda: rows[0].updated_at + timedelta(days=1),
    )
    failed = [await dog.sweep() for _ in range(3)]
    assert [[s.run_id for s in f] for f in failed] == [["run-s"]] * 3
    assert log.scans.count("run-p") == 1
    rows[0].last_offset += 1  # the store applied one more of its events
    await dog.sweep()
    assert log.scans.count("run-p") == 2
