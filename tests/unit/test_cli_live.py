"""``runwire run --follow`` on a terminal: the answer drawn as it streams, then replaced."""

from __future__ import annotations

import io

from rich.console import Console

from runwire.cli.run import LivePrinter
from runwire.contract.events import AssistantText, Event, LiveToolStarted, ToolResult
from tests.unit.test_live_chunks import live_chunk, run_event


def terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=100, color_system=None), out


def test_the_streaming_answer_is_drawn_then_erased_when_the_canonical_one_lands() -> None:
    console, out = terminal()
    printer = LivePrinter(console)
    printer.live(live_chunk("d1", "s1", 0, "Hello, "))
    printer.live(live_chunk("d1", "s1", 1, "wor"))
    assert printer.drawing().plain == "assistant Hello, wor▌"
    assert "Hello, wor" in out.getvalue()  # drawn on the terminal as it came
    printer.canonical(run_event(AssistantText(text="Hello, world."), "d1"))
    assert printer.drawing().plain == ""
    printer.live(live_chunk("d1", "s1", 2, "ld"))  # late: its answer is in
    assert printer.drawing().plain == ""
    printer.close()


def test_a_running_tool_is_drawn_until_its_result() -> None:
    console, _ = terminal()
    printer = LivePrinter(console)
    started = Event.create(
        LiveToolStarted(tool_use_id="t1", name="calculator"), run_id="run-1", causation_id="use-1"
    )
    printer.live(started)
    assert printer.drawing().plain == "  … calculator running"
    printer.canonical(run_event(ToolResult(tool_use_id="t1", content=84), "use-1"))
    assert printer.drawing().plain == ""
    printer.close()
