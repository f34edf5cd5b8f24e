"""The ledger fed by hand: one test per behaviour of its contract."""

from __future__ import annotations

import pytest

from runwire.errors import ContractError
from runwire.transcript.errors import LedgerError
from runwire.transcript.ledger import Ledger, LedgerState
from runwire.transcript.messages import (
    Message,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
)


def result(tool_use_id: str, content: object = "ok", *, is_error: bool = False) -> ToolResultPart:
    return ToolResultPart(tool_use_id=tool_use_id, content=content, is_error=is_error)


def two_tool_turn() -> Ledger:
    ledger = Ledger()
    ledger.append_user_text("find pumps")
    ledger.append_thinking("plan", "sig-1")
    ledger.append_text("calling tools")
    ledger.declare_tool_use("tu1", "search", {"q": "pump"})
    ledger.declare_tool_use("tu2", "lookup", {"id": 7})
    return ledger


def test_thinking_opens_the_assistant_message_and_is_never_moved_there() -> None:
    ledger = Ledger()
    ledger.append_thinking("first", "s1")
    ledger.append_thinking(redacted=b"\x00opaque")
    ledger.append_text("visible")
    ledger.declare_tool_use("tu1", "search", {})
    before = ledger.build_messages()
    for late in ({"text": "late", "signature": "s2"}, {"redacted": b"late"}):
        with pytest.raises(LedgerError) as refused:
            ledger.append_thinking(**late)
        assert refused.value.rule == "thinking_after_content"
    assert ledger.build_messages() == before  # a refused append changes nothing
    [message] = before
    assert message.parts == (
        ThinkingPart(text="first", signature="s1"),
        ThinkingPart(redacted=b"\x00opaque"),
        TextPart(text="visible"),
        ToolUsePart(id="tu1", name="search", input={}),
    )


def test_thinking_after_text_is_refused_too() -> None:
    ledger = Ledger()
    ledger.append_user_text("hi")
    ledger.append_text("visible")
    with pytest.raises(LedgerError, match="thinking_after_content"):
        ledger.append_thinking("after", "s")


def test_empty_text_is_ignored_and_consecutive_text_is_merged() -> None:
    ledger = Ledger()
    ledger.append_text("")
    assert ledger.is_empty
    ledger.append_text("Hel")
    ledger.append_text("")
    ledger.append_text("lo")
    [message] = ledger.build_messages()
    assert message.parts == (TextPart(text="Hello"),)


def test_empty_user_text_is_ignored() -> None:
    ledger = Ledger()
    ledger.append_user_text("", "")
    assert ledger.build_messages() == []


def test_flush_with_nothing_open_is_safe() -> None:
    ledger = Ledger()
    ledger.flush_assistant()
    ledger.flush_assistant()
    assert ledger.build_messages() == []
    ledger.append_user_text("hi")
    ledger.append_text("hello")
    ledger.flush_assistant()
    ledger.flush_assistant()
    assert [m.role for m in ledger.build_messages()] == ["user", "assistant"]


def test_several_tool_uses_get_one_user_message_with_results_in_declaration_order() -> None:
    ledger = two_tool_turn()
    ledger.flush_assistant()
    # results arrive in the other order, in two batches
    ledger.append_user_tool_results([result("tu2", {"found": 1})])
    ledger.append_user_tool_results([result("tu1", "boom", is_error=True)])
    messages = ledger.build_messages()
    assert [m.role for m in messages] == ["user", "assistant", "user"]
    assert messages[2].parts == (result("tu1", "boom", is_error=True), result("tu2", {"found": 1}))


def test_results_flush_the_open_assistant_message() -> None:
    ledger = two_tool_turn()
    ledger.append_user_tool_results([result("tu2"), result("tu1")])
    messages = ledger.build_messages()
    assert [m.role for m in messages] == ["user", "assistant", "user"]
    assert [p.tool_use_id for p in messages[2].tool_results()] == ["tu1", "tu2"]


def test_results_with_empty_ids_are_rejected_and_change_nothing() -> None:
    ledger = two_tool_turn()
    before = ledger.state
    with pytest.raises(LedgerError) as info:
        ledger.append_user_tool_results([result("tu1"), result("")])
    assert info.value.rule == "empty_tool_result_id"
    assert isinstance(info.value, ContractError)
    assert ledger.state == before


def test_result_for_an_unknown_tool_use_is_rejected() -> None:
    ledger = two_tool_turn()
    with pytest.raises(LedgerError) as info:
        ledger.append_user_tool_results([result("tu9")])
    assert info.value.rule == "unknown_tool_use"
    assert "tu9" in str(info.value)


def test_result_for_a_tool_use_of_an_earlier_message_is_rejected() -> None:
    ledger = two_tool_turn()
    ledger.append_user_tool_results([result("tu1"), result("tu2")])
    ledger.append_text("next step")
    ledger.declare_tool_use("tu3", "search", {})
    with pytest.raises(LedgerError) as info:
        ledger.append_user_tool_results([result("tu1")])
    assert info.value.rule == "unknown_tool_use"


def test_second_result_for_one_tool_use_is_rejected() -> None:
    ledger = two_tool_turn()
    ledger.append_user_tool_results([result("tu1")])
    with pytest.raises(LedgerError) as info:
        ledger.append_user_tool_results([result("tu1")])
    assert info.value.rule == "duplicate_tool_result"
    with pytest.raises(LedgerError):
        ledger.append_user_tool_results([result("tu2"), result("tu2")])


def test_thinking_is_kept_only_with_redacted_bytes_or_a_signature() -> None:
    ledger = Ledger()
    assert not ledger.append_thinking("unsigned preview")
    assert not ledger.append_thinking(None, None, b"")
    assert not ledger.append_thinking("", "")
    assert ledger.is_empty
    assert ledger.append_thinking("signed", "sig")
    # Anthropic's display "omitted" sends signed thinking with empty text.
    assert ledger.append_thinking("", "sig-omitted")
    # redacted bytes win over any text beside them
    assert ledger.append_thinking("ignored", "sig-x", b"\xff\xfe")
    [message] = ledger.build_messages()
    assert message.parts == (
        ThinkingPart(text="signed", signature="sig"),
        ThinkingPart(text="", signature="sig-omitted"),
        ThinkingPart(redacted=b"\xff\xfe"),
    )


def test_building_is_deterministic_and_does_not_change_the_ledger() -> None:
    def build() -> list[Message]:
        ledger = two_tool_turn()
        ledger.append_user_tool_results([result("tu2"), result("tu1")])
        ledger.append_user_text("thanks")
        return ledger.build_messages()

    ledger = Ledger()
    ledger.append_user_text("hi")
    ledger.append_text("calling")
    first = ledger.build_messages()
    assert ledger.build_messages() == first  # build does not flush or reorder
    ledger.append_text(" tools")  # ... so the open message is still open
    assert ledger.build_messages()[1].parts == (TextPart(text="calling tools"),)
    assert build() == build()


def test_history_is_multi_turn_and_never_collapsed() -> None:
    ledger = Ledger()
    for turn in range(3):
        ledger.append_user_text(f"question {turn}")
        ledger.append_thinking(f"think {turn}", f"sig {turn}")
        ledger.declare_tool_use(f"tu{turn}", "search", {"turn": turn})
        ledger.append_user_tool_results([result(f"tu{turn}", turn)])
        ledger.append_text(f"answer {turn}")
    messages = ledger.build_messages()
    expected: list[Message] = []
    for turn in range(3):
        expected += [
            Message(role="user", parts=(TextPart(text=f"question {turn}"),)),
            Message(
                role="assistant",
                parts=(
                    ThinkingPart(text=f"think {turn}", signature=f"sig {turn}"),
                    ToolUsePart(id=f"tu{turn}", name="search", input={"turn": turn}),
                ),
            ),
            Message(role="user", parts=(result(f"tu{turn}", turn),)),
            Message(role="assistant", parts=(TextPart(text=f"answer {turn}"),)),
        ]
    assert messages == expected


def test_user_text_after_results_goes_into_the_same_user_message_after_them() -> None:
    ledger = two_tool_turn()
    ledger.append_user_text("also: hurry")  # arrives before any result
    ledger.append_user_tool_results([result("tu2")])
    ledger.append_user_tool_results([result("tu1")])
    messages = ledger.build_messages()
    assert messages[2].parts == (result("tu1"), result("tu2"), TextPart(text="also: hurry"))


def test_text_after_a_tool_use_in_the_same_message_is_refused() -> None:
    ledger = two_tool_turn()
    with pytest.raises(LedgerError) as info:
        ledger.append_text("late text")
    assert info.value.rule == "text_after_tool_use"
    # A refusal becomes a dead letter's header, which is never sealed and outlives
    # an erasure of the session: it names the text's length, not its words.
    assert "late" not in str(info.value), info.value
    assert "9 characters" in str(info.value), info.value


def test_tool_use_ids_are_unique_in_the_run() -> None:
    ledger = two_tool_turn()
    with pytest.raises(LedgerError) as info:
        ledger.declare_tool_use("tu1", "search", {})
    assert info.value.rule == "duplicate_tool_use_id"
    ledger.append_user_tool_results([result("tu1"), result("tu2")])
    with pytest.raises(LedgerError):
        ledger.declare_tool_use("tu2", "search", {})  # in a later message too


def test_tool_use_needs_an_id_and_a_name() -> None:
    ledger = Ledger()
    with pytest.raises(LedgerError) as info:
        ledger.declare_tool_use("", "search", {})
    assert info.value.rule == "empty_tool_use_id"
    with pytest.raises(LedgerError) as info:
        ledger.declare_tool_use("tu1", "", {})
    assert info.value.rule == "empty_tool_name"


def test_next_assistant_message_waits_for_every_result() -> None:
    ledger = two_tool_turn()
    ledger.append_user_tool_results([result("tu1")])
    assert ledger.awaiting_tool_results == ["tu2"]
    before = ledger.state
    with pytest.raises(LedgerError) as info:
        ledger.append_text("moving on")
    assert info.value.rule == "tool_results_incomplete"
    assert "tu2" in info.value.detail
    assert ledger.state == before


def test_two_assistant_messages_in_a_row_are_refused() -> None:
    ledger = Ledger()
    ledger.append_user_text("hi")
    ledger.append_text("one")
    ledger.flush_assistant()
    with pytest.raises(LedgerError) as info:
        ledger.append_text("two")
    assert info.value.rule == "assistant_after_assistant"


def test_append_part_dispatches_by_kind() -> None:
    ledger = Ledger()
    ledger.append_user_text("go")
    for part in (
        ThinkingPart(text="t", signature="s"),
        TextPart(text="ok"),
        ToolUsePart(id="a", name="calc", input={"x": 1}),
    ):
        ledger.append_part(part)
    ledger.append_part(result("a", 2))
    messages = ledger.build_messages()
    assert messages[1].parts == (
        ThinkingPart(text="t", signature="s"),
        TextPart(text="ok"),
        ToolUsePart(id="a", name="calc", input={"x": 1}),
    )
    assert messages[2].parts == (result("a", 2),)


def test_state_survives_json_and_restores_a_ledger_that_goes_on_identically() -> None:
    ledger = Ledger()
    ledger.append_user_text("find pumps")
    ledger.append_thinking("plan", "sig-1")
    ledger.append_thinking(redacted=bytes(range(256)))
    ledger.append_text("calling tools")
    ledger.declare_tool_use("tu1", "search", {"q": "pump"})
    ledger.declare_tool_use("tu2", "lookup", {"id": 7})
    ledger.append_user_tool_results([result("tu2")])
    restored = Ledger(LedgerState.model_validate_json(ledger.state.model_dump_json()))
    assert restored.build_messages() == ledger.build_messages()
    for each in (ledger, restored):
        each.append_user_tool_results([result("tu1")])
        each.append_text("done")
    assert restored.build_messages() == ledger.build_messages()
    assert restored.build_messages()[1].parts[1] == ThinkingPart(redacted=bytes(range(256)))
    with pytest.raises(LedgerError):  # the restored ledger remembers the run's ids
        restored.declare_tool_use("tu1", "search", {})


def test_a_ledger_and_the_states_it_opens_from_or_gives_share_no_list() -> None:
    first = Ledger()
    first.append_user_text("hi")
    first.flush_assistant()
    first.append_text("hello")
    first.declare_tool_use("t1", "calc", {"x": 1})
    kept = first.state
    before = kept.model_dump()
    again = Ledger(kept)
    again.flush_assistant()
    again.append_user_tool_results([ToolResultPart(tool_use_id="t1", content=2)])
    again.append_user_text("more")
    with pytest.raises(LedgerError):
        first.append_text("refused")  # after a tool_use: first is left as it was
    assert kept.model_dump() == before  # neither ledger wrote into the state
    assert first.state.model_dump() == before
    assert again.state.model_dump() != before
    assert Ledger(again.state).build_messages() == again.build_messages()


class _Counted(str):
    """A tool_use id that counts how often it is hashed (each set it enters or is
    looked up in)."""

    hashed = 0

    def __hash__(self) -> int:
        _Counted.hashed += 1
        return str.__hash__(self)


def test_results_one_at_a_time_cost_each_a_lookup_not_a_walk_over_the_run() -> None:
    # A run may declare any number of tool calls (a hostile log: thousands);
    # each result and each "does it still wait?" used to rebuild the sets of
    # every result so far.
    calls = 2000
    ledger = Ledger()
    ledger.append_user_text("go")
    for i in range(calls):
        ledger.declare_tool_use(f"call-{i}", "calculator", {})
    _Counted.hashed = 0
    for i in range(calls):
        result = ToolResultPart.model_construct(
            kind="tool_result", tool_use_id=_Counted(f"call-{i}"), content=i, is_error=False
        )
        ledger.append_user_tool_results([result])
        assert ledger.awaits_tool_results is (i < calls - 1)
        assert bool(ledger.awaiting_tool_results) is (i < calls - 1)
    assert _Counted.hashed < 20 * calls


def test_an_unknown_result_names_a_few_declared_calls_however_many() -> None:
    ledger = Ledger()
    ledger.append_user_text("go")
    for i in range(5000):
        ledger.declare_tool_use(f"call-{i}", "calculator", {})
    ledger.flush_assistant()
    with pytest.raises(LedgerError) as refused:
        ledger.append_user_tool_results([ToolResultPart(tool_use_id="nobody's", content=1)])
    assert refused.value.rule == "unknown_tool_use"
    assert "and 4990 more" in str(refused.value)
    assert len(str(refused.value)) < 500
