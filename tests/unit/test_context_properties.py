"""Properties of the context window over random valid multi-run sessions."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runwire.context import (
    ContextPolicy,
    ContextWindow,
    RunHistory,
    assemble_model_input,
    rebuild_history,
    select_history,
)
from runwire.context.tokens import messages_tokens
from runwire.context.window import is_turn_start, split_turns
from runwire.contract.events import UserMessage
from runwire.transcript.messages import Message, ToolResultPart, ToolUsePart
from runwire.transcript.validation import PROVIDERS, validate
from tests.support.transcript_strategies import transcripts
from tests.unit.context_support import T0_MS, FakeLog, user


@dataclass
class Session:
    log: FakeLog
    runs: list[RunHistory]
    thinking: bool


@st.composite
def sessions(draw: st.DrawFn) -> Session:
    """1-8 runs of valid transcripts (tool ids often repeat across runs), some
    with an unanswered tail: a failed run's question, text after the end."""
    thinking = draw(st.booleans())
    log = FakeLog(partitions=draw(st.integers(1, 3)))
    ids = []
    for i in range(draw(st.integers(1, 8))):
        run_id = f"run-{i}"
        messages = draw(transcripts(thinking=thinking, max_turns=3))
        log.add_run(run_id, messages, T0_MS + i)
        if draw(st.booleans()):
            log.publish(run_id, [UserMessage(parts=["unanswered"])], T0_MS + i)
        ids.append(run_id)
    return Session(log, [log.history(r) for r in ids], thinking)


bounds = st.none() | st.integers(0, 6)
policies = st.builds(
    ContextPolicy,
    enabled=st.booleans() | st.just(True),
    history_runs=bounds,
    history_turns=bounds,
    token_budget=st.none() | st.integers(0, 600),
)


def _complete_turns(messages: tuple[Message, ...]) -> list[tuple[int, int]]:
    turns = split_turns(messages)
    while turns and not _is_complete(messages[turns[-1][0] : turns[-1][1]]):
        turns.pop()
    return turns


def _is_complete(turn: tuple[Message, ...]) -> bool:
    return turn[-1].role == "assistant" and not turn[-1].tool_uses()


def _without_ids(messages: list[Message] | tuple[Message, ...]) -> list[object]:
    """Messages with tool ids blanked (ids are the one thing a window may change)."""
    out: list[object] = []
    for m in messages:
        for p in m.parts:
            if isinstance(p, ToolUsePart):
                out.append((m.role, p.model_copy(update={"id": ""})))
            elif isinstance(p, ToolResultPart):
                out.append((m.role, p.model_copy(update={"tool_use_id": ""})))
            else:
                out.append((m.role, p))
        out.append("|")
    return out


def _check_window(window: ContextWindow, session: Session, policy: ContextPolicy) -> None:
    by_id = {r.run_id: r for r in session.runs}
    order = [r.run_id for r in session.runs]
    used = [r.run_id for r in window.runs]
    assert used == sorted(used, key=order.index)
    if not window.messages:
        assert not window.runs
        return
    assert is_turn_start(window.messages[0])
    assert _is_complete(window.messages[-1:])
    # bounds
    turns = split_turns(window.messages)
    assert policy.history_runs is None or len(window.runs) <= policy.history_runs
    assert policy.history_turns is None or len(turns) <= policy.history_turns
    assert policy.token_budget is None or window.token_count <= policy.token_budget
    assert window.token_count == messages_tokens(window.messages)
    # each slice is the run's own messages, ending with its last complete turn;
    # every run but the oldest gives all its complete turns (the window is contiguous)
    for k, (seeded, (_, messages)) in enumerate(zip(window.runs, window.run_slices(), strict=True)):
        run = by_id[seeded.run_id]
        complete = _complete_turns(run.messages)
        end = seeded.first_message + seeded.message_count
        assert end == complete[-1][1]
        if k > 0:
            assert seeded.first_message == complete[0][0]
        original = run.messages[seeded.first_message : end]
        assert _without_ids(messages) == _without_ids(original)
    # runs skipped between used ones have nothing answered
    for run_id in order[order.index(used[0]) : order.index(used[-1]) + 1]:
        if run_id not in used:
            assert not _complete_turns(by_id[run_id].messages)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    session=sessions(),
    policy=policies,
    provider=st.sampled_from(PROVIDERS),
    thinking_enabled=st.booleans(),
)
def test_the_window_is_always_valid_contiguous_and_rebuildable(
    session: Session, policy: ContextPolicy, provider: str, thinking_enabled: bool
) -> None:
    window = select_history(
        session.runs, policy, provider=provider, thinking_enabled=thinking_enabled
    )
    _check_window(window, session, policy)
    model_input = assemble_model_input(window, [user("next question")])
    validate(model_input, provider, thinking_enabled)
    if not thinking_enabled:
        for other in PROVIDERS:
            validate(model_input, other, thinking_enabled=False)
    rebuilt = rebuild_history(window.seeded_payload(), session.log.read)
    assert rebuilt.messages == window.messages
    assert rebuilt.digest == window.digest


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(session=sessions(), provider=st.sampled_from(PROVIDERS))
def test_without_bounds_every_answered_turn_is_shown(session: Session, provider: str) -> None:
    window = select_history(session.runs, ContextPolicy(), provider=provider)
    expected = sum(len(_complete_turns(r.messages)) for r in session.runs)
    assert len(split_turns(window.messages)) == expected
    uses = [u.id for m in window.messages for u in m.tool_uses()]
    assert len(uses) == len(set(uses))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(session=sessions(), follow_up=transcripts(max_turns=2))
def test_a_run_that_reuses_history_tool_ids_keeps_its_own(
    session: Session, follow_up: list[Message]
) -> None:
    window = select_history(session.runs, ContextPolicy(), provider="anthropic")
    model_input = assemble_model_input(window, follow_up)
    assert model_input[len(model_input) - len(follow_up) :] == follow_up
    for provider in PROVIDERS:
        validate(model_input, provider, thinking_enabled=False)
    assert is_turn_start(model_input[0])
