"""How a run's transcript is stored: its messages, and the fold state to go on from.

A body is one Redis hash (so it expires as one), with:

- ``c`` - the committed messages, each the JSON of a
  :class:`~runwire.transcript.messages.Message` (bytes as base64), joined by
  commas; ``n`` how many. Appended to, never rewritten.
- ``o`` - the open message's JSON (the one still being built), or empty.
  ``[c..., o]`` is exactly ``TranscriptBuilder.messages()``: what readers
  hand to providers.
- ``st`` - the ledger's open state as a JSON array: the open assistant
  parts, the tool_use ids awaiting results, the results in arrival order, the
  open user text (what :class:`~runwire.transcript.ledger.LedgerState` holds
  besides the committed messages); for a run with framework items a fifth
  element, their :class:`~runwire.transcript.items.ItemsState` (rewritten
  with every write: items live in runs of one turn).
- ``a`` - one ``event_id=digest`` line per applied event (what drops
  re-published duplicates), appended to.

JSON values in tool parts keep their exact numbers (big integers, ``Decimal``:
:mod:`runwire.contract.jsonvalues`): pydantic writes a Decimal as a string and
reads long decimals as floats, so bodies are written by ``jsonvalues`` and a
body holding a number pydantic would round is read through it too.

Depth: a tool part's value sits 4 levels down in ``c`` / ``o`` (5 in a
document of many runs), and the ledger bounds it
(:data:`~runwire.transcript.depth.MAX_VALUE_DEPTH`, 200), so a body nests
at most ~205 levels, which ``jsonvalues`` reads and writes (254). pydantic's
JSON parser stops at 200 levels in all: a body deeper than that is parsed by
``jsonvalues`` and validated without the tool parts' values, which are put
back as parsed (the usual path is untouched).

So a write sends what the batch changed - new committed messages, the open
message, its state, new digests - not the whole run, and the same log gives
the same bytes however it was cut into batches (a clean rebuild and a
crash-and-restart end byte-identical).

``restore_builder(run_id, encode_body(b))`` gives a builder whose state equals
``b.state`` (a unit test pins it over every prefix of many runs).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pydantic import TypeAdapter, ValidationError

from runwire.contract import jsonvalues
from runwire.errors import ContractError
from runwire.projections.transcripts.store import BodyAppend, RunBody
from runwire.transcript.items import ItemsState
from runwire.transcript.ledger import LedgerState, TranscriptBuilder, TranscriptState
from runwire.transcript.messages import Message, Part, TextPart, ToolResultPart, ToolUsePart

MESSAGES = TypeAdapter(list[Message])
"""JSON of a transcript as the cache returns it (bytes as base64)."""
RUNS = TypeAdapter(list[list[Message]])

_IDS = TypeAdapter(list[str])
_TEXTS = TypeAdapter(list[TextPart])
_OPEN_STATE = TypeAdapter(tuple[list[Part], list[str], list[ToolResultPart], list[TextPart]])
"""``st``: the open assistant parts, the awaited tool_use ids, the results in
arrival order, the open user text (the ledger's open state, in its order)."""


T = TypeVar("T")


def encode_messages(messages: Iterable[Message]) -> bytes:
    """``messages`` as one JSON array, as the cache holds them: numbers exact,
    bytes as URL-safe base64 (the bytes ``MESSAGES.dump_python`` would give
    :func:`~runwire.contract.jsonvalues.dumps`).

    Written from the models' fields as they are: those of a message and of a
    part are plain values (no serializer, alias or computed field), which
    pydantic's dump would only copy, once for every message the cache writes
    (most of the cost of encoding a body).
    """
    return jsonvalues.dumps(
        [{"role": m.role, "parts": [p.__dict__ for p in m.parts]} for m in messages],
        default=jsonvalues.bytes_as_base64,
    )


def _encode_parts(parts: Iterable[Part]) -> bytes:
    """Parts as one JSON array (as in :func:`encode_messages`)."""
    return jsonvalues.dumps([p.__dict__ for p in parts], default=jsonvalues.bytes_as_base64)


def _exact(model: Any, raw: Any) -> Any:
    """``model`` (validated by pydantic) with its tool parts' JSON taken from ``raw``
    (the same JSON parsed exactly)."""
    if isinstance(model, ToolUsePart):
        return model.model_copy(update={"input": raw["input"]})
    if isinstance(model, ToolResultPart):
        return model.model_copy(update={"content": raw["content"]})
    if isinstance(model, Message):
        return model.model_copy(update={"parts": _exact(model.parts, raw["parts"])})
    if isinstance(model, list | tuple):
        return type(model)(_exact(m, r) for m, r in zip(model, raw, strict=True))
    return model


def _validate(adapter: TypeAdapter[T], data: bytes) -> T:
    """``adapter.validate_json(data)`` with every JSON number exact."""
    try:
        value = adapter.validate_json(data)
    except ValidationError as e:
        if not _too_deep_for_pydantic(e):
            raise
        return _validate_deep(adapter, data)
    if (b"_" not in data or b'"tool_' not in data) and (b"\\" not in data or b"\\u" not in data):
        # No tool part (its kind or tool_use_id spelt plainly, no escapes): no
        # field that holds a JSON number, so nothing to round. Two scans, where
        # the round trip below cost a third of decoding a cold read; each
        # looks for one byte first (memchr: a fiftieth of the longer search,
        # which took a seventh of decoding a cold read of text).
        return value
    try:
        # What orjson writes back byte for byte holds only numbers a float or a
        # 64-bit integer keeps, which pydantic reads exactly too.
        if orjson.dumps(orjson.loads(data)) == data:
            return value
    except (orjson.JSONDecodeError, TypeError):
        pass
    exact: T = _exact(value, jsonvalues.loads(data))
    return exact


def _too_deep_for_pydantic(error: ValidationError) -> bool:
    return any(
        e["type"] == "json_invalid" and "recursion limit" in str(e.get("ctx", {}).get("error"))
        for e in error.errors()
    )


def _validate_deep(adapter: TypeAdapter[T], data: bytes) -> T:
    """:func:`_validate` of a body nested deeper than pydantic's JSON parser goes
    (200 levels in all, where the cache wraps a tool part's value 4-5 levels
    down, so from a value of 196): parsed by ``jsonvalues`` (which holds what
    was written, up to ``jsonvalues.MAX_DEPTH``), validated with the tool
    parts' values left out, and those put back as parsed. Only the tool parts'
    values nest (:mod:`runwire.transcript.depth` bounds them), so what is
    validated stays shallow."""
    try:
        raw = jsonvalues.loads(data)
    except jsonvalues.JsonValueError as e:
        raise ContractError(f"a stored transcript cannot be read: {e}") from None
    exact: T = _exact(adapter.validate_json(jsonvalues.dumps(_shallow(raw))), raw)
    return exact


def _shallow(raw: Any) -> Any:
    """``raw`` (a body's JSON) with every tool part's input / content emptied."""
    if isinstance(raw, list):
        return [_shallow(v) for v in raw]
    if not isinstance(raw, dict):
        return raw
    kind = raw.get("kind")
    if kind == "tool_use" and "input" in raw:
        return {**raw, "input": {}}
    if kind == "tool_result" and "content" in raw:
        return {**raw, "content": None}
    return {k: _shallow(v) for k, v in raw.items()}


@dataclass(frozen=True, slots=True)
class Mark:
    """How much of a builder is already stored: committed messages, applied events,
    pops that took canonical events back."""

    committed: int
    applied: int
    rewinds: int = 0


# The builder's own state, read without the deep copy ``TranscriptBuilder.state``
# makes for callers that may change it: here it is only serialized, once per
# run per batch, and that copy was 80% of the projection's time. Messages and
# parts are frozen models. To be replaced by a non-copying accessor of the ledger.
def _ledger(builder: TranscriptBuilder) -> LedgerState:
    ledger: LedgerState = builder._ledger._s
    return ledger


def _applied(builder: TranscriptBuilder) -> dict[str, str]:
    applied: dict[str, str] = builder._applied
    return applied


def mark(builder: TranscriptBuilder) -> Mark:
    return Mark(len(_ledger(builder).messages), len(_applied(builder)), builder.rewinds)


def _join(messages: list[Message]) -> bytes:
    # One serializer call for the list, brackets dropped: the same bytes as
    # joining each message's JSON, at a fraction of the calls.
    return encode_messages(messages)[1:-1] if messages else b""


def _open_parts(builder: TranscriptBuilder) -> tuple[bytes, bytes]:
    """The open message's JSON and the open state's JSON.

    Built from the ledger's lists with one serializer call each (no model is
    constructed); the assistant parts' bytes serve both documents.
    """
    ledger = _ledger(builder)
    assistant = _encode_parts(ledger.assistant)
    fields = [
        assistant,
        _IDS.dump_json(ledger.awaiting),
        _encode_parts(ledger.results),
        _TEXTS.dump_json(ledger.user_text),
    ]
    items = builder.items_state
    if items is not None:
        # The items are the framework's JSON: numbers exact.
        fields.append(jsonvalues.dumps(items.model_dump()))
    state = b",".join(fields)
    if ledger.assistant:
        open_message = b'{"role":"assistant","parts":' + assistant + b"}"
    else:
        # The ledger orders an open user message (results by declaration, then text).
        parts = builder._ledger._open_user_parts()
        open_message = b'{"role":"user","parts":' + _encode_parts(parts) + b"}" if parts else b""
    return open_message, b"[" + state + b"]"


def _digests(items: list[tuple[str, str]]) -> bytes:
    return "".join(f"{event_id}={digest}\n" for event_id, digest in items).encode()


def encode_body(builder: TranscriptBuilder) -> RunBody:
    """The whole body of ``builder``."""
    committed = _ledger(builder).messages
    open_message, state = _open_parts(builder)
    return RunBody(
        committed=_join(committed),
        count=len(committed),
        open=open_message,
        state=state,
        applied=_digests(list(_applied(builder).items())),
    )


def encode_append(builder: TranscriptBuilder, since: Mark) -> BodyAppend:
    """What ``builder`` added to a body stored at ``since``."""
    committed = _ledger(builder).messages[since.committed :]
    open_message, state = _open_parts(builder)
    digests = _applied(builder)
    # The newest entries, without walking the run's whole history.
    applied = list(itertools.islice(reversed(digests.items()), len(digests) - since.applied))
    applied.reverse()
    return BodyAppend(
        committed=_join(committed),
        count=len(committed),
        open=open_message,
        state=state,
        applied=_digests(applied),
    )


def decode_messages(data: bytes) -> list[Message]:
    return _validate(MESSAGES, data)


def decode_runs(runs: Sequence[bytes]) -> list[list[Message]]:
    """The messages of many runs, each given as its messages' JSON array, decoded
    in one validation call.

    One call for all runs: pydantic-core builds the frozen models about as
    fast as Python code could assign their fields without validating (measured
    on 200 messages: 0.38 ms validated, 0.55 ms built directly for text;
    1.2 ms for both with thinking / tool parts), so what costs is the number of
    calls and objects, not the checks.
    """
    if not runs:
        return []
    return decode_document(b"[" + b",".join(runs) + b"]")


def decode_document(document: bytes) -> list[list[Message]]:
    """The messages of many runs given as one JSON array of their message
    arrays (what :func:`decode_runs` joins), in one validation call."""
    return _validate(RUNS, document)


def decode_items(state: bytes) -> ItemsState | None:
    """The framework-item state in a body's ``st`` (None: the run has none)."""
    return _split_items(state)[1]


def _split_items(state: bytes) -> tuple[bytes, ItemsState | None]:
    """``st`` as the four-element open state, and the items state (None: none)."""
    if not _has_items(state):
        return state, None
    parsed = jsonvalues.loads(state)
    open_state = jsonvalues.dumps(parsed[:4], default=jsonvalues.bytes_as_base64)
    return open_state, ItemsState.model_validate(parsed[4])


def stored_items(state: bytes) -> list[dict[str, Any]]:
    """The live items in a body's ``st`` as stored (``event_id``, ``framework``,
    ``item``, ...), parsed without building models: what a session read hands
    back as it is."""
    if not _has_items(state):
        return []
    # jsonvalues, not orjson: the framework's numbers come back exact.
    items: list[dict[str, Any]] = jsonvalues.loads(state)[4]["items"]
    return items


def _has_items(state: bytes) -> bool:
    # The fifth element is the only object at the top level of ``st``.
    return state.endswith(b"}]")


def restore_builder(run_id: str, body: RunBody) -> TranscriptBuilder:
    state, items = _split_items(body.state)
    assistant, awaiting, results, user_text = _validate(_OPEN_STATE, state)
    committed = _validate(MESSAGES, b"[" + body.committed + b"]")
    if len(committed) != body.count:
        raise ContractError(
            f"stored transcript of run {run_id} is damaged: {len(committed)} committed "
            f"messages, the body says {body.count}"
        )
    ledger = LedgerState(
        messages=committed,
        assistant=assistant,
        awaiting=awaiting,
        results=results,
        user_text=user_text,
    )
    applied = dict(line.split("=", 1) for line in body.applied.decode().splitlines() if line)
    return TranscriptBuilder(
        run_id, state=TranscriptState(run_id=run_id, ledger=ledger, applied=applied, items=items)
    )
