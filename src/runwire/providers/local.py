"""The deterministic local model: a scripted agent that needs no key and no network.

Contract:
- Pure: the same request (messages, tools, thinking flag, model) always gives a
  byte-identical response — thinking, text, tool_use ids, usage included.
  Only ``latency`` (a cancellable sleep) depends on the clock.
- It reads the whole transcript it is given (earlier runs of the session
  included) and answers its last user message:
  * arithmetic ("what is 12 * (3 + 4)?") -> a ``calculator`` call per expression,
  * "what time is it" / "what's the date" -> a ``clock`` call,
  * "remember that my X is Y" -> a ``remember`` call with {"key", "value"},
  * "what is my X?" -> the latest "my X is Y" said anywhere earlier in the
    transcript (or remembered / recalled there); if none, a ``recall`` call,
  * "my X is Y" -> an acknowledgement (the transcript now holds the fact),
  * "call the NAME tool with {JSON}" -> a NAME call with that input (to the
    end of the line), and "ask NAME to TASK" -> a NAME call with
    ``{"task": TASK}`` (any offered tool: HTTP tools, agents as tools);
    the rest of the message is read without those spans,
  * tool results -> a text answer that cites each result (errors included),
  * "summarize the conversation ..." (what a compaction policy asks) -> an
    extractive summary of the transcript before it: every fact about the
    user, restated as "my X is Y" so that a later request still reads it;
    each tool called with its input and result; how many user turns it
    covers and their first words. Nothing is invented.
  It only calls tools the request offers; without them it says which tool it
  would need. Several requests in one message give several tool calls, in the
  order they were asked.
- With ``request.thinking`` every answer starts with a thinking part signed
  with ``signature = "rwl1." + base64(HMAC-SHA256(secret, text))``; a user
  message asking to keep something "secret" or "private" makes the thinking
  redacted (opaque bytes, not valid UTF-8). Like a real provider it rejects a
  transcript whose local thinking was altered (a final 400 ProviderError).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from runwire.contract import jsonvalues
from runwire.errors import ProviderError
from runwire.providers.base import (
    AssistantPart,
    ChunkHandler,
    ModelRequest,
    ModelResponse,
    ProviderLifecycle,
    StreamDelta,
    TokenUsage,
    ToolSpec,
)
from runwire.transcript.messages import (
    Message,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
)

DEFAULT_LOCAL_MODEL = "runwire-local-1"
DEFAULT_SECRET = b"runwire-local-model"
SIGNATURE_PREFIX = "rwl1."
REDACTED_MAGIC = b"\x00rwl1"

CALCULATOR = "calculator"
CLOCK = "clock"
REMEMBER = "remember"
RECALL = "recall"
LOCAL_MODEL_TOOLS: tuple[str, ...] = (CALCULATOR, CLOCK, REMEMBER, RECALL)
"""The tools the local model knows how to call; the tool runner implements them."""

LOCAL_TOOL_SPECS: tuple[ToolSpec, ...] = (
    ToolSpec(
        name=CALCULATOR,
        description="Evaluate an arithmetic expression (+ - * / % ** and parentheses).",
        input_schema={
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
        },
    ),
    ToolSpec(
        name=CLOCK,
        description="The current date and time.",
        input_schema={
            "type": "object",
            "properties": {"timezone": {"type": "string", "default": "UTC"}},
        },
    ),
    ToolSpec(
        name=REMEMBER,
        description="Store a fact about the user under a key.",
        input_schema={
            "type": "object",
            "properties": {"key": {"type": "string"}, "value": {"type": "string"}},
            "required": ["key", "value"],
        },
    ),
    ToolSpec(
        name=RECALL,
        description="Look up a fact about the user by key; empty when unknown.",
        input_schema={
            "type": "object",
            "properties": {"key": {"type": "string"}},
            "required": ["key"],
        },
    ),
)
"""Specs for :data:`LOCAL_MODEL_TOOLS`, ready to put in ``ModelRequest.tools``."""

_SUMMARIZE = re.compile(r"^\s*summari[sz]e (?:the|this) conversation\b", re.IGNORECASE)
_FACT = re.compile(r"\bmy ([a-z][a-z ]{0,40}?) (?:is|are) ([^.!?\n,;]+)", re.IGNORECASE)
_CALL_ME = re.compile(r"\bcall me ([^.!?\n,;]+)", re.IGNORECASE)
_REMEMBER = re.compile(r"\bremember(?: that)? ([^.!?\n]+)", re.IGNORECASE)
_QUESTION = re.compile(
    r"\b(?:what(?:'s| is| are)|do you (?:remember|know)|tell me) my ([a-z][a-z ]{0,40}?)\s*(?:\?|$|\.|,| and\b)",
    re.IGNORECASE,
)
_TIME = re.compile(
    r"\bwhat time\b|\bthe time\b|\bwhat day\b|\bthe date\b|\btoday's date\b", re.IGNORECASE
)
_NUMBER = r"\d+(?:\.\d+)?"
_EXPRESSION = re.compile(
    rf"[(\s]*-?{_NUMBER}[)\s]*(?:(?:\*\*|[-+*/%^x\u00d7\u00f7])[(\s]*-?{_NUMBER}[)\s]*)+",
    re.IGNORECASE,
)
_CALL_TOOL = re.compile(r"\bcall the ([A-Za-z0-9_-]{1,64}) tool with (\{[^\n]*\})", re.IGNORECASE)
_ASK = re.compile(r"\bask ([A-Za-z0-9_-]{1,64}) to ([^\n]+)", re.IGNORECASE)
_SECRET = re.compile(r"\b(?:secret|private|privately)\b", re.IGNORECASE)


@dataclass(frozen=True)
class _Action:
    """One thing the model decided to do, at the position it was asked for."""

    position: int
    tool: str | None
    tool_input: dict[str, Any]
    plan: str
    fallback: str


class LocalModel(ProviderLifecycle):
    """The default model: deterministic, offline, exercising every event type.

    ``latency`` seconds are slept (cancellably) before each answer, to test
    concurrency with a slow model; streamed, ``chunk_interval`` seconds are
    slept before each delta (a model writing at a fixed rate). ``secret``
    keys the thinking signatures.
    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_LOCAL_MODEL,
        latency: float = 0.0,
        secret: bytes = DEFAULT_SECRET,
        chunk_chars: int = 12,
        chunk_interval: float = 0.0,
    ) -> None:
        self._latency = latency
        self._chunk_interval = chunk_interval
        self._secret = secret
        self._chunk_chars = max(1, chunk_chars)
        super().__init__("local", model)

    def _needs_close(self) -> bool:
        return False  # holds nothing

    async def complete(
        self, request: ModelRequest, *, on_chunk: ChunkHandler | None = None
    ) -> ModelResponse:
        self._ensure_open()
        response = self.respond(request)
        if self._latency > 0:
            await asyncio.sleep(self._latency)
        if on_chunk is not None:
            for delta in stream_deltas(response.parts, self._chunk_chars):
                if self._chunk_interval > 0:
                    await asyncio.sleep(self._chunk_interval)
                await on_chunk(delta)
        return response

    def respond(self, request: ModelRequest) -> ModelResponse:
        """The answer to ``request``, synchronously (no latency, no streaming)."""
        _verify_thinking(request.messages, self._secret)
        if not request.messages or request.messages[-1].role != "user":
            raise ProviderError(
                "local: 400 the conversation must end with a user message",
                status=400,
                kind="invalid_request",
            )
        last = request.messages[-1]
        earlier = request.messages[:-1]
        offered = set(request.tool_names())
        if last.tool_results():
            thought, text = _answer_tool_results(last.tool_results(), earlier)
            actions: list[_Action] = []
        elif _SUMMARIZE.match(last.text()):
            thought, text = "The user wants the conversation so far summarized.", _summary(earlier)
            actions = []
        else:
            actions, thought, text = _read_user_text(last.text(), earlier, offered)

        canonical = _canonical(request)
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        parts: list[AssistantPart] = []
        if request.thinking:
            parts.append(self._thinking(thought, redacted=bool(_SECRET.search(last.text()))))
        calls = [a for a in actions if a.tool is not None]
        if text:
            parts.append(TextPart(text=text))
        for index, action in enumerate(calls):
            assert action.tool is not None
            parts.append(
                ToolUsePart(
                    id=f"toolu_local_{digest[:16]}_{index}",
                    name=action.tool,
                    input=action.tool_input,
                )
            )
        model = self.model_for(request)
        output_chars = sum(len(_part_text(p)) for p in parts)
        thinking_chars = sum(len(_part_text(p)) for p in parts if isinstance(p, ThinkingPart))
        return ModelResponse(
            parts=tuple(parts),
            usage=TokenUsage(
                input_tokens=max(1, len(canonical) // 4),
                output_tokens=max(1, output_chars // 4),
                reasoning_tokens=thinking_chars // 4,
            ),
            stop_reason="tool_use" if calls else "end_turn",
            raw_stop_reason="tool_use" if calls else "end_turn",
            provider=self.name,
            model=model,
        )

    def _thinking(self, thought: str, *, redacted: bool) -> ThinkingPart:
        if redacted:
            mac = hmac.new(self._secret, b"redacted\x00" + thought.encode(), hashlib.sha256)
            return ThinkingPart(
                redacted=REDACTED_MAGIC + mac.digest() + zlib.compress(thought.encode())
            )
        return ThinkingPart(text=thought, signature=sign_thinking(thought, self._secret))


def sign_thinking(text: str, secret: bytes = DEFAULT_SECRET) -> str:
    """The local model's signature of a thinking text."""
    mac = hmac.new(secret, text.encode(), hashlib.sha256).digest()
    return SIGNATURE_PREFIX + base64.b64encode(mac).decode()


def stream_deltas(parts: Sequence[AssistantPart], chunk_chars: int = 12) -> list[StreamDelta]:
    """How the parts arrive when streamed: thinking, text and tool input in pieces."""
    deltas: list[StreamDelta] = []
    for index, part in enumerate(parts):
        if isinstance(part, ThinkingPart):
            if part.text is not None:
                deltas.extend(
                    StreamDelta(kind="thinking", index=index, text=piece)
                    for piece in _pieces(part.text, chunk_chars)
                )
        elif isinstance(part, TextPart):
            deltas.extend(
                StreamDelta(kind="text", index=index, text=piece)
                for piece in _pieces(part.text, chunk_chars)
            )
        else:
            raw = jsonvalues.dumps_text(part.input, sort_keys=True)  # numbers exact
            deltas.extend(
                StreamDelta(
                    kind="tool_input",
                    index=index,
                    text=piece,
                    tool_use_id=part.id,
                    tool_name=part.name,
                )
                for piece in _pieces(raw, chunk_chars)
            )
    return deltas


# --- reading the conversation ----------------------------------------------------


def _read_user_text(
    text: str, earlier: Sequence[Message], offered: set[str]
) -> tuple[list[_Action], str, str]:
    """(actions, thinking, text) for a user's text message."""
    text = text.replace("\u2019", "'").strip()
    actions, text = _named_calls(text)
    remembered_span: tuple[int, int] | None = None

    if match := _REMEMBER.search(text):
        remembered_span = match.span()
        key, value = _split_fact(match.group(1))
        actions.append(
            _Action(
                match.start(),
                REMEMBER,
                {"key": key, "value": value},
                f"store that their {key} is {value}",
                f"Noted: your {key} is {value}.",
            )
        )

    facts = _known_facts([*earlier, Message(role="user", parts=(TextPart(text=text),))])
    for match in _QUESTION.finditer(text):
        key = _norm_key(match.group(1))
        known = facts.get(key)
        if known is not None:
            actions.append(
                _Action(
                    match.start(),
                    None,
                    {},
                    f"recall their {key}; earlier in the conversation they said it is {known}",
                    f"Your {key} is {known}.",
                )
            )
        else:
            actions.append(
                _Action(
                    match.start(),
                    RECALL,
                    {"key": key},
                    f"recall their {key}, which this conversation does not mention",
                    f"I don't know your {key} yet.",
                )
            )

    for match in _EXPRESSION.finditer(text):
        expression = _norm_expression(match.group(0))
        if expression:
            actions.append(
                _Action(
                    match.start(),
                    CALCULATOR,
                    {"expression": expression},
                    f"work out {expression}",
                    f"I would need the calculator tool to work out {expression}.",
                )
            )

    if match := _TIME.search(text):
        actions.append(
            _Action(
                match.start(),
                CLOCK,
                {"timezone": "UTC"},
                "look at the clock",
                "I would need the clock tool to tell the time.",
            )
        )

    actions.sort(key=lambda a: a.position)
    # A tool that is not offered cannot be called: answer with the fallback.
    settled = [
        a
        if a.tool is None or a.tool in offered
        else _Action(a.position, None, {}, a.plan, a.fallback)
        for a in actions
    ]
    calls = [a for a in settled if a.tool is not None]
    answers = [a.fallback for a in settled if a.tool is None]

    statements = [
        m
        for m in _FACT.finditer(text)
        if remembered_span is None or not remembered_span[0] <= m.start() < remembered_span[1]
    ]
    if not settled and statements:
        told = [(_norm_key(m.group(1)), _clean_value(m.group(2))) for m in statements]
        acks = [
            f"Nice to meet you, {value}!" if key == "name" else f"Got it: your {key} is {value}."
            for key, value in told
        ]
        plan = "; ".join(f"their {key} is {value}" for key, value in told)
        return [], f"The user tells me that {plan}. I will keep it in mind.", " ".join(acks)
    if not settled and (call := _CALL_ME.search(text)):
        name = _clean_value(call.group(1))
        return [], f"The user wants to be called {name}.", f"Nice to meet you, {name}!"
    if not settled:
        quoted = text if len(text) <= 200 else text[:197] + "..."
        return (
            [],
            "The user did not ask for anything I can do; I will say what I can do.",
            f'You said: "{quoted}". I can do arithmetic, tell the time, '
            "and remember what you tell me.",
        )

    plan = "The user wants me to " + "; then ".join(a.plan for a in settled) + "."
    if calls:
        names = " and ".join(dict.fromkeys(f"the {a.tool} tool" for a in calls))
        plan += f" I will use {names}."
        lead = " ".join([*answers, f"Let me use {names}."])
        return calls, plan, lead
    return [], plan, " ".join(answers)


def _named_calls(text: str) -> tuple[list[_Action], str]:
    """Calls of tools named in ``text``, and ``text`` with their spans blanked out."""
    actions: list[_Action] = []
    spans: list[tuple[int, int]] = []
    for match in _CALL_TOOL.finditer(text):
        try:
            tool_input = json.loads(match.group(2))
        except json.JSONDecodeError:
            continue
        if isinstance(tool_input, dict):
            name = match.group(1)
            actions.append(
                _Action(
                    match.start(),
                    name,
                    tool_input,
                    f"call {name} with {match.group(2)}",
                    f"I would need the {name} tool for that.",
                )
            )
            spans.append(match.span())
    for match in _ASK.finditer(text):
        if any(a <= match.start() < b for a, b in spans):
            continue
        name, task = match.group(1), match.group(2).strip()
        actions.append(
            _Action(
                match.start(),
                name,
                {"task": task},
                f"ask {name} to {task}",
                f"I would need the {name} agent for that.",
            )
        )
        spans.append(match.span())
    for start, end in spans:
        text = text[:start] + " " * (end - start) + text[end:]
    return actions, text


def _answer_tool_results(
    results: Sequence[ToolResultPart], earlier: Sequence[Message]
) -> tuple[str, str]:
    """(thinking, text) citing each tool result."""
    calls = {use.id: use for message in earlier for use in message.tool_uses()}
    notes: list[str] = []
    answers: list[str] = []
    for result in results:
        call = calls.get(result.tool_use_id)
        name = call.name if call else "unknown"
        value = _result_text(result.content)
        notes.append(f"{name} returned {value!r}" + (" as an error" if result.is_error else ""))
        if result.is_error:
            answers.append(f"The {name} tool failed: {value}.")
        elif call is None:
            answers.append(f"A tool returned {value}.")
        elif name == CALCULATOR:
            answers.append(f"{call.input.get('expression', '?')} = {value}.")
        elif name == CLOCK:
            answers.append(f"The clock says {value}.")
        elif name == REMEMBER:
            answers.append(
                f"I'll remember that your {call.input.get('key', 'note')} is "
                f"{call.input.get('value', value)}."
            )
        elif name == RECALL:
            key = call.input.get("key", "that")
            answers.append(f"Your {key} is {value}." if value else f"I don't know your {key} yet.")
        else:
            answers.append(f"{name} returned {value}.")
    thought = "The tool results are in: " + "; ".join(notes) + ". I can answer now."
    return thought, " ".join(answers)


def _summary(messages: Sequence[Message]) -> str:
    """An extractive summary of ``messages`` (see the module contract)."""
    lines: list[str] = []
    facts = _known_facts(messages)
    if facts:
        lines.append(
            "The user said: "
            + "; ".join(f"my {key} is {value}" for key, value in facts.items())
            + "."
        )
    calls: dict[str, ToolUsePart] = {}
    done: list[str] = []
    for message in messages:
        for part in message.parts:
            if isinstance(part, ToolUsePart):
                calls[part.id] = part
            elif isinstance(part, ToolResultPart) and part.tool_use_id in calls:
                call = calls[part.tool_use_id]
                outcome = "failed" if part.is_error else "gave"
                done.append(
                    f"{call.name} {jsonvalues.dumps(call.input).decode()} {outcome} "
                    f"{_clip(_result_text(part.content), 80)}"
                )
    if done:
        lines.append("Tools used: " + "; ".join(done) + ".")
    asked = [m.text().strip() for m in messages if m.role == "user" and m.text().strip()]
    if asked:
        firsts = " | ".join(_clip(a, 40) for a in asked)
        lines.append(f"{len(asked)} user messages: {firsts}")
    return "\n".join(lines) or "Nothing was said yet."


def _clip(text: str, size: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= size else text[: size - 3] + "..."


def _known_facts(messages: Iterable[Message]) -> dict[str, str]:
    """Facts about the user anywhere in ``messages``; later statements win."""
    facts: dict[str, str] = {}
    calls: dict[str, ToolUsePart] = {}
    for message in messages:
        for part in message.parts:
            if isinstance(part, TextPart) and message.role == "user":
                text = part.text.replace("\u2019", "'")
                for match in _FACT.finditer(text):
                    facts[_norm_key(match.group(1))] = _clean_value(match.group(2))
                for match in _CALL_ME.finditer(text):
                    facts["name"] = _clean_value(match.group(1))
            elif isinstance(part, ToolUsePart):
                calls[part.id] = part
                if part.name == REMEMBER and "key" in part.input and "value" in part.input:
                    facts[_norm_key(str(part.input["key"]))] = str(part.input["value"])
            elif isinstance(part, ToolResultPart) and not part.is_error:
                call = calls.get(part.tool_use_id)
                value = _result_text(part.content)
                if call is not None and call.name == RECALL and value and "key" in call.input:
                    facts[_norm_key(str(call.input["key"]))] = value
    return facts


def _split_fact(statement: str) -> tuple[str, str]:
    statement = statement.strip()
    if match := _FACT.search(statement):
        return _norm_key(match.group(1)), _clean_value(match.group(2))
    if match := re.match(r"(.+?) (?:is|are) (.+)", statement, re.IGNORECASE):
        return _norm_key(match.group(1).removeprefix("the ")), _clean_value(match.group(2))
    return "note", _clean_value(statement)


def _norm_key(key: str) -> str:
    return " ".join(key.lower().split())


def _clean_value(value: str) -> str:
    return value.strip().rstrip(".!?,;").strip()


def _norm_expression(raw: str) -> str:
    expression = raw.replace("\u00d7", "*").replace("\u00f7", "/").replace("^", "**")
    expression = re.sub(r"(?<=[\d\s)])[xX](?=[\s\d(])", "*", expression)
    expression = " ".join(expression.split())
    while expression.count("(") > expression.count(")") and expression.startswith("("):
        expression = expression[1:].strip()
    while expression.count(")") > expression.count("(") and expression.endswith(")"):
        expression = expression[:-1].strip()
    return expression


def _result_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        for key in ("result", "value", "text", "time", "error"):
            if key in content and not isinstance(content[key], dict | list):
                return str(content[key])
    if isinstance(content, list) and all(isinstance(item, dict) for item in content):
        texts = [str(item.get("text", "")) for item in content if item.get("type") == "text"]
        if texts:
            return "".join(texts)
    return jsonvalues.dumps_text(content, sort_keys=True)


# --- determinism and integrity -------------------------------------------------------


def _canonical(request: ModelRequest) -> str:
    """The request as canonical JSON: key order and bytes encoding fixed, so a
    transcript that went through any store hashes the same."""

    def default(value: object) -> object:
        if isinstance(value, bytes):
            return base64.b64encode(value).decode()
        if isinstance(value, Decimal):  # its exact text: only hashed, never parsed
            return str(value)
        raise TypeError(f"cannot encode {type(value).__name__}")

    payload = {
        "messages": [m.model_dump(mode="python") for m in request.messages],
        "tools": sorted(request.tool_names()),
        "thinking": request.thinking,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=default)


def _verify_thinking(messages: Sequence[Message], secret: bytes) -> None:
    """Reject altered local thinking, as a real provider rejects a bad signature."""
    for m_index, message in enumerate(messages):
        if message.role != "assistant":
            continue
        for p_index, part in enumerate(message.parts):
            if not isinstance(part, ThinkingPart):
                continue
            where = f"messages.{m_index}.content.{p_index}"
            if part.signature is not None and part.signature.startswith(SIGNATURE_PREFIX):
                if not hmac.compare_digest(part.signature, sign_thinking(part.text or "", secret)):
                    raise _invalid(f"{where}: invalid signature in thinking block")
            elif part.redacted is not None and part.redacted.startswith(REDACTED_MAGIC):
                body = part.redacted[len(REDACTED_MAGIC) :]
                try:
                    thought = zlib.decompress(body[32:])
                except zlib.error:
                    raise _invalid(f"{where}: corrupt redacted thinking block") from None
                mac = hmac.new(secret, b"redacted\x00" + thought, hashlib.sha256).digest()
                if not hmac.compare_digest(mac, body[:32]):
                    raise _invalid(f"{where}: invalid redacted thinking block")


def _invalid(message: str) -> ProviderError:
    return ProviderError(f"local: 400 {message}", status=400, kind="invalid_request")


def _part_text(part: AssistantPart) -> str:
    if isinstance(part, ThinkingPart):
        return part.text or ""
    if isinstance(part, TextPart):
        return part.text
    return jsonvalues.dumps_text(part.input, sort_keys=True)


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
