"""The model-input digest: the same bytes in every process, and sensitive to
everything an encoder would send."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from runwire.context import ContextPolicy, canonical_json, model_input_digest, select_history
from runwire.transcript.messages import Message, TextPart, ThinkingPart, ToolResultPart, ToolUsePart
from tests.unit.context_support import T0_MS, FakeLog, tool_turn

REPO = Path(__file__).resolve().parents[2]


def sample() -> list[Message]:
    """Unicode, floats, nested JSON in insertion order, signed and redacted thinking."""
    return [
        Message(role="user", parts=(TextPart(text="Grüße, 東京? ✓"),)),
        Message(
            role="assistant",
            parts=(
                ThinkingPart(text="think", signature="sig=="),
                ThinkingPart(redacted=b"\x00\xffrwl1"),
                TextPart(text="calling"),
                ToolUsePart(id="t1", name="svc.search", input={"z": 1.5e-7, "a": [1, None, "x"]}),
            ),
        ),
        Message(
            role="user",
            parts=(
                ToolResultPart(tool_use_id="t1", content={"ok": True, "n": 2**53}, is_error=True),
            ),
        ),
        Message(role="assistant", parts=(TextPart(text="done"),)),
    ]


def session_window_digest() -> str:
    log = FakeLog()
    for i in range(12):
        log.add_run(f"run-{i}", tool_turn(i, "same"), T0_MS + i)
    runs = [log.history(f"run-{i}") for i in range(12)]
    return select_history(runs, ContextPolicy(history_turns=6), provider="bedrock").digest


# Released: a replayed run checks its recorded digest with this function, so
# its bytes never change (like the pinned schema fingerprints).
SAMPLE_DIGEST = "2c919f9f9a341e6322c6f2cffdb7476ed942e838aee605fd22d21b1db970b66a"


def test_the_canonical_json_is_compact_utf8_in_model_and_key_order() -> None:
    text = canonical_json(sample()).decode()
    assert text.startswith('[{"role":"user","parts":[{"kind":"text","text":"Grüße, 東京? ✓"}]}')
    assert '"input":{"z":1.5e-7,"a":[1,null,"x"]}' in text
    assert '"redacted":"AP9yd2wx"' in text
    assert json.loads(text) == [m.model_dump(mode="json") for m in sample()]


def test_the_digest_is_pinned() -> None:
    assert model_input_digest(sample()) == SAMPLE_DIGEST


def test_the_digest_is_the_same_in_other_processes() -> None:
    script = (
        "from tests.unit.test_context_digest import sample, session_window_digest\n"
        "from runwire.context import model_input_digest\n"
        "print(model_input_digest(sample()), session_window_digest())\n"
    )
    here = f"{model_input_digest(sample())} {session_window_digest()}"
    for seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        out = subprocess.run(
            [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == here


def test_everything_an_encoder_sends_changes_the_digest() -> None:
    base = model_input_digest(sample())
    messages = sample()
    tool_use = messages[1].parts[3]
    assert isinstance(tool_use, ToolUsePart)
    reordered = tool_use.model_copy(update={"input": {"a": [1, None, "x"], "z": 1.5e-7}})
    changes = [
        [
            *messages[:1],
            messages[1].model_copy(update={"parts": (*messages[1].parts[:3], reordered)}),
            *messages[2:],
        ],
        [
            messages[0],
            messages[1].model_copy(
                update={
                    "parts": (ThinkingPart(text="think", signature="sig=!"), *messages[1].parts[1:])
                }
            ),
            *messages[2:],
        ],
        messages[:2],
    ]
    digests = {model_input_digest(m) for m in changes}
    assert base not in digests
    assert len(digests) == len(changes)
