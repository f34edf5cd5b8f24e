"""prepare_model_input: the orchestrator's one call, over an in-memory log."""

from __future__ import annotations

from runwire.context import (
    ContextPolicy,
    ContextWindow,
    PreparedInput,
    SessionRuns,
    assemble_model_input,
    canonical_json,
    prepare_model_input,
    select_history,
)
from runwire.contract.events import Event, UserMessage
from runwire.transcript.messages import Message
from runwire.transcript.validation import validate
from tests.unit.context_support import SESSION, T0_MS, FakeLog, chat_turn, tool_turn, user

RUN = "run-new"
POLICY = ContextPolicy(history_runs=2)


def _log() -> FakeLog:
    log = FakeLog()
    log.add_run("run-0", chat_turn("My name is Alice", "Hi Alice"), T0_MS)
    log.add_run("run-1", tool_turn(1, "toolu_x"), T0_MS + 1)
    log.add_run("run-2", tool_turn(2, "toolu_x"), T0_MS + 2)
    log.publish(RUN, [UserMessage(parts=["What's my name?"])], T0_MS + 3)
    return log


class Loader:
    def __init__(self, log: FakeLog, ids: list[str], cleared_at_ms: int | None = None) -> None:
        self.log, self.ids, self.cleared_at_ms, self.calls = log, ids, cleared_at_ms, 0

    async def __call__(self) -> SessionRuns:
        self.calls += 1
        return SessionRuns([self.log.history(r) for r in self.ids], self.cleared_at_ms)


async def _prepare(
    log: FakeLog,
    messages: list[Message],
    *,
    seeded: Event | None,
    first_call: bool,
    loader: Loader | None,
    cache: dict[str, ContextWindow] | None = None,
) -> PreparedInput:
    return await prepare_model_input(
        messages,
        run_id=RUN,
        seeded=seeded,
        first_call=first_call,
        load_session=loader,
        read_run_events=log.aread,
        policy=POLICY,
        provider="anthropic",
        thinking_enabled=True,
        cache=cache,
    )


def _record(log: FakeLog, prepared: PreparedInput) -> Event:
    assert prepared.seed is not None
    event = Event.create(prepared.seed, run_id=RUN, session_id=SESSION, producer="test")
    log.append(event)
    return event


async def test_the_first_call_selects_and_asks_to_record_then_every_call_reuses_it() -> None:
    log = _log()
    loader = Loader(log, ["run-0", "run-1", "run-2", RUN])
    cache: dict[str, ContextWindow] = {}
    question = [user("What's my name?")]
    first = await _prepare(log, question, seeded=None, first_call=True, loader=loader, cache=cache)
    assert [r.run_id for r in first.window.runs] == ["run-1", "run-2"]
    assert first.seed is not None
    assert first.seed.digest == first.window.digest
    assert list(first.messages) == assemble_model_input(first.window, question)
    seeded = _record(log, first)

    # the session grows; a later call of the run (tool results came) and a
    # restarted orchestrator (no cache) both see the recorded history
    log.add_run("run-3", chat_turn("later", "later"), T0_MS + 4)
    loader.ids.insert(3, "run-3")
    later = [*question, *tool_turn(9, "toolu_x")[1:]]
    reads = log.reads
    cached = await _prepare(log, later, seeded=seeded, first_call=False, loader=loader, cache=cache)
    assert log.reads == reads  # from the cache
    restarted = await _prepare(log, later, seeded=seeded, first_call=False, loader=loader)
    assert log.reads == reads + 2  # rebuilt from the log: one read per recorded run
    assert canonical_json(cached.messages) == canonical_json(restarted.messages)
    validate(cached.messages, "anthropic", thinking_enabled=True)
    assert cached.seed is None
    assert restarted.seed is None
    assert loader.calls == 1
    # a replay of the first call gives the very same bytes
    replay = await _prepare(log, question, seeded=seeded, first_call=True, loader=loader)
    assert canonical_json(replay.messages) == canonical_json(first.messages)


async def test_a_cached_window_that_is_not_the_recorded_one_is_not_used() -> None:
    log = _log()
    loader = Loader(log, ["run-0", "run-1", "run-2"])
    first = await _prepare(log, [user("q")], seeded=None, first_call=True, loader=loader)
    seeded = _record(log, first)
    stale = select_history(
        [log.history("run-0")], ContextPolicy(), provider="anthropic"
    )  # e.g. another instance's seed lost the race
    cache = {RUN: stale}
    again = await _prepare(
        log, [user("q")], seeded=seeded, first_call=False, loader=None, cache=cache
    )
    assert again.window.digest == first.window.digest
    assert cache[RUN].digest == first.window.digest


async def test_no_session_or_a_run_seeded_before_seeding_existed_gets_no_history() -> None:
    log = _log()
    question = [user("What's my name?")]
    alone = await _prepare(log, question, seeded=None, first_call=True, loader=None)
    assert alone.messages == tuple(question)
    assert alone.seed is None
    loader = Loader(log, ["run-0"])
    old = await _prepare(log, question, seeded=None, first_call=False, loader=loader)
    assert old.messages == tuple(question)
    assert old.seed is None
    assert loader.calls == 0


async def test_an_empty_window_is_still_recorded() -> None:
    log = _log()
    loader = Loader(log, ["run-0", "run-1", "run-2"], cleared_at_ms=T0_MS + 10)
    prepared = await _prepare(log, [user("hi")], seeded=None, first_call=True, loader=loader)
    assert prepared.window.is_empty
    assert prepared.seed is not None
    assert prepared.seed.runs == []
