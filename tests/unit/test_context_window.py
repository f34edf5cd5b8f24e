"""The context window: which history a new run of a session is shown."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from runwire.context import (
    ContextError,
    ContextPolicy,
    RunHistory,
    assemble_model_input,
    message_tokens,
    select_history,
)
from runwire.context.window import split_turns
from runwire.errors import ConfigurationError
from runwire.transcript.messages import Message, TextPart, ToolResultPart, ToolUsePart
from runwire.transcript.validation import PROVIDERS, validate
from tests.unit.context_support import (
    T0_MS,
    FakeLog,
    assistant,
    chat_turn,
    tool_turn,
    user,
)

NEW_QUESTION = user("and what did I ask first?")


def _session(runs: int, *, log: FakeLog | None = None) -> tuple[FakeLog, list[str]]:
    """``runs`` tool-using runs (one turn each, unique tool ids), with runs of
    another session interleaved on the same partitions."""
    log = log or FakeLog()
    ids = []
    for i in range(runs):
        run_id = f"run-{i:02d}"
        log.add_run(f"other-{i}", chat_turn("noise", "noise"), T0_MS + i * 1000)
        log.add_run(run_id, tool_turn(i, f"toolu_{i}"), T0_MS + i * 1000 + 1)
        ids.append(run_id)
    return log, ids


def _histories(log: FakeLog, ids: list[str]) -> list[RunHistory]:
    return [log.history(r) for r in ids]


def _valid_everywhere(messages: list[Message], *, thinking: bool = True) -> None:
    for provider in PROVIDERS:
        validate(messages, provider, thinking_enabled=False)
        if thinking:
            validate(messages, provider, thinking_enabled=True)


def test_thirty_runs_with_tools_and_a_window_of_five_runs() -> None:
    log, ids = _session(30)
    runs = _histories(log, ids)
    window = select_history(
        runs, ContextPolicy(history_runs=5), provider="anthropic", thinking_enabled=True
    )
    assert [r.run_id for r in window.runs] == ids[-5:]
    assert list(window.messages) == [m for run in runs[-5:] for m in run.messages]
    model_input = assemble_model_input(window, [NEW_QUESTION])
    assert model_input[0].role == "user"
    assert model_input[0].text() == "what is 25 + 1?"
    assert model_input[-1] == NEW_QUESTION
    _valid_everywhere(model_input)
    for seeded, run in zip(window.runs, runs[-5:], strict=True):
        assert (seeded.partition, seeded.first_offset, seeded.last_offset) == (
            run.partition,
            run.first_offset,
            run.last_offset,
        )
        assert (seeded.first_message, seeded.message_count) == (0, 4)


def test_without_bounds_the_window_is_the_whole_session() -> None:
    log, ids = _session(7)
    window = select_history(_histories(log, ids), ContextPolicy(), provider="openai")
    assert [r.run_id for r in window.runs] == ids
    assert len(window.messages) == 28


def test_history_turns_cuts_at_whole_turns_across_runs() -> None:
    log = FakeLog()
    # run-a: 3 turns, run-b: 2 turns (one with tools), run-c: 1 turn
    log.add_run(
        "run-a",
        [*chat_turn("hi", "hello"), *tool_turn(1, "t1"), *chat_turn("thanks", "welcome")],
        T0_MS,
    )
    log.add_run("run-b", [*tool_turn(2, "t2"), *chat_turn("ok", "fine")], T0_MS + 1)
    log.add_run("run-c", chat_turn("bye", "see you"), T0_MS + 2)
    runs = _histories(log, ["run-a", "run-b", "run-c"])

    window = select_history(runs, ContextPolicy(history_turns=4), provider="bedrock")
    assert [r.run_id for r in window.runs] == ["run-a", "run-b", "run-c"]
    # run-a gives only its last turn; the tool turn before it is not split
    assert window.runs[0].first_message == 6
    assert window.messages[0] == user("thanks")
    assert len(split_turns(window.messages)) == 4
    _valid_everywhere(assemble_model_input(window, [NEW_QUESTION]))

    two = select_history(runs, ContextPolicy(history_turns=2), provider="bedrock")
    assert [r.run_id for r in two.runs] == ["run-b", "run-c"]
    assert two.messages[0] == user("ok")
    assert select_history(runs, ContextPolicy(history_turns=0), provider="openai").is_empty


def test_token_budget_drops_the_oldest_whole_turns_first() -> None:
    log, ids = _session(6)
    runs = _histories(log, ids)
    turn_tokens = [sum(message_tokens(m) for m in run.messages) for run in runs]
    budget = sum(turn_tokens[-3:]) + turn_tokens[-4] - 1  # the fourth newest does not fit
    window = select_history(runs, ContextPolicy(token_budget=budget), provider="local")
    assert [r.run_id for r in window.runs] == ids[-3:]
    assert window.token_count == sum(turn_tokens[-3:]) <= budget
    exact = select_history(
        runs, ContextPolicy(token_budget=budget + 1), provider="local"
    )  # now it does
    assert [r.run_id for r in exact.runs] == ids[-4:]
    tiny = select_history(runs, ContextPolicy(token_budget=turn_tokens[-1] - 1), provider="local")
    assert tiny.is_empty


def test_the_token_counter_is_pluggable() -> None:
    log, ids = _session(4)
    runs = _histories(log, ids)

    def words(text: str) -> int:
        return len(text.split())

    per_run = [sum(message_tokens(m, words) for m in run.messages) for run in runs]
    window = select_history(
        runs,
        ContextPolicy(token_budget=per_run[-1] + per_run[-2]),
        provider="openai",
        count_tokens=words,
    )
    assert [r.run_id for r in window.runs] == ids[-2:]
    assert window.token_count == per_run[-1] + per_run[-2]


def test_a_multi_turn_run_is_cut_inside_by_the_budget() -> None:
    log = FakeLog()
    turns = [chat_turn(f"q{i}", f"a{i}") for i in range(5)]
    log.add_run("run-a", [m for t in turns for m in t], T0_MS)
    run = log.history("run-a")
    size = sum(message_tokens(m) for m in turns[-1])
    window = select_history([run], ContextPolicy(token_budget=2 * size), provider="anthropic")
    assert window.messages == (*turns[3], *turns[4])
    assert window.runs[0].first_message == 6


def test_session_cleared_hides_everything_before_it() -> None:
    log, ids = _session(6)
    runs = _histories(log, ids)
    cleared = runs[2].first_ms
    assert cleared is not None
    window = select_history(runs, ContextPolicy(), provider="openai", cleared_at_ms=cleared + 5)
    assert [r.run_id for r in window.runs] == ids[3:]
    assert window.messages[0].text() == "what is 3 + 1?"
    after_all = select_history(
        runs, ContextPolicy(), provider="openai", cleared_at_ms=T0_MS + 10**6
    )
    assert after_all.is_empty
    # a run listed after the clear but started before it (a clock skew) goes too
    skewed = [*runs[:4], replace(runs[4], first_ms=0), runs[5]]
    assert [r.run_id for r in select_history(skewed, ContextPolicy(), provider="openai").runs] == (
        ids[:6]
    )
    cut = select_history(skewed, ContextPolicy(), provider="openai", cleared_at_ms=cleared)
    assert [r.run_id for r in cut.runs] == ids[5:]


def test_a_clear_needs_run_times() -> None:
    log, ids = _session(2)
    runs = [replace(r, first_ms=None) for r in _histories(log, ids)]
    with pytest.raises(ContextError, match=r"run run-00 has no first_ms"):
        select_history(runs, ContextPolicy(), provider="openai", cleared_at_ms=1)


def test_the_current_run_and_later_runs_are_not_history() -> None:
    log, ids = _session(5)
    runs = _histories(log, ids)
    window = select_history(runs, ContextPolicy(), provider="openai", current_run_id="run-02")
    assert [r.run_id for r in window.runs] == ids[:2]


def test_a_failed_run_that_ended_on_a_user_message_is_left_out_at_the_seam() -> None:
    log = FakeLog()
    log.add_run("run-a", chat_turn("My name is Alice", "Hello Alice!"), T0_MS)
    # run-b failed before answering: its transcript ends on the user's message
    log.add_run("run-b", [user("What's the weather?")], T0_MS + 1)
    # run-c failed waiting for a tool: user, assistant(tool_use), user(result)
    log.add_run("run-c", tool_turn(3, "t3")[:3], T0_MS + 2)
    # run-d answered, then got text after it ended: the answered turn stays
    log.add_run("run-d", [*chat_turn("thanks", "welcome"), user("one more")], T0_MS + 3)
    # run-e failed with a tool call that never got a result
    log.add_run("run-e", tool_turn(5, "t5")[:2], T0_MS + 4)
    runs = _histories(log, ["run-a", "run-b", "run-c", "run-d", "run-e"])
    assert runs[1].messages[-1].role == "user"  # the seam case

    window = select_history(runs, ContextPolicy(), provider="anthropic")
    assert [r.run_id for r in window.runs] == ["run-a", "run-d"]
    texts = [m.text() for m in window.messages]
    assert texts == ["My name is Alice", "Hello Alice!", "thanks", "welcome"]
    model_input = assemble_model_input(window, [user("What's my name?")])
    _valid_everywhere(model_input, thinking=False)
    # runs with nothing answered do not count against history_runs
    two = select_history(runs, ContextPolicy(history_runs=2), provider="openai")
    assert [r.run_id for r in two.runs] == ["run-a", "run-d"]


def test_thinking_rules_stop_the_window_at_a_turn_the_provider_would_refuse() -> None:
    log = FakeLog()
    log.add_run("old", tool_turn(1, "t1", thinking=False), T0_MS)
    log.add_run("new", tool_turn(2, "t2", thinking=True), T0_MS + 1)
    runs = _histories(log, ["old", "new"])
    strict = select_history(runs, ContextPolicy(), provider="anthropic", thinking_enabled=True)
    assert [r.run_id for r in strict.runs] == ["new"]
    validate(assemble_model_input(strict, [NEW_QUESTION]), "anthropic", thinking_enabled=True)
    lenient = select_history(runs, ContextPolicy(), provider="openai", thinking_enabled=True)
    assert [r.run_id for r in lenient.runs] == ["old", "new"]


def test_a_disabled_policy_shows_nothing() -> None:
    log, ids = _session(3)
    runs = _histories(log, ids)
    assert select_history(runs, ContextPolicy.stateless(), provider="openai").is_empty
    assert select_history(runs, ContextPolicy(history_runs=0), provider="openai").is_empty
    empty = select_history([], ContextPolicy(), provider="openai")
    assert assemble_model_input(empty, [NEW_QUESTION]) == [NEW_QUESTION]


def test_tool_ids_repeated_across_runs_are_made_unique() -> None:
    log = FakeLog()
    same = "toolu_local_0123456789abcdef_0"  # a deterministic model asked the same twice
    for i in range(3):
        log.add_run(f"run-{i}", tool_turn(7, same), T0_MS + i)
    runs = _histories(log, [f"run-{i}" for i in range(3)])
    window = select_history(runs, ContextPolicy(), provider="bedrock")
    ids = [u.id for m in window.messages for u in m.tool_uses()]
    results = [r.tool_use_id for m in window.messages for r in m.tool_results()]
    assert ids == results
    assert len(set(ids)) == 3
    assert ids[-1] == same  # the newest keeps its id
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,40}", i) for i in ids)
    # apart from the ids, nothing changed
    strip = {same: "x", **dict.fromkeys(ids, "x")}
    assert [_with_ids(m, strip) for m in window.messages] == [
        _with_ids(m, strip) for r in runs for m in r.messages
    ]
    _valid_everywhere(assemble_model_input(window, [NEW_QUESTION]))

    # the new run itself uses the id: the run keeps it, the history gives it up
    run = tool_turn(8, same)
    model_input = assemble_model_input(window, run)
    assert model_input[-4:] == run
    _valid_everywhere(model_input)
    assert model_input == assemble_model_input(window, run)  # deterministic


def _with_ids(message: Message, names: dict[str, str]) -> Message:
    parts = []
    for p in message.parts:
        if isinstance(p, ToolUsePart):
            p = p.model_copy(update={"id": names[p.id]})
        elif isinstance(p, ToolResultPart):
            p = p.model_copy(update={"tool_use_id": names[p.tool_use_id]})
        parts.append(p)
    return Message(role=message.role, parts=tuple(parts))


def test_history_cannot_go_before_a_run_that_does_not_start_with_a_user_turn() -> None:
    log, ids = _session(2)
    window = select_history(_histories(log, ids), ContextPolicy(), provider="openai")
    with pytest.raises(ContextError, match=r"run r9: .* starts with an assistant message"):
        assemble_model_input(window, [assistant(TextPart(text="seeded"))], run_id="r9")
    with pytest.raises(ContextError, match=r"starts with nothing"):
        assemble_model_input(window, [])


def test_an_unknown_provider_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown provider 'gpt'"):
        select_history([], ContextPolicy(), provider="gpt")


def test_policy_bounds_are_not_negative() -> None:
    with pytest.raises(ValueError, match=r"history_runs"):
        ContextPolicy(history_runs=-1)
    assert ContextPolicy.from_record({"history_runs": 3, "added_later": True}) == ContextPolicy(
        history_runs=3
    )
