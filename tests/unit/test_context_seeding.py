"""Seeding is recorded: ``context_seeded`` rebuilds the same history from the log."""

from __future__ import annotations

import pytest

from runwire.context import (
    ContextError,
    ContextPolicy,
    HistoryMismatchError,
    assemble_model_input,
    canonical_json,
    model_input_digest,
    rebuild_history,
    rebuild_history_async,
    seeded_runs,
    select_history,
)
from runwire.contract.codec import Codec
from runwire.contract.events import AssistantText, ContextSeeded, Event, EventType, UserMessage
from tests.unit.context_support import (
    SESSION,
    T0_MS,
    FakeLog,
    chat_turn,
    tool_turn,
    user,
)

CURRENT = "run-30"


def _grown_session() -> tuple[FakeLog, list[str]]:
    """30 runs: tool turns with one id reused by every second run, and a
    three-turn run near the end (so windows cut inside a run)."""
    log = FakeLog()
    ids = []
    for i in range(30):
        run_id = f"run-{i:02d}"
        tool_id = "toolu_same" if i % 2 == 0 else f"toolu_{i}"
        messages = tool_turn(i, tool_id)
        if i == 27:
            messages = [
                *chat_turn("My name is Alice", "Hi Alice"),
                *messages,
                *chat_turn("ok", "ok"),
            ]
        log.add_run(f"other-{i}", chat_turn("noise", "noise"), T0_MS + i * 1000)
        log.add_run(run_id, messages, T0_MS + i * 1000 + 1)
        ids.append(run_id)
    return log, ids


def _seed(log: FakeLog, ids: list[str], policy: ContextPolicy) -> tuple[Event, list[bytes]]:
    """Start the current run, select its window, publish ``context_seeded``
    (through the Avro codec, as the orchestrator would) and return the decoded
    event and the model input of the first call."""
    first = user("What's my name?")
    log.publish(CURRENT, [UserMessage(parts=["What's my name?"])], T0_MS + 10**6)
    cause = log.partitions[log.partition_of(CURRENT)][-1]
    window = select_history(
        [log.history(r) for r in ids],
        policy,
        provider="anthropic",
        thinking_enabled=True,
        current_run_id=CURRENT,
    )
    event = Event.create(
        window.seeded_payload(),
        run_id=CURRENT,
        session_id=SESSION,
        producer="runwire-orchestrator",
        causation_id=cause.event_id,
        index=4,
    )
    codec = Codec()
    decoded = codec.decode(codec.encode(event))
    assert decoded == event
    log.append(decoded)
    return decoded, [canonical_json(assemble_model_input(window, [first]))]


def _grow(log: FakeLog, ids: list[str]) -> None:
    """10 more runs, late text in every earlier run (user text, and assistant
    text that merges into run-29's last answer), the current run's answer."""
    for i in range(30, 41):
        if f"run-{i}" == CURRENT:
            continue
        log.add_run(f"run-{i}", tool_turn(i, "toolu_same"), T0_MS + i * 1000)
        ids.append(f"run-{i}")
    log.publish("run-29", [AssistantText(text=" (edited)")], T0_MS + 2 * 10**6)
    for run_id in ids[:30]:
        log.publish(run_id, [UserMessage(parts=["late text"])], T0_MS + 2 * 10**6)
    log.add_run(CURRENT, chat_turn("again", "Alice"), T0_MS + 2 * 10**6)


@pytest.mark.parametrize(
    "policy",
    [
        ContextPolicy(history_runs=5),
        ContextPolicy(history_turns=7),
        ContextPolicy(token_budget=900),
    ],
    ids=["runs", "turns", "tokens"],
)
def test_rebuild_from_recorded_positions_after_ten_more_runs(policy: ContextPolicy) -> None:
    log, ids = _grown_session()
    seeded, [first_input] = _seed(log, ids, policy)
    payload = seeded.payload
    assert isinstance(payload, ContextSeeded)
    recorded = seeded_runs(seeded)
    assert recorded[-1].run_id == "run-29"
    assert payload.message_count > 4
    assert payload.policy == policy.model_dump(mode="json")

    _grow(log, ids)
    fresh = select_history([log.history(r) for r in ids], policy, provider="anthropic")
    assert fresh.digest != payload.digest  # the session grew: a new window would differ

    assert log.history("run-29").messages[3].text() == "29 + 1 = 30. (edited)"

    rebuilt = rebuild_history(seeded, log.read)
    assert rebuilt.digest == payload.digest
    assert rebuilt.messages[-1].text() == "29 + 1 = 30."
    assert rebuilt.runs == recorded
    assert rebuilt.policy == policy
    assert canonical_json(assemble_model_input(rebuilt, [user("What's my name?")])) == first_input
    assert log.reads == len(recorded)  # one read per recorded run, nothing else


def test_the_window_cuts_inside_a_run_and_the_rebuild_follows() -> None:
    log, ids = _grown_session()
    seeded, _ = _seed(log, ids, ContextPolicy(history_turns=3))
    runs = seeded_runs(seeded)
    assert [r.run_id for r in runs] == ["run-27", "run-28", "run-29"]
    assert runs[0].first_message == 6  # run-27's last turn of three only
    _grow(log, ids)
    assert rebuild_history(seeded, log.read).messages[0] == user("ok")


async def test_rebuild_with_an_async_reader() -> None:
    log, ids = _grown_session()
    seeded, [first_input] = _seed(log, ids, ContextPolicy(history_runs=5))
    _grow(log, ids)
    rebuilt = await rebuild_history_async(seeded, log.aread)
    assert canonical_json(assemble_model_input(rebuilt, [user("What's my name?")])) == first_input


def test_a_reader_that_misses_an_event_is_caught() -> None:
    log, ids = _grown_session()
    seeded, _ = _seed(log, ids, ContextPolicy(history_runs=3))

    def lossy(run_id: str, partition: int, first: int, last: int) -> list[Event]:
        events = log.read(run_id, partition, first, last)
        return [e for e in events if e.type is not EventType.ASSISTANT_TEXT]

    with pytest.raises(HistoryMismatchError, match=rf"run {CURRENT}, event {seeded.event_id}"):
        rebuild_history(seeded, lossy)

    def short(run_id: str, partition: int, first: int, last: int) -> list[Event]:
        return log.read(run_id, partition, first, last)[:2]

    with pytest.raises(HistoryMismatchError, match=r"run run-27 at \d+:\d+..\d+ folds into 1"):
        rebuild_history(seeded, short)


def test_a_record_whose_digest_does_not_match_is_refused() -> None:
    log, ids = _grown_session()
    seeded, _ = _seed(log, ids, ContextPolicy(history_runs=2))
    payload = seeded.payload
    assert isinstance(payload, ContextSeeded)
    forged = payload.model_copy(update={"digest": "0" * 64})
    with pytest.raises(HistoryMismatchError, match=r"record says \d+ with 0000"):
        rebuild_history(forged, log.read)


def test_malformed_records_are_named() -> None:
    bad = ContextSeeded(
        runs=[{"run_id": "r", "partition": -1}], message_count=0, digest="", provider="x"
    )
    with pytest.raises(ContextError, match=r"context_seeded: runs is not a list of seeded runs"):
        seeded_runs(bad)
    other = Event.create(UserMessage(parts=["hi"]), run_id="r1")
    with pytest.raises(ContextError, match=r"is a user_message event, not context_seeded"):
        rebuild_history(other, FakeLog().read)


def test_an_empty_window_is_recorded_and_rebuilt_empty() -> None:
    window = select_history([], ContextPolicy(), provider="openai")
    payload = window.seeded_payload()
    assert payload.runs == []
    assert payload.digest == model_input_digest([])
    rebuilt = rebuild_history(payload, FakeLog().read)
    assert rebuilt.is_empty
    assert rebuilt.digest == payload.digest
