"""Where messages go (planning), what add_message accepts (content), durations, memory fold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runwire.contract.events import (
    Event,
    MemoryDeleted,
    MemorySet,
    RunStarted,
    RunStatusChanged,
    SessionDeleted,
    UserErased,
)
from runwire.contract.routing import memory_key
from runwire.errors import DecodeError
from runwire.log.envelope import check_envelope
from runwire.log.records import SourceRecord
from runwire.memory.checks import Caller, InputError
from runwire.projections.memory.fold import PLACEHOLDER, TombstoneDecoder, fold_memory, resolve
from runwire.sessions.admin import parse_duration
from runwire.sessions.content import to_message
from runwire.sessions.planning import RunTail, ledger_state, millis, plan_messages
from runwire.transcript.errors import LedgerError
from runwire.transcript.ledger import Ledger, TranscriptBuilder
from runwire.transcript.messages import Message, TextPart, ToolResultPart, ToolUsePart
from tests.support.transcript_strategies import events_for, transcripts

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def user(text: str) -> Message:
    return Message(role="user", parts=(TextPart(text=text),))


def assistant(*parts: Any) -> Message:
    return Message(role="assistant", parts=tuple(parts))


def plan(tail: RunTail | None, *messages: Message, cleared_ms: int | None = None) -> Any:
    return plan_messages(
        session_id="s",
        caller=Caller("alice"),
        tail=tail,
        cleared_ms=cleared_ms,
        messages=list(messages),
        fields=[f"messages[{i}]" for i in range(len(messages))],
        now=NOW,
    )


@settings(max_examples=60, deadline=None)
@given(transcripts(), st.sampled_from(["text", "user", "tool_use"]))
def test_ledger_state_rebuilds_the_ledger(messages: list[Message], next_step: str) -> None:
    """The state rebuilt from built messages builds the same messages and takes (or
    refuses) the next append exactly as the ledger that built them."""
    builder = TranscriptBuilder("run-1")
    builder.apply_all(events_for(messages))
    built = builder.messages()
    original = Ledger(builder.state.ledger)
    rebuilt = Ledger(ledger_state(built))
    assert rebuilt.build_messages() == built
    assert rebuilt.awaiting_tool_results == original.awaiting_tool_results

    def step(ledger: Ledger) -> list[Message] | str:
        try:
            if next_step == "text":
                ledger.append_text("more")
            elif next_step == "user":
                ledger.append_user_text("next")
            else:
                ledger.declare_tool_use("fresh-id", "tool")
        except LedgerError as e:
            return e.rule
        return ledger.build_messages()

    assert step(rebuilt) == step(original)


def test_a_turn_opens_a_recorded_run_paused() -> None:
    p = plan(None, user("hi"))
    assert p.new_run
    first, second, third = p.events
    assert isinstance(first.payload, RunStarted)
    assert first.payload.labels == {"runwire.source": "session"}
    assert isinstance(second.payload, RunStatusChanged)
    assert second.payload.status == "paused"
    assert third.type.value == "user_message"
    assert {e.run_id for e in p.events} == {p.run_id}
    assert all(e.session_id == "s" and e.user_id == "alice" for e in p.events)


def test_which_run_a_message_joins() -> None:
    open_user = RunTail("r1", 1000, [user("q")], recorded=True)
    answered = RunTail("r1", 1000, [user("q"), assistant(TextPart(text="a"))], recorded=True)
    foreign = RunTail("r9", 1000, [user("q")], recorded=False)
    waiting = RunTail(
        "r9", 1000, [user("q"), assistant(ToolUsePart(id="t", name="x"))], recorded=False
    )
    result = Message(role="user", parts=(ToolResultPart(tool_use_id="t"),))
    assert plan(open_user, user("more")).run_id == "r1", "user text joins open user text"
    assert plan(answered, user("next")).new_run, "a new turn, a new run"
    assert plan(answered, assistant(TextPart(text="+"))).run_id == "r1"
    assert plan(foreign, user("more")).new_run, "never into someone else's run"
    assert plan(foreign, assistant(TextPart(text="x"))).new_run
    assert plan(waiting, result).run_id == "r9", "results answer their tool calls"
    assert plan(answered, user("next"), cleared_ms=1000).new_run
    assert plan(answered, assistant(TextPart(text="+")), cleared_ms=1000).new_run


def test_a_new_run_sorts_after_the_clear_and_the_last_run() -> None:
    late = millis(NOW) + 60_000
    p = plan(RunTail("r1", late, [user("q")], recorded=False), user("next"), cleared_ms=late + 5)
    assert p.at_ms > late + 5
    assert all(millis(e.occurred_at) > late + 5 for e in p.events)


def test_refused_by_the_ledger_names_the_message() -> None:
    tail = RunTail("r1", 0, [user("q"), assistant(ToolUsePart(id="t", name="x"))], recorded=True)
    with pytest.raises(InputError) as e:
        plan(tail, assistant(TextPart(text="too early")))
    assert e.value.field == "messages[0]"
    assert "text_after_tool_use" in e.value.reason
    with pytest.raises(InputError) as e:
        plan(None)
    assert e.value.field == "messages"


def test_content_forms() -> None:
    assert to_message("user", "hi").message == user("hi")
    assert to_message("system", ["a", "b"]).system == "a\n\nb"
    tool = to_message("tool", [{"tool_use_id": "t", "content": [1], "is_error": True}]).message
    assert tool is not None
    assert tool.parts == (ToolResultPart(tool_use_id="t", content=[1], is_error=True),)
    with pytest.raises(InputError) as e:
        to_message("system", [ToolResultPart(tool_use_id="x")])
    assert e.value.field == "content"
    with pytest.raises(InputError) as e:
        to_message("user", b"bytes")
    assert e.value.field == "content"


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_durations(text: str, span: timedelta) -> None:
    assert parse_duration(text) == span


@pytest.mark.parametrize("text", ["", "30", "d", "3 days", "1d-2h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InputError) as e:
        parse_duration(text, "--idle")
    assert e.value.field == "--idle"


# -- the memory fold (pure) ------------------------------------------------------------------

MEMORY, SESSIONS = "memory-topic", "session-topic"


def record(event: Event, offset: int, *, tombstone: bool = False) -> SourceRecord:
    p = event.payload
    if isinstance(p, MemorySet | MemoryDeleted):
        topic, key = MEMORY, memory_key(p.scope, p.owner, p.key)
    elif isinstance(p, UserErased):
        topic, key = MEMORY, memory_key("user", p.owner, "")
    else:
        topic, key = SESSIONS, (event.session_id or "").encode()
    headers: tuple[tuple[str, bytes], ...] = ()
    if tombstone:
        millis_ = str(millis(event.occurred_at)).encode()
        headers = (
            ("runwire-type", b"memory_deleted"),
            ("runwire-event-id", event.event_id.encode()),
            ("runwire-occurred-at", millis_),
            ("runwire-producer", event.producer.encode()),
        )
    value = b"" if tombstone else b"v"
    shown = TombstoneDecoder().decode(b"") if tombstone else event
    return SourceRecord(topic, 0, offset, 0, key, value, headers, shown)


def fold(*records: SourceRecord, tombstoned: set[str] | None = None) -> Any:
    resolved = [(r, resolve(r)) for r in records]
    return fold_memory(resolved, session_topic=SESSIONS, tombstoned=tombstoned or set(), seen={})


def test_memory_last_write_wins_and_tombstones_delete() -> None:
    a = Event.create(MemorySet(scope="user", owner="u", key="k", value=1), user_id="u")
    b = Event.create(MemorySet(scope="user", owner="u", key="k", value=2))
    gone = Event.create(MemoryDeleted(scope="user", owner="u", key="j"))
    out = fold(record(a, 0), record(b, 1), record(gone, 2, tombstone=True))
    entry = out.entries[("user", "u", "k")]
    assert entry is not None
    assert entry.value == 2
    assert out.entries[("user", "u", "j")] is None
    remembered = {event_id for event_id, _ in out.remembered}
    assert gone.event_id in remembered, "the tombstone's real id, from its headers"
    assert PLACEHOLDER.event_id not in remembered


def test_a_deleted_session_takes_its_memory_in_any_order() -> None:
    sid = "s-1"
    write = Event.create(MemorySet(scope="session", owner=sid, key="k", value=1))
    deleted = Event.create(SessionDeleted(), session_id=sid)
    for records in ([record(write, 0), record(deleted, 0)], [record(deleted, 0), record(write, 0)]):
        out = fold(*records)
        assert ("session", sid, "k") not in out.entries
        assert sid in out.deleted_sessions
    later = fold(record(write, 5), tombstoned={sid})
    assert later.entries == {}


def test_an_erased_user_takes_its_user_memory_and_no_one_elses() -> None:
    before = Event.create(MemorySet(scope="user", owner="t::u", key="k", value=1))
    other = Event.create(MemorySet(scope="user", owner="t::v", key="k", value=2))
    agent = Event.create(MemorySet(scope="agent", owner="t::u", key="k", value=3))
    erased = Event.create(UserErased(user_id="u", owner="t::u", key_ids=[], session_ids=[]))
    out = fold(record(before, 0), record(other, 1), record(agent, 2), record(erased, 3))
    assert out.erased_users == {"t::u"}
    assert set(out.entries) == {("user", "t::v", "k"), ("agent", "t::u", "k")}
    assert out.rejected == []
    assert erased.event_id in {event_id for event_id, _ in out.remembered}
    moved = SourceRecord(MEMORY, 0, 9, 0, b'["user","t::v",""]', b"v", (), erased)
    with pytest.raises(DecodeError) as refused:  # before any fold: the envelope check
        check_envelope(moved, erased, [0])
    assert refused.value.reason == "key_mismatch"


def test_memory_records_that_do_not_fit_are_rejected() -> None:
    wrong = Event.create(MemorySet(scope="user", owner="u", key="k", value=1))
    moved = SourceRecord(MEMORY, 0, 0, 0, b'["user","v","k"]', b"v", (), wrong)
    with pytest.raises(DecodeError) as refused:  # before any fold: the envelope check
        check_envelope(moved, wrong, [0])
    assert refused.value.reason == "key_mismatch"
    # A tombstone's event is read from its key: an address escaped otherwise is
    # another stream of the same entry, refused when resolved.
    gone = Event.create(MemoryDeleted(scope="user", owner="ü", key="k"))
    escaped = record(gone, 1, tombstone=True)._replace(key=b'["user","\\u00fc","k"]')
    with pytest.raises(DecodeError) as respelled:
        resolve(escaped)
    assert respelled.value.reason == "key_mismatch"
