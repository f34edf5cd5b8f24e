"""Compaction of a run's history: whole turns only, a deterministic summary by the local
model through its adapter, reused until the policy or the span changes, replayed exactly."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from runwire.context import (
    CompactionPolicy,
    ContextPolicy,
    PreparedInput,
    SessionRuns,
    canonical_json,
    fold_run_events,
    prepare_model_input,
    select_history,
)
from runwire.context.compaction import SUMMARY_PREFIX, plan_compaction
from runwire.contract.events import ContextCompacted, Event, UserMessage
from runwire.providers.local import LocalModel
from runwire.services.orchestrator.history import ProviderSummarizer
from runwire.transcript.messages import Message, ToolResultPart
from runwire.transcript.validation import validate
from tests.unit.context_support import SESSION, T0_MS, FakeLog, chat_turn, tool_turn, user

POLICY = ContextPolicy()
COMPACT = CompactionPolicy(keep_turns=2, chunk_turns=2)


class Counting(ProviderSummarizer):
    def __init__(self) -> None:
        super().__init__(LocalModel())
        self.calls = 0

    async def summarize(self, messages: Sequence[Message], max_tokens: int) -> str:
        self.calls += 1
        return await super().summarize(messages, max_tokens)


def _log(turns: int) -> tuple[FakeLog, list[str]]:
    """A session of ``turns`` runs, alternating chat and tool turns (distinct tool ids)."""
    log = FakeLog()
    ids = []
    for n in range(turns):
        run = f"run-{n}"
        messages = chat_turn(f"note {n}", f"noted {n}") if n % 2 else tool_turn(n, f"toolu_{n}")
        log.add_run(run, messages, T0_MS + n)
        ids.append(run)
    return log, ids


async def _prepare(
    log: FakeLog,
    ids: list[str],
    run_id: str,
    summarizer: Counting,
    *,
    compaction: CompactionPolicy = COMPACT,
    seeded: Event | None = None,
    compacted: Event | None = None,
) -> PreparedInput:
    recorded = [e for p in log.partitions for e in p if isinstance(e.payload, ContextCompacted)]

    async def load() -> SessionRuns:
        return SessionRuns([log.history(r) for r in ids], None, recorded)

    return await prepare_model_input(
        [user("and now?")],
        run_id=run_id,
        seeded=seeded,
        first_call=True,
        load_session=load,
        read_run_events=log.aread,
        policy=POLICY,
        provider="anthropic",
        thinking_enabled=True,
        compaction=compaction,
        summarizer=summarizer,
        compacted=compacted,
    )


def _record(log: FakeLog, run_id: str, prepared: PreparedInput) -> tuple[Event, Event]:
    assert prepared.compacted is not None
    assert prepared.seed is not None
    summary = Event.create(prepared.compacted, run_id=run_id, session_id=SESSION, producer="t")
    seed = Event.create(prepared.seed, run_id=run_id, session_id=SESSION, producer="t")
    log.append(summary)
    log.append(seed)
    return summary, seed


@pytest.mark.parametrize("keep", [1, 2, 3])
@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_the_span_is_whole_turns_and_exactly_what_the_log_gives(keep: int, chunk: int) -> None:
    log, ids = _log(7)
    window = select_history(
        [log.history(r) for r in ids], POLICY, provider="anthropic", thinking_enabled=True
    )
    plan = plan_compaction(window, CompactionPolicy(keep_turns=keep, chunk_turns=chunk))
    assert plan is not None
    span, kept = plan.span_messages, plan.kept_messages
    assert (*span, *kept) == window.messages
    # A turn boundary: the span ends with a final answer, the rest starts with a person.
    assert span[-1].role == "assistant"
    assert not span[-1].tool_uses()
    assert kept[0].role == "user"
    assert not any(isinstance(p, ToolResultPart) for p in kept[0].parts)
    uses = {u.id for m in span for u in m.tool_uses()}
    results = {p.tool_use_id for m in span for p in m.parts if isinstance(p, ToolResultPart)}
    assert uses == results, "no tool_use without its result, none the other way"
    validate(list(kept), "anthropic", thinking_enabled=True)
    # The recorded span is exact: its slices of the log give the span's messages.
    again: list[Message] = []
    for run in plan.span:
        folded = fold_run_events(
            run.run_id, log.read(run.run_id, run.partition, run.first_offset, run.last_offset)
        )
        again += folded[run.first_message : run.first_message + run.message_count]
    assert tuple(again) == span
    # Whole chunks of turns, the newest ``keep`` (at least) left out.
    span_turns = sum(1 for m in span if m.role == "user" and m.text())
    assert span_turns % chunk == 0
    assert 7 - span_turns >= keep


async def test_the_summary_is_deterministic_and_replays_exactly() -> None:
    log, ids = _log(6)
    log.publish("run-new", [UserMessage(parts=["and now?"])], T0_MS + 10)
    first = await _prepare(log, ids, "run-new", Counting())
    again = await _prepare(log, ids, "run-new", Counting())  # another process, same log
    assert first.compacted is not None
    assert again.compacted == first.compacted
    assert canonical_json(again.messages) == canonical_json(first.messages)
    assert first.messages[0].text().startswith(SUMMARY_PREFIX)
    assert first.messages[0].text() == SUMMARY_PREFIX + first.compacted.summary
    validate(list(first.messages), "anthropic", thinking_enabled=True)
    # Recorded, then replayed (a restart: no cache): the very same model input.
    summary, seed = _record(log, "run-new", first)
    counting = Counting()
    replay = await _prepare(log, ids, "run-new", counting, seeded=seed, compacted=summary)
    assert canonical_json(replay.messages) == canonical_json(first.messages)
    assert counting.calls == 0
    assert replay.seed is None
    # The originals are all still in the log: nothing was rewritten.
    for run in ids:
        assert log.history(run).messages == tuple(
            fold_run_events(run, [e for p in log.partitions for e in p])
        )


async def test_a_summary_is_reused_until_the_policy_or_the_span_changes() -> None:
    log, ids = _log(6)
    made = Counting()
    first = await _prepare(log, ids, "run-a", made)
    summary, _ = _record(log, "run-a", first)
    assert made.calls == 1
    # run-a itself is unanswered: the next run's window (and so its span) is the same.
    reused = Counting()
    second = await _prepare(log, [*ids, "run-a"], "run-b", reused)
    assert reused.calls == 0
    assert second.compacted is not None
    assert second.compacted.reused_from == summary.event_id
    assert second.compacted.summary == first.compacted.summary  # type: ignore[union-attr]
    # Another policy: a new summary.
    other = Counting()
    changed = await _prepare(
        log, ids, "run-c", other, compaction=COMPACT.model_copy(update={"instructions": "Brief."})
    )
    assert other.calls == 1
    assert changed.compacted is not None
    assert changed.compacted.fingerprint != first.compacted.fingerprint  # type: ignore[union-attr]
    # The session grows by one turn: the span stays (it moves in chunks of two)...
    log.add_run("run-6", chat_turn("note 6", "noted 6"), T0_MS + 20)
    same = Counting()
    await _prepare(log, [*ids, "run-6"], "run-d", same)
    assert same.calls == 0
    # ...and by two turns it moves: a new summary.
    log.add_run("run-7", chat_turn("note 7", "noted 7"), T0_MS + 21)
    moved = Counting()
    grown = await _prepare(log, [*ids, "run-6", "run-7"], "run-e", moved)
    assert moved.calls == 1
    assert grown.compacted is not None
    assert grown.compacted.span != first.compacted.span  # type: ignore[union-attr]


async def test_too_few_turns_compacts_nothing() -> None:
    log, ids = _log(3)
    counting = Counting()
    prepared = await _prepare(log, ids, "run-new", counting)
    assert prepared.compacted is None
    assert counting.calls == 0
    assert not prepared.messages[0].text().startswith(SUMMARY_PREFIX)
